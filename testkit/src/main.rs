//! `testkit`: command line for the local Docker Swarm lab (see the library for the details).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use testkit::cmd::{self, Cmd};
use testkit::lab::{DEFAULT_LAB, DEFAULT_SUBNET};
use testkit::{Fault, Flavour, Lab, UpOptions, host, image, report};

#[derive(Parser)]
#[command(
    name = "testkit",
    version,
    about = "A real local Docker Swarm lab for swarm-upgrade (Debian nodes with sshd and dockerd)",
    after_help = "Runs as root. State: /var/lib/swarm-upgrade-testkit; image cache: \
                  /var/cache/swarm-upgrade-testkit (TESTKIT_CACHE). TESTKIT_VERBOSE=1 prints \
                  every command."
)]
struct Cli {
    /// Lab name (node containers are NAME-m1.., NAME-w1..).
    #[arg(long, global = true, default_value = DEFAULT_LAB, env = "TESTKIT_LAB")]
    name: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Prepare the host (packages, private dockerd) and the node image, without a lab.
    Prepare {
        /// Build the node image even when it is cached.
        #[arg(long)]
        rebuild: bool,
    },
    /// Bring a lab up (a no-op that reports its state when it is already up).
    Up {
        #[arg(long, default_value_t = 3)]
        managers: u8,
        #[arg(long, default_value_t = 2)]
        workers: u8,
        /// IPv4 /24 of the lab network; managers get .11.., workers .21..
        #[arg(long, default_value = DEFAULT_SUBNET)]
        subnet: String,
        /// How the nodes' engines are installed and started: sysv-docker.io,
        /// systemd-docker.io, systemd-docker-ce, static, or mixed (spread over the others).
        #[arg(long, default_value = "sysv-docker.io", value_parser = Flavour::parse)]
        flavour: Flavour,
        /// Put a bastion (sshd only, MaxStartups 3) in front of the lab: the nodes are then
        /// reachable only through it. Also writes an ssh config, an alias inventory and an
        /// Ansible inventory in the lab directory.
        #[arg(long)]
        bastion: bool,
        /// The bastion's controller-facing /24 (default: the /24 after --subnet).
        #[arg(long, requires = "bastion")]
        bastion_subnet: Option<String>,
    },
    /// The swarm's view of the lab: nodes and services.
    Status {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Print the swarm-upgrade inventory (its path on the last line).
    Inventory,
    /// Run a command on a node over the lab's real SSH setup, as `upgrader`.
    Ssh {
        /// Node name (lab-w1) or short name (w1).
        node: String,
        /// Remote command, ssh-style (joined and run by the remote shell); none = a shell.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Run a command in a node as root (docker exec).
    Exec {
        node: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Probe statistics.
    Probe {
        #[command(subcommand)]
        command: ProbeCommand,
    },
    /// Inject a fault into a node, or reverse one.
    #[command(after_help = concat!(
        "Faults and their reversals:\n",
        "  stop-engine / start-engine   service docker stop / start\n",
        "  kill-engine / start-engine   SIGKILL dockerd / service docker start\n",
        "  stop-node   / start-node     docker stop / start of the node container\n",
        "  disconnect  / connect        off the lab network / back on it, same IP\n",
        "  no-sudo     / sudo           remove / restore /etc/sudoers.d/upgrader\n",
        "  fill-disk   / free-disk      fill /var/lib/swarm-upgrade (< 16 MiB free) / delete the filler"
    ))]
    Fault {
        /// stop-engine, start-engine, kill-engine, stop-node, start-node, disconnect, connect,
        /// no-sudo, sudo, fill-disk, free-disk.
        action: String,
        node: String,
    },
    /// Remove the lab; stops the private dockerd when no lab is left (the image cache stays).
    Down,
    /// Bring the lab up, run swarm-upgrade plan (and apply, when this build has it) against
    /// it, then print the probe report.
    Demo {
        #[arg(long, default_value_t = 3)]
        managers: u8,
        #[arg(long, default_value_t = 2)]
        workers: u8,
        /// Engine version to upgrade to.
        #[arg(long, default_value = image::TARGET_UPSTREAM)]
        pin: String,
    },
}

