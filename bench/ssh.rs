//! Gathering over real SSH at scale (issue 15): N inventory hosts, every one
//! a real SSH login to one real sshd on this machine, read by the product's
//! own gathering code (`Cluster::read_hosts`: connect, fact script, pin
//! resolution, target validation) with `--forks` bounding it.
//!
//! The sshd is made by the benchmark in a private temp directory: a throwaway
//! host key and client key, `127.0.0.1` on a free port, public-key login for
//! the current user only, and a known_hosts file with its key, so host keys
//! are checked strictly as in production. The swarm's own answers (its node
//! list) come from the simulator: the Engine API of one manager is not what
//! grows with the cluster, the SSH fan-out to every host is.
//!
//! The simulated hosts all run on this machine's 2 cores, which real hosts
//! would not: so that the benchmark measures the controller and SSH, not N
//! copies of the hosts' own work, every host answers a command as the first
//! host did (sshd's `ForceCommand` runs a replayer: the command runs for
//! real once, its output and exit code are replayed after). The fact script
//! costs about 3 s of CPU per host on this machine, mostly apt (`apt-cache
//! madison`, `apt-mark showhold`, `apt-get -s install`) and `dpkg -S`;
//! `--real-hosts` runs every command on every "host" (apt with its package
//! cache, as on a Debian host). The hosts' `docker` is a stub that answers
//! nothing (the swarm's answers come from the simulator), and the nodes have
//! no swarm address (each host would otherwise probe the swarm ports of every
//! other host: N² probes from the same 2 cores). The sessions' HOME is the
//! benchmark's directory: this machine's root has a ~/.bashrc (pyenv) that
//! bash would run for every SSH session, ~0.4 s of CPU each, which a
//! cluster host's login does not. The sshd's CPU (handshakes,
//! sessions and what they ran) is measured apart from the controller's.
//!
//! Each size runs in its own child process (`ssh-child`), whose memory is
//! sampled from /proc with that of its ssh processes (found by the private
//! runtime directory in their command line).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use swarm_upgrade::cluster::{Cluster, ClusterOptions, InventorySource};
use swarm_upgrade::version::resolve::ResolveOptions;
use swarm_upgrade_sim::SimCluster;

use super::{plan, sys};

pub struct Options {
    pub hosts: Vec<usize>,
    pub forks: usize,
    pub budget: Duration,
    /// Every host runs every command itself, as a real host would on its
    /// own CPU (by default each answers as the first did).
    pub real_hosts: bool,
    /// The key exchange the controller's ssh offers (`KexAlgorithms` in an
    /// ssh config, as an operator would set it); none: OpenSSH's default.
    pub kex: Option<String>,
}

pub fn options(args: &[String]) -> Options {
    let mut o = Options {
        hosts: vec![100, 500, 1000],
        forks: 20,
        budget: Duration::from_secs(300),
        real_hosts: false,
        kex: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_else(|| super::usage());
        match a.as_str() {
            "--hosts" => {
                o.hosts = value()
                    .split(',')
                    .map(|s| s.trim().parse().unwrap_or_else(|_| super::usage()))
                    .collect();
            }
            "--forks" => o.forks = value().parse().unwrap_or_else(|_| super::usage()),
            "--real-hosts" => o.real_hosts = true,
            "--kex" => o.kex = Some(value()),
            "--budget" => {
                o.budget = Duration::from_secs(value().parse().unwrap_or_else(|_| super::usage()))
            }
            _ => super::usage(),
        }
    }
    o
}

/// The benchmark's sshd, stopped (and its directory removed) on drop.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn keygen(path: &Path) -> anyhow::Result<()> {
    run(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "swarm-upgrade-bench",
            "-f",
        ])
        .arg(path))
    .map(|_| ())
}

