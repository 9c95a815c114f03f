//! Reaching the swarm the way production does (issue 17): through a bastion,
//! from an ssh config and from an Ansible inventory, on a lab of its own,
//! "bst" (1 manager + 4 workers on 172.31.61.0/24), brought up with
//! `testkit up --bastion`: the bastion (sshd only, `MaxStartups 3`) is on the
//! lab network and on 172.31.62.0/24, and the host has no route to the nodes.
//!
//! The tests share the lab and run in name order (`--test-threads=1`); each
//! upgrade starts where the previous one left the nodes:
//! - `a_…`: the nodes are unreachable directly; `plan -F ssh_config` and
//!   `apply` (SWARM_UPGRADE_SSH_CONFIG) from an inventory naming only the
//!   ssh config's aliases: 20.10 -> 26.1.5, `--forks 8`.
//! - `b_…`: `rollback` of a's run (26.1.5 -> 20.10) with every sshd process
//!   of the bastion killed for 20 s while a node is being drained: the run
//!   completes (the masters are reopened, a command cut in flight runs again).
//! - `bb_…`: a changed bastion host key is refused with a message naming the
//!   bastion, not a node.
//! - `bc_…`: `plan` as a local account (made by the test, removed after it)
//!   whose default ~/.ssh/config holds the aliases, key and known_hosts: no
//!   `-F`, no environment; and the same with `-F /dev/null` fails.
//! - `c_…`: MaxStartups 3 is real (a burst of plain `ssh` through the bastion
//!   is partly refused), and `plan --forks 8` (4 workers' handshakes at once
//!   through the bastion) still completes, each time, retrying the refused
//!   ones.
//! - `d_…`: the generated Ansible INI (+ group_vars): `plan` read through a
//!   real `ansible-inventory` (ansible-core installed from PyPI, or the test
//!   fails), `apply` read by swarm-upgrade's own INI reader: 20.10 -> 26.1.5.
//! - `zz_…` removes the lab.
//!
//! `#[ignore]`d like every lab test: run as root through the lab slot. A lab
//! that cannot start fails the test.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use testkit::{Lab, UpOptions};

const LAB: &str = "bst";
const SUBNET: &str = "172.31.61.0/24";
const FRONT: &str = "172.31.62.0/24";
const PIN: &str = "26.1.5";
/// What the lab runs before an upgrade (and after the rollback).
const OLD: &str = "20.10.24";

/// The shared lab, brought up if it is not, and healthy.
fn lab() -> Lab {
    let lab = match Lab::open(LAB) {
        Ok(lab) if lab.bastion().is_some() => lab,
        other => {
            if let Err(why) = other {
                eprintln!("lab {LAB} is not up ({why:#}); bringing it up");
            }
            if testkit::paths::lab_dir(LAB).exists() {
                Lab::down(LAB)
                    .unwrap_or_else(|e| panic!("removing what is left of lab {LAB}: {e:#}"));
            }
            let t = Instant::now();
            let lab = Lab::up(&UpOptions {
                name: LAB.into(),
                managers: 1,
                workers: 4,
                subnet: SUBNET.into(),
                bastion: Some(FRONT.into()),
                ..UpOptions::default()
            })
            .unwrap_or_else(|e| panic!("the lab {LAB} could not be brought up: {e:#}"));
            eprintln!("lab {LAB} up in {:.0} s", t.elapsed().as_secs_f64());
            lab
        }
    };
    lab.wait_healthy(Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("lab {LAB} is not healthy before the test: {e:#}"));
    lab
}