#[derive(Subcommand)]
enum ProbeCommand {
    /// Requests, failures, longest failure streak and gaps, per client and in total.
    Report {
        /// Only records from this time on: RFC 3339, or a duration meaning "ago" (10m).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("testkit: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let name = cli.name;
    match cli.command {
        Command::Prepare { rebuild } => {
            let start = Instant::now();
            let _lock = host::lock_host("prepare")?;
            host::prepare()?;
            let manifest = image::ensure(rebuild)?;
            println!("{}", serde_json::to_string_pretty(&manifest.versions)?);
            eprintln!("testkit: prepared in {}", cmd::secs(start.elapsed()));
        }
        Command::Up {
            managers,
            workers,
            subnet,
            flavour,
            bastion,
            bastion_subnet,
        } => {
            let bastion = match (bastion, bastion_subnet) {
                (false, _) => None,
                (true, Some(s)) => Some(s),
                (true, None) => Some(testkit::bastion::default_subnet(&subnet)?),
            };
            Lab::up(&UpOptions {
                name,
                managers,
                workers,
                subnet,
                flavour,
                bastion,
            })?;
        }
        Command::Status { output } => {
            let status = Lab::open(&name)?.status()?;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
                OutputFormat::Text => print!("{}", status.render_text()),
            }
        }
        Command::Inventory => {
            let lab = Lab::open(&name)?;
            let path = lab.inventory_path();
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            print!("{text}");
            println!("{}", path.display());
        }
        Command::Ssh { node, command } => {
            let lab = Lab::open(&name)?;
            let mut ssh = lab.ssh_command(&node, &lab.known_hosts_file())?;
            if command.is_empty() && std::io::stdin().is_terminal() {
                ssh.arg("-t");
            }
            ssh.arg("--").args(&command);
            return exit_code(ssh.run_inherit()?);
        }
        Command::Exec { node, command } => {
            let lab = Lab::open(&name)?;
            let node = lab.node(&node)?;
            let mut exec = cmd::docker();
            exec.args(["exec", "-i"]);
            if std::io::stdin().is_terminal() {
                exec.arg("-t");
            }
            exec.arg(&node.name).args(&command);
            return exit_code(exec.run_inherit()?);
        }
        Command::Probe {
            command: ProbeCommand::Report { since, output },
        } => {
            let since = since.as_deref().map(report::parse_since).transpose()?;
            let report = Lab::open(&name)?.probe_report(since)?;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                OutputFormat::Text => print!("{}", report.render_text()),
            }
        }
        Command::Fault { action, node } => {
            let Some((fault, apply)) = Fault::parse_action(&action) else {
                bail!(
                    "unknown fault action {action:?}; one of:\n{}",
                    testkit::fault::describe_actions()
                );
            };
            let lab = Lab::open(&name)?;
            let node = lab.node(&node)?;
            let start = Instant::now();
            if apply {
                lab.fault(&node.name, fault)?;
            } else {
                lab.restore(&node.name, fault)?;
            }
            println!(
                "{action} {}: done in {}",
                node.name,
                cmd::secs(start.elapsed())
            );
        }
        Command::Down => Lab::down(&name)?,
        Command::Demo {
            managers,
            workers,
            pin,
        } => {
            return demo(
                UpOptions {
                    name,
                    managers,
                    workers,
                    subnet: DEFAULT_SUBNET.into(),
                    ..UpOptions::default()
                },
                &pin,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn exit_code(status: std::process::ExitStatus) -> Result<ExitCode> {
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE, // killed by a signal
    })
}

/// swarm-upgrade to run in the demo: $SWARM_UPGRADE_BIN, next to this executable, on PATH.
fn find_swarm_upgrade() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SWARM_UPGRADE_BIN") {
        return Ok(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(sibling) = exe.parent().map(|d| d.join("swarm-upgrade"))
        && sibling.is_file()
    {
        return Ok(sibling);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("swarm-upgrade"))
        .find(|p| p.is_file())
        .context("swarm-upgrade not found: set SWARM_UPGRADE_BIN, build it next to testkit, or put it on PATH")
}

fn demo(opts: UpOptions, pin: &str) -> Result<ExitCode> {
    let lab = Lab::up(&opts)?;
    let bin = find_swarm_upgrade()?;
    let inventory = lab.inventory_path();
    let since = SystemTime::now();
    let mut failed = false;

    println!("\n=== swarm-upgrade plan ({})", bin.display());
    let mut plan = Cmd::new(&bin);
    plan.arg("plan")
        .arg("--inventory")
        .arg(&inventory)
        .args(["--pin", pin]);
    let status = plan.run_inherit()?;
    if !status.success() {
        println!("swarm-upgrade plan failed: {status}");
        failed = true;
    }

    let has_apply = Cmd::new(&bin).args(["apply", "--help"]).succeeds();
    if !has_apply {
        println!(
            "\n=== swarm-upgrade apply: NOT RUN. This build of swarm-upgrade has no `apply` command \
             yet (`{} apply --help` fails), so no node was upgraded.",
            bin.display()
        );
    } else if !failed {
        println!("\n=== swarm-upgrade apply");
        let mut apply = Cmd::new(&bin);
        apply
            .arg("apply")
            .arg("--inventory")
            .arg(&inventory)
            .args(["--pin", pin, "--yes"]);
        let status = apply.run_inherit()?;
        if !status.success() {
            println!("swarm-upgrade apply failed: {status}");
            failed = true;
        }
    }

    println!("\n=== probe report since the demo started");
    print!("{}", lab.probe_report(Some(since))?.render_text());
    match lab.status() {
        Ok(status) => println!("\n{}", status.render_text()),
        Err(e) => println!("\nstatus unavailable: {e:#}"),
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