/// sshd's `ForceCommand` for the benchmark's hosts: a command runs for real
/// the first time it is asked (once: the hosts asked meanwhile wait), and its answer (output and exit code) is
/// replayed after, for every host: what a cluster of identical hosts would
/// answer, without N copies of the hosts' work on this machine's 2 cores.
fn replay_script(rec: &Path) -> String {
    format!(
        r#"#!/bin/sh
r="{rec}/$(printf '%s' "$SSH_ORIGINAL_COMMAND" | md5sum | cut -c1-32)"
if [ ! -f "$r.rc" ]; then
  exec 9>"$r.lock"; flock 9
  if [ ! -f "$r.rc" ]; then
    sh -c "$SSH_ORIGINAL_COMMAND" >"$r.out.$$" 2>"$r.err.$$"
    echo $? >"$r.rc.$$"
    mv "$r.out.$$" "$r.out"; mv "$r.err.$$" "$r.err"; mv "$r.rc.$$" "$r.rc"
  fi
  exec 9>&-
fi
cat "$r.out"; cat "$r.err" >&2
exit "$(cat "$r.rc")"
"#,
        rec = rec.display()
    )
}

fn sshd_binary() -> anyhow::Result<PathBuf> {
    ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no sshd: install OpenSSH's server (Debian: apt-get install openssh-server)"
            )
        })
}

impl Sshd {
    fn start(max_startups: usize, real_hosts: bool) -> anyhow::Result<Sshd> {
        let sshd = sshd_binary()?;
        // Short: the ssh control sockets live under it (108-byte limit).
        let dir = tempfile::Builder::new().prefix("swb-").tempdir_in("/tmp")?;
        let d = dir.path();
        keygen(&d.join("host_key"))?;
        keygen(&d.join("client_key"))?;
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys"))?;
        // The hosts' docker answers nothing (see the module docs).
        std::fs::create_dir(d.join("bin"))?;
        std::fs::write(d.join("bin/docker"), "#!/bin/sh\nexit 1\n")?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("bin/docker"), std::fs::Permissions::from_mode(0o755))?;
        // Every host's commands answered as the first host's were (see
        // the module docs): sshd runs this instead of the command.
        let force = if real_hosts {
            String::new()
        } else {
            std::fs::create_dir(d.join("rec"))?;
            std::fs::write(d.join("replay"), replay_script(&d.join("rec")))?;
            std::fs::set_permissions(d.join("replay"), std::fs::Permissions::from_mode(0o755))?;
            format!("ForceCommand {}/replay\n", d.display())
        };
        // Apt with its package cache, as on a Debian host (this machine's
        // container image turns it off, so that every apt-cache call would
        // parse every package list again: a second of CPU per host).
        std::fs::create_dir(d.join("apt-parts"))?;
        std::fs::write(
            d.join("apt.conf"),
            format!(
                "Dir::Etc::parts \"{d}/apt-parts\";\nDir::Cache::pkgcache \"{d}/pkgcache.bin\";\nDir::Cache::srcpkgcache \"{d}/srcpkgcache.bin\";\n",
                d = d.display()
            ),
        )?;
        std::fs::create_dir(d.join("rt"))?;
        std::fs::set_permissions(d.join("rt"), std::fs::Permissions::from_mode(0o700))?;
        // sshd's privilege separation directory (made by its service, which
        // is not running here).
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let user = run(Command::new("id").arg("-un"))?;
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile none\n\
             AuthorizedKeysFile {d}/authorized_keys\nAllowUsers {user}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nUseDNS no\n\
             MaxStartups {max_startups}\nMaxSessions 100\nAllowStreamLocalForwarding yes\n\
             SetEnv PATH={d}/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin APT_CONFIG={d}/apt.conf HOME={d}\n\
             LogLevel ERROR\n{force}",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config)?;
        let host_pub = std::fs::read_to_string(d.join("host_key.pub"))?;
        let mut kh = std::fs::File::create(d.join("known_hosts"))?;
        let mut key = host_pub.split_whitespace();
        writeln!(
            kh,
            "[127.0.0.1]:{port} {} {}",
            key.next().unwrap_or_default(),
            key.next().unwrap_or_default()
        )?;
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .spawn()?;
        let sshd = Sshd { dir, port, child };
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < until, "the benchmark's sshd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(sshd)
    }

    /// CPU of the sshd and everything it ran and reaped, in seconds.
    fn cpu_s(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(vec![], |(_, r)| r.split_whitespace().collect());
        // utime, stime, cutime, cstime: fields 14-17, i.e. 11-14 after `)`.
        let ticks: f64 = (11..15)
            .filter_map(|i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
            .sum();
        ticks / clock_ticks()
    }
}

