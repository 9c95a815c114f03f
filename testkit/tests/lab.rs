//! Tests against a running testkit lab (`testkit up`), run by CI with
//! `cargo test -p testkit --test lab -- --ignored --test-threads=1`.
//!
//! Every test FAILS (never skips) when the lab is not up, starts by waiting for a healthy
//! lab, and leaves the lab as it found it, also when it fails half way: reversals run from
//! guards on drop. The lab name is `lab` unless TESTKIT_LAB says otherwise.

use std::fs;
use std::path::PathBuf;
use std::process::Output;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use testkit::{Fault, Lab, NodeInfo, Role, Status};

const IGNORE_REASON: &str = "lab: needs a running testkit lab (testkit up)";
const HEALTHY_WITHIN: Duration = Duration::from_secs(180);

fn lab() -> Lab {
    let name = std::env::var("TESTKIT_LAB").unwrap_or_else(|_| "lab".to_string());
    match Lab::open(&name) {
        Ok(lab) => lab,
        Err(e) => panic!("{IGNORE_REASON}: {e:#}"),
    }
}

fn healthy(lab: &Lab) -> Status {
    lab.wait_healthy(HEALTHY_WITHIN)
        .unwrap_or_else(|e| panic!("lab {} is not healthy: {e:#}", lab.name()))
}

/// stdout of a successful command; panics with its stderr otherwise.
fn ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        sleep(Duration::from_millis(500));
    }
}

/// The swarm's state of a node, from whichever manager answers ("ready", "down", ...).
fn node_state(lab: &Lab, node: &str) -> Option<String> {
    lab.status().ok()?.node(node).map(|n| n.state.clone())
}

/// Reverses a fault when dropped (test passed or panicked), then waits for a healthy lab.
struct Restore<'a> {
    lab: &'a Lab,
    node: String,
    fault: Fault,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.lab.restore(&self.node, self.fault) {
            eprintln!(
                "cleanup: restoring {} on {} failed: {e:#}",
                self.fault, self.node
            );
        }
        if let Err(e) = self.lab.wait_healthy(HEALTHY_WITHIN) {
            eprintln!(
                "cleanup: lab not healthy after restoring {} on {}: {e:#}",
                self.fault, self.node
            );
        }
    }
}

fn inject<'a>(lab: &'a Lab, node: &str, fault: Fault) -> Restore<'a> {
    let guard = Restore {
        lab,
        node: node.to_string(),
        fault,
    };
    lab.fault(node, fault)
        .unwrap_or_else(|e| panic!("injecting {fault} into {node}: {e:#}"));
    guard
}

fn last_worker(lab: &Lab) -> NodeInfo {
    lab.workers().pop().expect("the lab has a worker")
}

fn first_worker(lab: &Lab) -> NodeInfo {
    lab.workers()
        .into_iter()
        .next()
        .expect("the lab has a worker")
}

fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("testkit-{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

// ----- (a) a healthy lab ---------------------------------------------------------------------

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn healthy_lab_has_ready_nodes_one_leader_and_reachable_managers() {
    let lab = lab();
    let status = healthy(&lab);
    assert_eq!(status.nodes.len(), lab.nodes().len());
    assert_eq!(lab.nodes().len(), 5, "the default lab has 5 nodes");
    for n in &status.nodes {
        assert_eq!(n.state, "ready", "{n:?}");
        assert_eq!(n.availability, "active", "{n:?}");
        assert!(n.engine_version.starts_with("20.10.24"), "{n:?}");
    }
    let managers: Vec<_> = status
        .nodes
        .iter()
        .filter(|n| n.role == "manager")
        .collect();
    assert_eq!(managers.len(), 3);
    assert!(
        managers
            .iter()
            .all(|m| m.reachability.as_deref() == Some("reachable"))
    );
    assert_eq!(status.nodes.iter().filter(|n| n.leader).count(), 1);
    assert!(
        status
            .nodes
            .iter()
            .filter(|n| n.role == "worker")
            .all(|n| n.reachability.is_none())
    );
    // The lab's own plan of nodes matches the swarm's.
    for node in lab.nodes() {
        let seen = status
            .node(&node.name)
            .expect("every lab node is in the swarm");
        assert_eq!(seen.address, node.address.to_string());
        assert_eq!(
            seen.role,
            if node.role == Role::Manager {
                "manager"
            } else {
                "worker"
            }
        );
    }
    for service in ["probe-server", "probe-client"] {
        let s = status
            .service(service)
            .expect("probe services are deployed");
        assert!(s.desired > 0 && s.running == s.desired, "{s:?}");
    }
}

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn ssh_with_strict_host_key_checking_works_and_rejects_a_wrong_host_key() {
    let lab = lab();
    healthy(&lab);
    let inventory = fs::read_to_string(lab.inventory_path()).unwrap();
    for node in lab.nodes() {
        let out = ok(
            &format!("ssh {}", node.name),
            lab.ssh(&node.name, &["hostname"]).unwrap(),
        );
        assert_eq!(out.trim(), node.name);
        assert!(inventory.contains(&format!("address: {}", node.address)));
        // The inventory says sudo: true; passwordless sudo must work.
        ok(
            "sudo",
            lab.ssh(&node.name, &["sudo", "-n", "true"]).unwrap(),
        );
    }

    // A known_hosts that names every node with some other key must make ssh refuse.
    let dir = scratch_dir("wrong-host-key");
    let key = dir.join("other");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    ok("ssh-keygen", out);
    let other = fs::read_to_string(key.with_extension("pub")).unwrap();
    let other: Vec<&str> = other.split_whitespace().take(2).collect();
    let wrong: String = lab
        .nodes()
        .iter()
        .map(|n| format!("{},{} {} {}\n", n.name, n.address, other[0], other[1]))
        .collect();
    let wrong_file = dir.join("known_hosts");
    fs::write(&wrong_file, wrong).unwrap();
    let empty_file = dir.join("empty");
    fs::write(&empty_file, "").unwrap();
    for node in lab.nodes() {
        for file in [&wrong_file, &empty_file] {
            let out = lab
                .ssh_with_known_hosts(&node.name, file, &["true"])
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(255), "{}: {stderr}", node.name);
            assert!(
                stderr.contains("Host key verification failed"),
                "{}: {stderr}",
                node.name
            );
        }
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn probe_sees_no_failures_in_30_seconds_of_a_healthy_lab() {
    let lab = lab();
    healthy(&lab);
    let since = SystemTime::now();
    sleep(Duration::from_secs(30));
    let report = lab.probe_report(Some(since)).unwrap();
    eprintln!("{}", report.render_text());
    assert_eq!(report.failed, 0, "{report:#?}");
    assert_eq!(report.clients.len(), 2, "{report:#?}");
    // 2 clients x 10 requests/s x 30 s = 600; allow for scheduling slack.
    assert!(report.sent >= 500, "only {} requests in 30 s", report.sent);
    assert!(report.gaps.is_empty(), "{report:#?}");
    assert!(
        report
            .clients
            .iter()
            .all(|c| c.gaps.is_empty() && c.sent >= 250),
        "{report:#?}"
    );
}

// ----- (b) a manual upgrade through the staged repository --------------------------------

/// Drain a node from a manager and wait until no task runs on it any more.
fn drain(lab: &Lab, node: &str) {
    lab.on_manager(&format!("docker node update --availability drain {node}"))
        .unwrap();
    wait_until(
        &format!("tasks to leave {node}"),
        Duration::from_secs(120),
        || {
            let scheduled = lab
                .on_manager(&format!(
                    "docker node ps {node} --filter desired-state=running -q"
                ))
                .unwrap();
            let containers = ok("docker ps", lab.ssh(node, &["docker", "ps", "-q"]).unwrap());
            scheduled.trim().is_empty() && containers.trim().is_empty()
        },
    );
}

fn activate(lab: &Lab, node: &str) {
    lab.on_manager(&format!("docker node update --availability active {node}"))
        .unwrap();
}

/// The node-side steps of an engine change, over SSH with sudo, the way an operator (or
/// swarm-upgrade) does it: stop the engine, forbid the package scripts to start it, install
/// from the offline repository, lift the ban, start the engine.
fn install_engine(lab: &Lab, node: &str, packages: &[String]) {
    let script = format!(
        "set -e
         # The init script's stop fails when no dockerd runs (e.g. a broken engine).
         if sudo service docker status >/dev/null; then sudo service docker stop; fi
         printf '#!/bin/sh\\nexit 101\\n' | sudo tee /usr/sbin/policy-rc.d >/dev/null
         sudo chmod 0755 /usr/sbin/policy-rc.d
         sudo apt-get update -q
         sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades {}
         sudo rm -f /usr/sbin/policy-rc.d
         sudo service docker start",
        packages.join(" ")
    );
    let out = lab.ssh(node, &["sh", "-c", &script]).unwrap();
    // Never leave the ban behind, even when the install failed.
    let _ = lab.ssh(node, &["sudo", "rm", "-f", "/usr/sbin/policy-rc.d"]);
    ok(&format!("engine install on {node}"), out);
}

/// 240 s: a CI run under load (3 labs on 2 cores) once took over 120 s to see a
/// downgraded worker ready again; what the swarm last said is in the failure.
fn wait_engine(lab: &Lab, node: &str, version_prefix: &str) {
    let start = Instant::now();
    let timeout = Duration::from_secs(240);
    loop {
        let seen = match lab.status() {
            Ok(s) => match s.node(node) {
                Some(n) if n.state == "ready" && n.engine_version.starts_with(version_prefix) => {
                    return;
                }
                Some(n) => format!("{} at engine {}", n.state, n.engine_version),
                None => "not in the swarm".into(),
            },
            Err(e) => format!("{e:#}"),
        };
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {node} to be ready at engine \
             {version_prefix}; last seen: {seen}"
        );
        sleep(Duration::from_millis(500));
    }
}

/// The original engine of a node, as a package set: bookworm's docker.io (with the CLI in
/// it) and containerd; trixie's split-out docker-cli must go (`pkg-` removes it).
fn original_engine(lab: &Lab) -> Vec<String> {
    let v = lab.staged_versions().unwrap();
    vec![
        format!("docker.io={}", v.current_docker_io),
        format!("containerd={}", v.current_containerd),
        format!("runc={}", v.current_runc),
        "docker-cli-".to_string(),
    ]
}

/// Puts a node back on its original engine and in service when dropped (also on panic).
struct EngineRestore<'a> {
    lab: &'a Lab,
    node: String,
}