/// The runs' state directory, shared by the tests (d rolls back b's run), in
/// the lab directory so that `down` removes it.
fn state_dir(lab: &Lab) -> PathBuf {
    let d = lab.dir().join("swarm-upgrade-state");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `swarm-upgrade ARGS` with the lab's state dir and none of the operator's
/// inventory, ssh config or unlock key; the inventory is in `args`.
fn swarm_upgrade(lab: &Lab, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_swarm-upgrade"));
    c.args(args)
        .env("SWARM_UPGRADE_STATE_DIR", state_dir(lab))
        .env_remove("SWARM_UPGRADE_INVENTORY")
        .env_remove("SWARM_UPGRADE_SSH_CONFIG")
        .env_remove("SWARM_UPGRADE_UNLOCK_KEY")
        .env("SWARM_UPGRADE_SOAK", "5s");
    c
}

fn run(mut c: Command, shown: &str) -> Output {
    let t = Instant::now();
    let out = c.output().unwrap();
    // The tail: runs with -v log every remote command.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    eprintln!(
        "$ swarm-upgrade {shown} -> {:?} in {:.1} s\n{}",
        out.status.code(),
        t.elapsed().as_secs_f64(),
        lines[lines.len().saturating_sub(60)..].join("\n")
    );
    out
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Node names and engine versions as the swarm reports them.
fn assert_all_at(lab: &Lab, version: &str) {
    let st = lab
        .wait_healthy(Duration::from_secs(180))
        .expect("healthy after the run");
    assert_eq!(st.nodes.len(), 5, "{st:?}");
    common::assert_all_at(&st, version);
}

/// How many connections ssh's debug log shows refused before the handshake
/// and tried again (swarm-upgrade -v).
fn retried(stderr: &str) -> usize {
    stderr.matches("refused before the handshake").count()
}

#[test]
#[ignore = "needs the testkit lab (root, the private dockerd); see testkit/README.md"]
fn a_apply_through_the_bastion_from_ssh_config_aliases() {
    let lab = lab();
    let bastion = lab.bastion().unwrap();

    // The host reaches the bastion and no node: every connection goes through it.
    let connect = |ip: std::net::Ipv4Addr| {
        TcpStream::connect_timeout(&SocketAddr::from((ip, 22)), Duration::from_secs(3))
    };
    assert!(connect(bastion.address).is_ok(), "the bastion must answer");
    for n in lab.nodes() {
        assert!(
            connect(n.address).is_err(),
            "{} ({}) is reachable directly: the lab must only be reachable through the bastion",
            n.name,
            n.address
        );
    }
    let aliases = std::fs::read_to_string(lab.alias_inventory_path()).unwrap();
    assert!(
        !aliases.contains("address") && !aliases.contains("172."),
        "{aliases}"
    );

    let config = lab.ssh_config_path();
    let inventory = lab.alias_inventory_path();
    let out = run(
        swarm_upgrade(
            &lab,
            &[
                "plan",
                "-F",
                path_str(&config),
                "--inventory",
                path_str(&inventory),
                "--pin",
                PIN,
                "--output",
                "json",
            ],
        ),
        "plan -F ssh_config (aliases)",
    );
    assert_eq!(out.status.code(), Some(0));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["nodes"].as_array().unwrap().len(), 5, "{plan}");

    // The same from SWARM_UPGRADE_SSH_CONFIG, and the real upgrade.
    let mut apply = swarm_upgrade(
        &lab,
        &[
            "apply",
            "--inventory",
            path_str(&inventory),
            "--pin",
            PIN,
            "--yes",
            "--forks",
            "8",
            "--max-parallel",
            "2",
            "-v",
        ],
    );
    apply.env("SWARM_UPGRADE_SSH_CONFIG", &config);
    let out = run(apply, "apply (SWARM_UPGRADE_SSH_CONFIG, aliases)");
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply through the bastion failed"
    );
    assert_all_at(&lab, PIN);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "connections refused by the bastion and retried during apply: {}",
        retried(&stderr)
    );
}

/// ansible-core from PyPI in a venv of the build's scratch directory (kept
/// between runs); the test fails when it cannot be installed.
fn ansible_inventory_exe() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ansible-venv");
    let exe = venv.join("bin/ansible-inventory");
    if !exe.is_file() {
        let t = Instant::now();
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "ansible-core"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok && exe.is_file(),
            "installing ansible-core from PyPI into {} failed: this test needs `ansible-inventory`",
            venv.display()
        );
        eprintln!(
            "ansible-core installed in {:.0} s",
            t.elapsed().as_secs_f64()
        );
    }
    exe
}