/// CPU seconds the whole machine has been busy (all cores, /proc/stat).
fn machine_busy_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: f64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .take(7)
        .map(|(_, t)| t)
        .sum();
    busy / clock_ticks()
}

fn clock_ticks() -> f64 {
    // getconf CLK_TCK is 100 on every Linux this runs on.
    100.0
}

pub fn tables(args: &[String]) {
    let o = options(args);
    let sshd = match Sshd::start(o.forks.max(10) * 4, o.real_hosts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the benchmark's sshd: {e:#}");
            std::process::exit(1);
        }
    };
    // The child reads the ssh config from the benchmark's directory.
    if let Some(kex) = &o.kex
        && let Err(e) = std::fs::write(
            sshd.dir.path().join("ssh_config"),
            format!("Host *\n  KexAlgorithms {kex}\n"),
        )
    {
        eprintln!("error: cannot write the ssh config: {e}");
        std::process::exit(1);
    }
    println!(
        "SSH GATHERING: real sshd on 127.0.0.1:{}, --forks {}, key exchange {}, hosts {} (goal: 1,000 hosts < 30 s, < 1 GB, handshakes <= forks)",
        sshd.port,
        o.forks,
        o.kex.as_deref().unwrap_or("OpenSSH's default"),
        if o.real_hosts {
            "run every command"
        } else {
            "replay the first answer"
        }
    );
    println!(
        "{:>6} {:>6} | {:>8} {:>8} {:>8} | {:>9} {:>7} {:>9} | {:>10} {:>10} | {:>10} {:>10}",
        "hosts",
        "read",
        "wall",
        "per host",
        "hosts/s",
        "peak MB",
        "of ssh",
        "max ssh",
        "max hs",
        "conns",
        "sshd CPU",
        "rest CPU"
    );
    let mut summary = vec![];
    for &n in &o.hosts {
        let cpu0 = sshd.cpu_s();
        let (lines, finished) = sys::child(
            &[
                "ssh-child".into(),
                n.to_string(),
                o.forks.to_string(),
                sshd.dir.path().display().to_string(),
                sshd.port.to_string(),
            ],
            o.budget,
        );
        let sshd_cpu = sshd.cpu_s() - cpu0;
        let v: Option<Value> = lines
            .iter()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok());
        let Some(v) = v.filter(|_| finished) else {
            println!("{n:>6} did not finish within {} s", o.budget.as_secs());
            continue;
        };
        let g = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:>6} {:>6} | {:>6.1} s {:>5.0} ms {:>8.1} | {:>9.0} {:>7.0} {:>9} | {:>10} {:>10} | {:>8.1} s {:>8.1} s",
            n,
            g("read"),
            g("wall_s"),
            g("wall_s") * 1e3 / n as f64,
            n as f64 / g("wall_s"),
            g("peak_mb"),
            g("peak_ssh_mb"),
            g("max_ssh"),
            g("max_handshakes"),
            g("connections"),
            sshd_cpu,
            g("machine_cpu_s") - sshd_cpu
        );
        if let Some(e) = v["first_error"].as_str() {
            println!("       first unreadable host: {e}");
        }
        summary.push(format!(
            "gather-ssh hosts={n} forks={} wall_s={:.1} peak_mb={:.0} max_handshakes={}",
            o.forks,
            g("wall_s"),
            g("peak_mb"),
            g("max_handshakes")
        ));
    }
    println!(
        "\nread: hosts whose facts were read; peak MB: the controller with its ssh processes (sum of RSS, sampled every 50 ms); of ssh: their share;\nmax ssh: most ssh processes at once; max hs: most SSH handshakes in progress at once; conns: SSH connections opened; sshd CPU: the hosts' side (handshakes, fact scripts);\nrest CPU: the machine's CPU while gathering less the sshd's: the controller and its ssh processes (and anything else running)\n"
    );
    for s in summary {
        println!("{s}");
    }
}