impl Drop for EngineRestore<'_> {
    fn drop(&mut self) {
        let status = self.lab.status();
        let original = status
            .as_ref()
            .ok()
            .and_then(|s| s.node(&self.node))
            .is_some_and(|n| {
                n.state == "ready"
                    && n.availability == "active"
                    && n.engine_version.starts_with("20.10.24")
            });
        if !original {
            eprintln!("cleanup: putting {} back on its original engine", self.node);
            let packages = original_engine(self.lab).join(" ");
            let script = format!(
                "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d; chmod 0755 /usr/sbin/policy-rc.d; \
                 service docker stop; DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades {packages}; \
                 rm -f /usr/sbin/policy-rc.d; service docker start"
            );
            if let Err(e) = self.lab.exec_sh(&self.node, &script) {
                eprintln!("cleanup: {e:#}");
            }
            let _ = self.lab.on_manager(&format!(
                "docker node update --availability active {}",
                self.node
            ));
        }
        if let Err(e) = self.lab.wait_healthy(HEALTHY_WITHIN) {
            eprintln!(
                "cleanup: lab not healthy after restoring {}: {e:#}",
                self.node
            );
        }
    }
}

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn manual_upgrade_of_a_worker_to_26_1_5_and_back() {
    let lab = lab();
    healthy(&lab);
    let node = last_worker(&lab).name;
    let v = lab.staged_versions().unwrap();
    assert!(v.target_docker_io.starts_with("26.1.5"), "{v:?}");
    let _restore = EngineRestore {
        lab: &lab,
        node: node.clone(),
    };

    // Upgrade: drain, install the target package set (the CLI is a separate package since
    // trixie: without docker-cli the node would lose /usr/bin/docker), start, activate.
    let start = Instant::now();
    drain(&lab, &node);
    install_engine(
        &lab,
        &node,
        &[
            format!("docker.io={}", v.target_docker_io),
            format!("docker-cli={}", v.target_docker_cli),
            format!("containerd={}", v.target_containerd),
        ],
    );
    wait_engine(&lab, &node, "26.1.5");
    let versions = ok(
        "docker version",
        lab.ssh(
            &node,
            &[
                "docker",
                "version",
                "--format",
                "{{.Client.Version}} {{.Server.Version}}",
            ],
        )
        .unwrap(),
    );
    assert!(versions.trim().starts_with("26.1.5"), "{versions}");
    assert!(versions.trim().ends_with("26.1.5+dfsg1"), "{versions}");
    activate(&lab, &node);
    healthy(&lab);
    eprintln!(
        "upgrade of {node} to 26.1.5 took {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // And back, the same way, so that the lab ends as it began.
    drain(&lab, &node);
    install_engine(&lab, &node, &original_engine(&lab));
    wait_engine(&lab, &node, "20.10.24");
    let versions = ok(
        "docker version",
        lab.ssh(
            &node,
            &[
                "docker",
                "version",
                "--format",
                "{{.Client.Version}} {{.Server.Version}}",
            ],
        )
        .unwrap(),
    );
    assert_eq!(versions.trim(), "20.10.24+dfsg1 20.10.24+dfsg1");
    activate(&lab, &node);
    let status = healthy(&lab);
    assert_eq!(status.node(&node).unwrap().availability, "active");
}

// ----- (d) the deliberately broken engine --------------------------------------------------

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn the_broken_engine_installs_but_never_starts() {
    let lab = lab();
    healthy(&lab);
    let node = last_worker(&lab).name;
    let v = lab.staged_versions().unwrap();

    // Offered offline, next to the real versions.
    let madison = ok(
        "madison",
        lab.ssh(&node, &["apt-cache", "madison", "docker.io"])
            .unwrap(),
    );
    for version in [&v.current_docker_io, &v.target_docker_io, &v.broken] {
        assert!(
            madison.contains(&format!("docker.io | {version} |")),
            "{madison}"
        );
    }
    assert!(v.broken.starts_with("26.1.99"));

    let _restore = EngineRestore {
        lab: &lab,
        node: node.clone(),
    };
    drain(&lab, &node);
    install_engine(
        &lab,
        &node,
        &[
            format!("docker.io={}", v.broken),
            format!("docker-cli={}", v.broken),
            format!("containerd={}", v.target_containerd),
        ],
    );
    let installed = ok(
        "dpkg-query",
        lab.ssh(
            &node,
            &["dpkg-query", "-W", "-f", "${Version}", "docker.io"],
        )
        .unwrap(),
    );
    assert_eq!(installed, v.broken);
    // `service docker start` returned 0 (start-stop-daemon only forks); the daemon is gone.
    sleep(Duration::from_secs(3));
    let pgrep = lab.ssh(&node, &["pgrep", "-x", "dockerd"]).unwrap();
    assert_eq!(pgrep.status.code(), Some(1), "a dockerd is running");
    let version = lab.ssh(&node, &["docker", "version"]).unwrap();
    assert!(
        !version.status.success(),
        "docker version succeeded against a broken engine"
    );
    let log = ok(
        "log",
        lab.ssh(&node, &["sudo", "tail", "-n", "20", "/var/log/docker.log"])
            .unwrap(),
    );
    assert!(
        log.contains("testkit: deliberately broken dockerd 26.1.99"),
        "{log}"
    );
    wait_until(
        &format!("{node} to be down"),
        Duration::from_secs(60),
        || node_state(&lab, &node).as_deref() == Some("down"),
    );

    // Roll back to the original engine; it rejoins.
    install_engine(&lab, &node, &original_engine(&lab));
    wait_engine(&lab, &node, "20.10.24");
    activate(&lab, &node);
    healthy(&lab);
}

// ----- (c) faults and their reversal ---------------------------------------------------------

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn fault_stop_engine_and_start_engine() {
    let lab = lab();
    healthy(&lab);
    let node = first_worker(&lab).name;
    let guard = inject(&lab, &node, Fault::StopEngine);
    let info = lab.exec(&node, &["docker", "info"]).unwrap();
    assert!(!info.status.success(), "the engine still answers");
    // sshd is unaffected: the host is up, only its engine is not.
    ok("ssh", lab.ssh(&node, &["true"]).unwrap());
    wait_until(
        &format!("{node} to be down in the swarm"),
        Duration::from_secs(60),
        || node_state(&lab, &node).as_deref() == Some("down"),
    );
    drop(guard);
    ok("docker info", lab.exec(&node, &["docker", "info"]).unwrap());
    assert_eq!(healthy(&lab).node(&node).unwrap().state, "ready");
}

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn fault_kill_engine_on_a_manager_and_start_engine() {
    let lab = lab();
    let status = healthy(&lab);
    // A manager that is not the leader: the swarm keeps quorum (2 of 3) throughout.
    let node = status
        .nodes
        .iter()
        .find(|n| n.role == "manager" && !n.leader)
        .expect("a follower manager")
        .name
        .clone();
    let guard = inject(&lab, &node, Fault::KillEngine);
    let pgrep = lab.exec(&node, &["pgrep", "-x", "dockerd"]).unwrap();
    assert_eq!(pgrep.status.code(), Some(1), "dockerd still runs");
    wait_until(
        &format!("{node} to be unreachable"),
        Duration::from_secs(60),
        || {
            lab.status().ok().is_some_and(|s| {
                s.node(&node)
                    .and_then(|n| n.reachability.clone())
                    .as_deref()
                    == Some("unreachable")
            })
        },
    );
    drop(guard);
    let status = healthy(&lab);
    assert_eq!(
        status.node(&node).unwrap().reachability.as_deref(),
        Some("reachable")
    );
}

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn fault_stop_node_and_start_node() {
    let lab = lab();
    healthy(&lab);
    let node = last_worker(&lab).name;
    let guard = inject(&lab, &node, Fault::StopNode);
    assert!(!lab.is_running(&node).unwrap());
    let ssh = lab.ssh(&node, &["true"]).unwrap();
    assert_eq!(
        ssh.status.code(),
        Some(255),
        "ssh to a stopped node succeeded"
    );
    wait_until(
        &format!("{node} to be down in the swarm"),
        Duration::from_secs(60),
        || node_state(&lab, &node).as_deref() == Some("down"),
    );
    drop(guard);
    // The node's init brought sshd and dockerd back, with the same host keys.
    assert_eq!(
        ok("ssh", lab.ssh(&node, &["hostname"]).unwrap()).trim(),
        node
    );
    healthy(&lab);
}

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn fault_disconnect_and_connect() {
    let lab = lab();
    healthy(&lab);
    let node = first_worker(&lab).name;
    let guard = inject(&lab, &node, Fault::Disconnect);
    let ssh = lab.ssh(&node, &["true"]).unwrap();
    assert_eq!(
        ssh.status.code(),
        Some(255),
        "ssh to a disconnected node succeeded"
    );
    wait_until(
        &format!("{node} to be down in the swarm"),
        Duration::from_secs(90),
        || node_state(&lab, &node).as_deref() == Some("down"),
    );
    drop(guard);
    ok("ssh", lab.ssh(&node, &["true"]).unwrap());
    let ip = ok("ip", lab.exec(&node, &["hostname", "-i"]).unwrap());
    assert!(
        ip.contains(&lab.node(&node).unwrap().address.to_string()),
        "{ip}"
    );
    healthy(&lab);
}

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn fault_no_sudo_and_sudo() {
    let lab = lab();
    healthy(&lab);
    let node = first_worker(&lab).name;
    let guard = inject(&lab, &node, Fault::NoSudo);
    let sudo = lab.ssh(&node, &["sudo", "-n", "true"]).unwrap();
    assert!(!sudo.status.success(), "sudo still works");
    ok("ssh without sudo", lab.ssh(&node, &["true"]).unwrap());
    drop(guard);
    ok("sudo", lab.ssh(&node, &["sudo", "-n", "true"]).unwrap());
}

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn fault_fill_disk_and_free_disk() {
    let lab = lab();
    healthy(&lab);
    let node = first_worker(&lab).name;
    let free = |lab: &Lab| -> u64 {
        ok(
            "df",
            lab.ssh(
                &node,
                &["df", "-B1", "--output=avail", "/var/lib/swarm-upgrade"],
            )
            .unwrap(),
        )
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
    };
    assert!(free(&lab) > 1 << 30);
    let guard = inject(&lab, &node, Fault::FillDisk);
    assert!(free(&lab) < 16 << 20, "{} bytes free", free(&lab));
    // A 32 MiB backup no longer fits.
    let write = lab
        .ssh(
            &node,
            &[
                "sudo",
                "sh",
                "-c",
                "head -c 33554432 /dev/zero > /var/lib/swarm-upgrade/backup.test",
            ],
        )
        .unwrap();
    let _ = lab.ssh(
        &node,
        &["sudo", "rm", "-f", "/var/lib/swarm-upgrade/backup.test"],
    );
    assert!(
        !write.status.success(),
        "a 32 MiB write succeeded on a full disk"
    );
    drop(guard);
    assert!(free(&lab) > 1 << 30);
}