/// A PATH of the system's directories only, with no `ansible-inventory` in it.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[test]
#[ignore = "needs the testkit lab (root, the private dockerd); see testkit/README.md"]
fn d_apply_through_the_bastion_from_the_ansible_inventory() {
    let lab = lab();
    assert_all_at(&lab, OLD);
    let ini = lab.ansible_inventory_path();
    let config = lab.ssh_config_path();

    // Read by a real `ansible-inventory` (a wrapper on PATH records the call).
    let real = ansible_inventory_exe();
    let wrappers = tempfile::tempdir().unwrap();
    let called = wrappers.path().join("called");
    let wrapper = wrappers.path().join("ansible-inventory");
    let mut f = std::fs::File::create(&wrapper).unwrap();
    writeln!(
        f,
        "#!/bin/sh\necho \"$@\" >> '{}'\nexec '{}' \"$@\"",
        called.display(),
        real.display()
    )
    .unwrap();
    drop(f);
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // The bastion's own key and known_hosts come from the ssh config (its
    // alias in the INI's ProxyJump), as for Ansible itself.
    let mut plan = swarm_upgrade(
        &lab,
        &[
            "plan",
            "--ansible-inventory",
            path_str(&ini),
            "--pin",
            PIN,
            "--output",
            "json",
        ],
    );
    plan.env(
        "PATH",
        format!("{}:{SYSTEM_PATH}", wrappers.path().display()),
    )
    .env("SWARM_UPGRADE_SSH_CONFIG", &config);
    let out = run(
        plan,
        "plan --ansible-inventory hosts.ini (through ansible-inventory)",
    );
    assert_eq!(out.status.code(), Some(0));
    let calls = std::fs::read_to_string(&called).unwrap_or_default();
    assert!(
        calls.contains("--list"),
        "ansible-inventory was not used: {calls:?}"
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["nodes"].as_array().unwrap().len(), 5, "{plan}");

    // The upgrade, read by swarm-upgrade's own INI and group_vars reader.
    for dir in SYSTEM_PATH.split(':') {
        assert!(
            !Path::new(dir).join("ansible-inventory").exists(),
            "{dir}/ansible-inventory"
        );
    }
    let mut apply = swarm_upgrade(
        &lab,
        &[
            "apply",
            "--ansible-inventory",
            path_str(&ini),
            "--pin",
            PIN,
            "--yes",
            "--max-parallel",
            "2",
        ],
    );
    apply
        .env("PATH", SYSTEM_PATH)
        .env("SWARM_UPGRADE_SSH_CONFIG", &config);
    let out = run(apply, "apply --ansible-inventory hosts.ini (own reader)");
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply from the Ansible inventory failed"
    );
    assert_all_at(&lab, PIN);
}

/// A local account made for one test, removed (with its home) when dropped.
struct TestUser {
    name: &'static str,
    home: PathBuf,
}

impl TestUser {
    fn create(name: &'static str) -> TestUser {
        // What a crashed run may have left.
        let _ = Command::new("userdel").args(["--remove", name]).output();
        let out = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", name])
            .output()
            .expect("useradd");
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let home = PathBuf::from(lab_sh(&format!("getent passwd {name} | cut -d: -f6")).trim());
        TestUser { name, home }
    }