/// What the sampler saw: the peak of the controller's RSS plus its ssh
/// processes', and the most ssh processes at once.
#[derive(Default, Clone, Copy)]
struct Peak {
    total_kib: u64,
    ssh_kib: u64,
    ssh_procs: usize,
}

fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

fn sample(marker: &str) -> Peak {
    let mut p = Peak {
        total_kib: rss_kib("self"),
        ..Peak::default()
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return p;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmd.starts_with(b"ssh\0") && String::from_utf8_lossy(&cmd).contains(marker) {
            let kib = rss_kib(pid);
            p.ssh_kib += kib;
            p.total_kib += kib;
            p.ssh_procs += 1;
        }
    }
    p
}

/// One size, in its own process: prints one JSON line.
pub fn child(hosts: usize, forks: usize, dir: &Path, port: u16) {
    let sim = SimCluster::from_spec(&plan::spec(hosts, 2026));
    let mut cluster = sim.facts().cluster;
    drop(sim);
    // No swarm addresses: no N² port probes (see the module docs).
    for n in &mut cluster.nodes {
        n.addr.clear();
    }
    let inventory = dir.join(format!("inventory-{hosts}.yaml"));
    let mut yaml = format!(
        "defaults:\n  port: {port}\n  identity_file: {d}/client_key\n  known_hosts_file: {d}/known_hosts\nhosts:\n",
        d = dir.display()
    );
    for n in &cluster.nodes {
        yaml.push_str(&format!(
            "  - name: {}\n    address: 127.0.0.1\n",
            n.hostname
        ));
    }
    std::fs::write(&inventory, yaml).expect("writing the inventory");
    // The ssh processes are found by their control directory, under this.
    let runtime = dir.join("rt");
    // SAFETY: no other thread runs yet.
    unsafe { std::env::set_var("XDG_RUNTIME_DIR", &runtime) };
    let marker = runtime.display().to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = Peak::default();
            while !stop.load(Ordering::Relaxed) {
                let p = sample(&marker);
                peak.total_kib = peak.total_kib.max(p.total_kib);
                peak.ssh_kib = peak.ssh_kib.max(p.ssh_kib);
                peak.ssh_procs = peak.ssh_procs.max(p.ssh_procs);
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let started = Instant::now();
    let cpu0 = sys::cpu_time();
    let machine0 = machine_busy_s();
    let gathered = rt.block_on(async {
        let c = Cluster::open(ClusterOptions {
            inventory: InventorySource::Own(inventory.clone()),
            ssh_config: Some(dir.join("ssh_config")).filter(|p| p.exists()),
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(15),
            command_timeout: Duration::from_secs(120),
            forks,
            resolve: ResolveOptions::default(),
        })?;
        c.read_hosts(cluster, &plan::pin(), &|_| {}).await
    });
    let wall = started.elapsed().as_secs_f64();
    let cpu = (sys::cpu_time() - cpu0).as_secs_f64();
    let machine_cpu = machine_busy_s() - machine0;
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap_or_default();
    let g = match gathered {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    };
    let names: BTreeMap<&str, &str> = g
        .facts
        .cluster
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.hostname.as_str()))
        .collect();
    let connections: u64 = names
        .values()
        .map(|h| swarm_upgrade::transport::connections_made(h))
        .sum();
    let first_error = g
        .facts
        .unreachable
        .iter()
        .next()
        .map(|(id, e)| format!("{}: {e}", names.get(id.as_str()).unwrap_or(&"?")));
    println!(
        "{}",
        json!({
            "hosts": hosts,
            "read": g.facts.hosts.len(),
            "wall_s": wall,
            "cpu_s": cpu,
            "machine_cpu_s": machine_cpu,
            "peak_mb": peak.total_kib.max(sys::peak_rss_mib() as u64 * 1024) as f64 / 1024.0,
            "peak_ssh_mb": peak.ssh_kib as f64 / 1024.0,
            "self_peak_mb": sys::peak_rss_mib(),
            "max_ssh": peak.ssh_procs,
            "max_handshakes": swarm_upgrade::transport::handshakes_peak(),
            "connections": connections,
            "first_error": first_error,
        })
    );
}