    /// Writes `contents` to `rel` in the home, owned by the user, `mode`.
    fn write(&self, rel: &str, contents: &[u8], mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.home.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn chown_home(&self) {
        let out = Command::new("chown")
            .args(["-R", &format!("{0}:{0}", self.name)])
            .arg(&self.home)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .args(["--remove", self.name])
            .output();
    }
}

fn lab_sh(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs the testkit lab (root, the private dockerd); see testkit/README.md"]
fn bc_plan_as_a_user_whose_default_ssh_config_names_the_hosts() {
    let lab = lab();
    let user = TestUser::create("swup-lab-operator");
    // The user's own ~/.ssh: the lab's key, known_hosts and ssh config, the
    // config pointing at ~/.ssh (which OpenSSH expands from the account's
    // home, as it finds ~/.ssh/config itself).
    let lab_dir = lab.dir().display().to_string();
    let config = std::fs::read_to_string(lab.ssh_config_path())
        .unwrap()
        .replace(&format!("{lab_dir}/id_ed25519"), "~/.ssh/id_ed25519")
        .replace(&format!("{lab_dir}/known_hosts"), "~/.ssh/known_hosts");
    assert!(!config.contains(&lab_dir), "{config}");
    user.write(".ssh/config", config.as_bytes(), 0o600);
    user.write(
        ".ssh/id_ed25519",
        &std::fs::read(lab.identity_file()).unwrap(),
        0o600,
    );
    user.write(
        ".ssh/known_hosts",
        &std::fs::read(lab.known_hosts_file()).unwrap(),
        0o644,
    );
    std::fs::set_permissions(
        user.home.join(".ssh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    // The build's directory need not be open to other users: a copy.
    let exe = user.write(
        "bin/swarm-upgrade",
        &std::fs::read(env!("CARGO_BIN_EXE_swarm-upgrade")).unwrap(),
        0o755,
    );
    let inventory = user.write(
        "inventory.yaml",
        &std::fs::read(lab.alias_inventory_path()).unwrap(),
        0o644,
    );
    user.chown_home();

    let plan = |extra: &[&str]| {
        let mut c = Command::new("runuser");
        c.args(["-u", user.name, "--", "env", "-i"])
            .arg(format!("HOME={}", user.home.display()))
            .arg("PATH=/usr/bin:/bin")
            .arg(format!(
                "SWARM_UPGRADE_STATE_DIR={}",
                user.home.join("state").display()
            ))
            .arg(&exe)
            .args(["plan", "--inventory"])
            .arg(&inventory)
            .args(["--pin", PIN, "--output", "json"])
            .args(extra);
        c
    };
    let out = run(plan(&[]), &format!("plan as {} (~/.ssh/config)", user.name));
    assert_eq!(
        out.status.code(),
        Some(0),
        "plan from the user's default ssh config failed"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 5, "{doc}");
    // Each node as its engine names itself, reached by its alias only.
    for n in lab.nodes() {
        assert!(
            nodes.iter().any(|p| p.to_string().contains(&n.name)),
            "{} missing from the plan: {doc}",
            n.name
        );
    }

    // The control: without that file the aliases mean nothing.
    let out = run(
        plan(&["-F", "/dev/null"]),
        &format!("plan as {} with -F /dev/null", user.name),
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bst-m1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs the testkit lab (root, the private dockerd); see testkit/README.md"]
fn c_max_startups_3_on_the_bastion_still_gives_complete_runs() {
    let lab = lab();
    let bastion = lab.bastion().unwrap();
    let sshd = lab_exec(&bastion.name, "sshd -T | grep -i '^maxstartups'");
    assert!(sshd.trim().starts_with("maxstartups 3:"), "{sshd}");

    // The limit bites: eight plain ssh connections at once, some refused.
    let config = lab.ssh_config_path();
    let workers = lab.workers();
    let burst: Vec<_> = (0..8)
        .map(|i| {
            Command::new("ssh")
                .arg("-F")
                .arg(&config)
                .args([
                    "-o",
                    "BatchMode=yes",
                    &workers[i % workers.len()].name,
                    "true",
                ])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let refused = burst
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .filter(|o| !o.status.success())
        .count();
    assert!(
        refused > 0,
        "MaxStartups 3 refused none of 8 connections at once"
    );
    eprintln!("plain ssh: {refused} of 8 connections at once refused by the bastion");

    // swarm-upgrade reads the 4 workers at once (--forks 8) through it.
    let mut retries = 0;
    for i in 0..3 {
        let mut plan = swarm_upgrade(
            &lab,
            &[
                "plan",
                "--inventory",
                path_str(&lab.alias_inventory_path()),
                "--pin",
                PIN,
                "--forks",
                "8",
                "-v",
            ],
        );
        plan.env("SWARM_UPGRADE_SSH_CONFIG", &config);
        let out = run(plan, &format!("plan --forks 8 -v (run {i})"));
        assert_eq!(out.status.code(), Some(0));
        retries += retried(&String::from_utf8_lossy(&out.stderr));
    }
    // Were the handshakes not really concurrent, nothing would be refused and
    // this test would prove nothing.
    assert!(
        retries > 0,
        "no connection was refused: the burst did not reach the bastion's limit"
    );
    eprintln!("plan x3: {retries} connection(s) refused by the bastion and retried");
}

/// `sh -c SCRIPT` as root in a lab container (the bastion); stdout.
fn lab_exec(container: &str, script: &str) -> String {
    let out = testkit::cmd::docker()
        .args(["exec", container, "sh", "-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs the testkit lab (root, the private dockerd); see testkit/README.md"]
fn b_rollback_survives_the_bastion_restarting_mid_run() {
    let lab = lab();
    assert_all_at(&lab, PIN);
    let config = lab.ssh_config_path();
    let inventory = lab.alias_inventory_path();

    // `rollback` of a's run (every node back to 20.10, workers first), with
    // JSON events on stdout to see where it is.
    // Kept in the lab's state dir (removed with the lab) for a post-mortem.
    let log = state_dir(&lab).join("rollback-stderr.log");
    let mut rollback = swarm_upgrade(
        &lab,
        &[
            "rollback",
            "--inventory",
            path_str(&inventory),
            "--yes",
            "--output",
            "json",
            "-v",
        ],
    );
    rollback
        .env("SWARM_UPGRADE_SSH_CONFIG", &config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    let t = Instant::now();
    let mut child = rollback.spawn().unwrap();
    let mut events = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut trigger = None;
    for line in events.by_ref() {
        let ev: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap_or_default();
        if ev["event"] == "step-started" && ev["action"] == "wait-drained" {
            trigger = Some(ev);
            break;
        }
    }
    let trigger = trigger.unwrap_or_else(|| {
        panic!(
            "the rollback ended before a node was drained:\n{}",
            std::fs::read_to_string(&log).unwrap()
        )
    });
    // Every sshd process of the bastion, the connections' own included: the
    // masters through it die, and for 20 s no new one can be opened.
    lab.stop_bastion_sshd().unwrap();
    eprintln!(
        "bastion sshd stopped at {:.1} s, while {} is being drained",
        t.elapsed().as_secs_f64(),
        trigger["node"]
    );
    std::thread::sleep(Duration::from_secs(20));
    lab.start_bastion_sshd().unwrap();
    eprintln!(
        "bastion sshd started again at {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let rest: Vec<serde_json::Value> = events
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    // What the run said, and what ssh did (-v logs every command too).
    let shown: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains(" DEBUG ") || l.contains("ssh:") || l.contains("failed"))
        .filter(|l| !l.starts_with(char::is_whitespace))
        .collect();
    eprintln!(
        "rollback -> {:?} in {:.1} s (log: {})\n{}",
        status.code(),
        t.elapsed().as_secs_f64(),
        log.display(),
        shown.join("\n")
    );
    assert_eq!(
        status.code(),
        Some(0),
        "the rollback did not survive the bastion's restart"
    );
    // One master per host (5) unless some were lost and opened again.
    let opened = stderr.matches("ssh: opening a connection").count();
    assert!(
        opened > 5,
        "{opened} connection(s) opened: none was reopened ({} events after the outage)",
        rest.len()
    );
    assert_all_at(&lab, OLD);
}

#[test]
#[ignore = "needs the testkit lab (root, the private dockerd); see testkit/README.md"]
fn bb_a_changed_bastion_host_key_is_refused_naming_the_bastion() {
    let lab = lab();
    let inventory = lab.alias_inventory_path();
    // Refused, and the bastion is named.
    let tampered = tempfile::tempdir().unwrap();
    let (config, _) = with_changed_key(&lab, tampered.path(), &lab.bastion().unwrap().name);
    let out = run(
        swarm_upgrade(
            &lab,
            &[
                "plan",
                "-F",
                path_str(&config),
                "--inventory",
                path_str(&inventory),
                "--pin",
                PIN,
            ],
        ),
        "plan with a changed bastion host key",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("the host key of the jump host bst-bastion"),
        "the message must name the bastion: {err}"
    );
    // The same for a node's key does not blame the bastion.
    let (config, _) = with_changed_key(&lab, tampered.path(), "bst-m1");
    let out = run(
        swarm_upgrade(
            &lab,
            &[
                "plan",
                "-F",
                path_str(&config),
                "--inventory",
                path_str(&inventory),
                "--pin",
                PIN,
            ],
        ),
        "plan with a changed host key of bst-m1",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("bst-m1") && !err.contains("jump host"),
        "{err}"
    );
}

/// A copy of the lab's ssh config whose known_hosts has another key for
/// `host` (every key of it replaced by a new ed25519 key): (config, known_hosts).
fn with_changed_key(lab: &Lab, dir: &Path, host: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{host}-key"));
    let _ = std::fs::remove_file(&key);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut words = public.split_whitespace();
    let (kind, blob) = (words.next().unwrap(), words.next().unwrap());
    let original = std::fs::read_to_string(lab.known_hosts_file()).unwrap();
    let mut known = String::new();
    let mut replaced = false;
    for line in original.lines() {
        let names = line.split_whitespace().next().unwrap_or("");
        if names.split(',').any(|n| n == host) {
            if !replaced {
                known.push_str(&format!("{names} {kind} {blob}\n"));
                replaced = true;
            }
        } else {
            known.push_str(line);
            known.push('\n');
        }
    }
    assert!(replaced, "{host} is not in the lab's known_hosts");
    let known_path = dir.join(format!("{host}-known_hosts"));
    std::fs::write(&known_path, known).unwrap();
    let config = std::fs::read_to_string(lab.ssh_config_path())
        .unwrap()
        .replace(path_str(&lab.known_hosts_file()), path_str(&known_path));
    let config_path = dir.join(format!("{host}-ssh_config"));
    std::fs::write(&config_path, config).unwrap();
    (config_path, known_path)
}

#[test]
#[ignore = "needs the testkit lab (root, the private dockerd); see testkit/README.md"]
fn zz_remove_the_bastion_lab() {
    Lab::down(LAB).unwrap_or_else(|e| panic!("removing lab {LAB}: {e:#}"));
    let rules = Command::new("iptables")
        .args(["-S", "OUTPUT"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(
        !rules.contains(&testkit::bastion::rule_comment(LAB)),
        "down left the lab's iptables rule: {rules}"
    );
}
