//! The preflight checks of issue 5, reproduced for real on the testkit lab:
//! each test puts a real swarm into the state an incident started from (two
//! managers, a stopped manager, a full overlay subnet, live-restore, no sudo,
//! a service pinned to a node, autolock), runs the real `swarm-upgrade`
//! binary against it over SSH, and asserts the exit code, the finding's id,
//! severity, node and numbers in `plan --output json`; every case also runs
//! through `check` (same exit code, same blockers). One engine-version hazard
//! is reproduced for real: `oom-score-adjust` in daemon.json, which 26.1.5
//! refuses (`the_oom_score_adjust_hazard_...`). The checks of issue 18 are
//! reproduced too: an image that exists only on the node to be drained (and
//! one that a real registry serves to the receiving node), a
//! `DOCKER_OPTS` flag that 26.1.5's own dockerd refuses, and TCP 7946 dropped
//! by an iptables rule between two workers.
//!
//! The tests share one lab, "ck" (172.31.4.0/24), brought up by the first
//! test that needs it and left up between tests: each test undoes what it
//! changed (also when it fails) and checks that the lab is back to a clean,
//! unblocked plan. The autolock upgrade leaves its swarm at 26.1.5 and
//! autolocked, so it runs on a lab of its own, "ck2" (172.31.5.0/24), which it
//! removes. `zz_remove_the_checks_lab` runs last (tests run in name order with
//! `--test-threads=1`) and removes "ck".
//!
//! `#[ignore]`d in a plain `cargo test`; the lab suite runs them with
//! `--ignored --test-threads=1`, as root. A lab that cannot start fails the
//! test: nothing is skipped.

mod common;

use std::path::Path;
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{Fault, Lab, Status};

const PIN: &str = "26.1.5";
const LAB: &str = "ck";
const SUBNET: &str = "172.31.4.0/24";
const AUTOLOCK_LAB: &str = "ck2";
const AUTOLOCK_SUBNET: &str = "172.31.5.0/24";

/// The shared lab "ck", brought up if it is not, and healthy.
fn lab() -> Lab {
    let lab = match Lab::open(LAB) {
        Ok(lab) => lab,
        Err(why) => {
            eprintln!("lab {LAB} is not up ({why:#}); bringing it up");
            // Leftovers of a lab that is half there would make `up` refuse.
            if testkit::paths::lab_dir(LAB).exists() {
                Lab::down(LAB)
                    .unwrap_or_else(|e| panic!("removing what is left of lab {LAB}: {e:#}"));
            }
            common::up(LAB, SUBNET)
        }
    };
    lab.wait_healthy(Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("lab {LAB} is not healthy before the test: {e:#}"));
    lab
}

/// Runs `swarm-upgrade ARGS --inventory <the lab's>` with a private state dir
/// and no unlock key unless `env` gives one.
fn swarm_upgrade(lab: &Lab, state_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = common::command(&lab.inventory_path(), state_dir, args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    common::run_logged(cmd, args)
}

/// `plan --pin 26.1.5 --output json` (plus `extra`): the exit code and the
/// plan. Every preflight case also goes through `check` with the same
/// arguments: it must exit the same way and report the plan's blockers
/// (id, node, message). `check` runs a few seconds later, so a blocker that
/// appears in between (a heartbeat timing out) may be added, never lost.
fn plan(lab: &Lab, extra: &[&str]) -> (Option<i32>, Value) {
    let (code, plan) = run_json(lab, "plan", extra);
    // Only `plan` saves facts.
    let mut check_extra = vec![];
    let mut args = extra.iter();
    while let Some(a) = args.next() {
        if *a == "--save-facts" {
            args.next();
        } else {
            check_extra.push(*a);
        }
    }
    let (check_code, check) = check(lab, &check_extra);
    assert_eq!(
        check_code, code,
        "check exits as plan does; check found: {:#}",
        check["findings"]
    );
    assert_eq!(check["blocked"], code == Some(3), "{check:#}");
    let key = |f: &Value| (f["id"].clone(), f["node"].clone(), f["message"].clone());
    let checked: Vec<_> = blockers(&check).into_iter().map(key).collect();
    for b in blockers(&plan) {
        assert!(
            checked.contains(&key(b)),
            "check misses the plan's blocker {b:#}; check found: {:#}",
            check["findings"]
        );
    }
    (code, plan)
}

/// `check --pin 26.1.5 --output json` (plus `extra`): the exit code and the report.
fn check(lab: &Lab, extra: &[&str]) -> (Option<i32>, Value) {
    run_json(lab, "check", extra)
}

fn run_json(lab: &Lab, command: &str, extra: &[&str]) -> (Option<i32>, Value) {
    let state = tempfile::tempdir().unwrap();
    let mut args = vec![command, "--pin", PIN, "--output", "json"];
    args.extend_from_slice(extra);
    let out = swarm_upgrade(lab, state.path(), &args, &[]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{command} printed no JSON ({e}); exit {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), doc)
}

fn findings(plan: &Value) -> &Vec<Value> {
    plan["findings"].as_array().expect("findings")
}

fn blockers(plan: &Value) -> Vec<&Value> {
    findings(plan)
        .iter()
        .filter(|f| f["severity"] == "block")
        .collect()
}

/// The one finding of check `id` at `severity`, or a panic listing them all.
fn the<'a>(plan: &'a Value, id: &str, severity: &str) -> &'a Value {
    let matching: Vec<&Value> = findings(plan)
        .iter()
        .filter(|f| f["id"] == id && f["severity"] == severity)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "expected exactly one `{id}` finding at {severity}; findings: {:#}",
        plan["findings"]
    );
    matching[0]
}

fn message(f: &Value) -> &str {
    f["message"].as_str().expect("a message")
}

type UndoFn<'a> = Box<dyn FnOnce(&Lab) -> anyhow::Result<()> + 'a>;

/// What a test changed on the shared lab, undone when the test ends: by
/// `done()` on success (a failed undo fails the test), or on drop when the
/// test panicked (a failed undo is reported; the next test's `lab()` then
/// fails loudly on the unhealthy lab).
struct Undo<'a> {
    lab: &'a Lab,
    what: String,
    undo: Option<UndoFn<'a>>,
}

impl<'a> Undo<'a> {
    fn new(lab: &'a Lab, what: &str, undo: impl FnOnce(&Lab) -> anyhow::Result<()> + 'a) -> Self {
        Undo {
            lab,
            what: what.to_string(),
            undo: Some(Box::new(undo)),
        }
    }

    fn done(mut self) {
        let t = Instant::now();
        let undo = self.undo.take().expect("undone once");
        undo(self.lab).unwrap_or_else(|e| panic!("undoing {}: {e:#}", self.what));
        eprintln!("undid {} in {:.1} s", self.what, t.elapsed().as_secs_f64());
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            eprintln!("the test failed; undoing {}", self.what);
            if let Err(e) = undo(self.lab) {
                eprintln!("undoing {} failed: {e:#}", self.what);
            }
        }
    }
}

/// Polls the swarm's view until `ok` holds (or fails with the last view).
fn wait_status(
    lab: &Lab,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&Status) -> bool,
) -> anyhow::Result<Status> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match lab.status() {
            Ok(st) if ok(&st) => return Ok(st),
            Ok(st) => st.render_text(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            anyhow::bail!("{what}: not within {timeout:?}; last view:\n{last}");
        }
        thread::sleep(Duration::from_secs(1));
    }
}

/// The lab is back as the tests expect it: healthy, 3 managers and 2 workers,
/// and a plan with nothing blocking.
fn assert_clean(lab: &Lab) {
    let st = lab
        .wait_healthy(Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("the lab is not healthy after the test: {e:#}"));
    let managers = st.nodes.iter().filter(|n| n.role == "manager").count();
    assert_eq!(managers, 3, "{}", st.render_text());
    let (code, plan) = plan(lab, &[]);
    assert_eq!(
        code,
        Some(0),
        "the lab is left blocked: {:#}",
        plan["findings"]
    );
    assert!(blockers(&plan).is_empty(), "{:#}", plan["findings"]);
}

/// The probe image every node has (no registry in the lab).
fn probe_image(lab: &Lab) -> String {
    let image = lab
        .on_manager("docker service inspect probe-server --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}'")
        .unwrap();
    let image = image.trim();
    assert!(!image.is_empty(), "probe-server has no image");
    // A digest is not resolvable offline; every node has the tag.
    image.split('@').next().unwrap().to_string()
}

fn remove_service(lab: &Lab, name: &str) -> anyhow::Result<()> {
    lab.on_manager(&format!("docker service rm {name} >/dev/null 2>&1 || true"))?;
    wait_status(
        lab,
        &format!("service {name} to be removed"),
        Duration::from_secs(60),
        |st| st.service(name).is_none(),
    )?;
    Ok(())
}

fn wait_converged(lab: &Lab, service: &str, replicas: u32) {
    wait_status(
        lab,
        &format!("service {service} at {replicas}/{replicas}"),
        Duration::from_secs(120),
        |st| {
            st.service(service)
                .is_some_and(|s| s.running == replicas && s.desired == replicas)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// A manager that does not lead (the last one listed): stopping or demoting it
/// does not start an election.
fn a_follower(lab: &Lab) -> String {
    let st = lab.status().unwrap();
    st.nodes
        .iter()
        .rev()
        .find(|n| n.role == "manager" && !n.leader)
        .map(|n| n.name.clone())
        .expect("a follower manager")
}

fn report_time(what: &str, t: Instant) {
    eprintln!("{what}: {:.0} s", t.elapsed().as_secs_f64());
}

// ----- the reproductions ----------------------------------------------------------------------

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn a_host_without_passwordless_sudo_is_blocked_by_name() {
    let t = Instant::now();
    let lab = lab();
    let w = lab.workers()[0].clone();
    lab.fault(&w.name, Fault::NoSudo).unwrap();
    let undo = Undo::new(&lab, &format!("no-sudo on {}", w.name), {
        let w = w.name.clone();
        move |lab| lab.restore(&w, Fault::NoSudo)
    });
    // The lab's own SSH path shows the fault: sudo -n refuses.
    let out = lab.ssh(&w.name, &["sudo", "-n", "true"]).unwrap();
    assert!(!out.status.success(), "sudo -n still works on {}", w.name);

    let dir = tempfile::tempdir().unwrap();
    let facts_file = dir.path().join("facts.json");
    let (code, plan) = plan(&lab, &["--save-facts", facts_file.to_str().unwrap()]);
    assert_eq!(code, Some(3), "blocked: {:#}", plan["findings"]);
    let f = the(&plan, "sudo", "block");
    assert_eq!(f["node"], w.name.as_str());
    assert!(
        message(f).starts_with(&format!(
            "host {} ({}): passwordless sudo is required",
            w.name, w.address
        )),
        "{f}"
    );
    // The facts read without sudo mislead no other check: sudo is the only blocker.
    let others: Vec<_> = blockers(&plan)
        .into_iter()
        .filter(|f| f["id"] != "sudo")
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    // Its facts were still read, as the upgrade user without sudo.
    let g: Value = serde_json::from_slice(&std::fs::read(&facts_file).unwrap()).unwrap();
    let h = g["facts"]["hosts"]
        .as_object()
        .unwrap()
        .values()
        .find(|h| h["host"] == w.name.as_str())
        .expect("the host's facts");
    assert_eq!(h["sudo_ok"], false);
    assert!(
        h["installed"]["docker.io"]
            .as_str()
            .unwrap()
            .starts_with("20.10.24"),
        "{h}"
    );
    assert_eq!(
        h["dockerd_path"], "/usr/sbin/dockerd",
        "found outside the user's PATH: {h}"
    );
    assert_eq!(h["dockerd_package"], "docker.io", "{h}");

    undo.done();
    assert_clean(&lab);
    report_time("no sudo", t);
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn a_live_restore_daemon_json_is_blocked_naming_the_node() {
    let t = Instant::now();
    let lab = lab();
    let w = lab.workers()[1].name.clone();
    let before = lab
        .exec_sh(&w, "cat /etc/docker/daemon.json 2>/dev/null || true")
        .unwrap();
    assert!(
        before.trim().is_empty(),
        "{w} already has a daemon.json: {before}"
    );
    lab.exec_sh(
        &w,
        r#"mkdir -p /etc/docker && printf '{"live-restore": true}\n' > /etc/docker/daemon.json"#,
    )
    .unwrap();
    let undo = Undo::new(&lab, &format!("live-restore in {w}'s daemon.json"), {
        let w = w.clone();
        move |lab| lab.exec_sh(&w, "rm -f /etc/docker/daemon.json").map(drop)
    });
    // No restart: the running engine still has it off; the file is what the next start reads.
    let running = lab
        .exec(
            &w,
            &["docker", "info", "--format", "{{.LiveRestoreEnabled}}"],
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&running.stdout).trim(), "false");

    let (code, plan) = plan(&lab, &[]);
    assert_eq!(code, Some(3), "blocked: {:#}", plan["findings"]);
    let f = the(&plan, "live-restore", "block");
    assert_eq!(f["node"], w.as_str());
    assert!(
        message(f).starts_with(&format!(
            "host {w}: /etc/docker/daemon.json sets \"live-restore\": true"
        )),
        "{f}"
    );
    assert!(message(f).contains("incompatible with swarm mode"), "{f}");
    let others: Vec<_> = blockers(&plan)
        .into_iter()
        .filter(|f| f["id"] != "live-restore")
        .collect();
    assert!(
        others.is_empty(),
        "the daemon.json parses and has nothing else: {others:#?}"
    );

    undo.done();
    assert_clean(&lab);
    report_time("live-restore", t);
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn a_manager_stopped_before_the_run_is_blocked_by_name() {
    let t = Instant::now();
    let lab = lab();
    let m = a_follower(&lab);
    lab.fault(&m, Fault::StopEngine).unwrap();
    let undo = Undo::new(&lab, &format!("stop-engine on {m}"), {
        let m = m.clone();
        move |lab| {
            lab.restore(&m, Fault::StopEngine)?;
            lab.wait_healthy(Duration::from_secs(180)).map(drop)
        }
    });
    let quorum_message = format!(
        "3 managers, quorum 2, 2 reachable: 1 manager is unreachable ({m}), so taking one more down leaves 1, \
         below quorum"
    );
    // Seconds after the stop: the raft has lost it, the heartbeat has not
    // timed out yet (the node may still show `ready`). Already blocked.
    wait_status(
        &lab,
        &format!("{m} to be unreachable"),
        Duration::from_secs(60),
        |st| {
            st.node(&m)
                .is_some_and(|n| n.reachability.as_deref() == Some("unreachable"))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let (code, plan_soon) = plan(&lab, &[]);
    assert_eq!(
        code,
        Some(3),
        "blocked at once: {:#}",
        plan_soon["findings"]
    );
    let quorum = the(&plan_soon, "quorum-budget", "block");
    assert!(message(quorum).starts_with(&quorum_message), "{quorum}");

    // As an operator would find it later: the swarm has noticed (heartbeat failure).
    let st = wait_status(
        &lab,
        &format!("{m} to be down"),
        Duration::from_secs(90),
        |st| {
            st.node(&m).is_some_and(|n| {
                n.state == "down" && n.reachability.as_deref() == Some("unreachable")
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("{}", st.render_text());

    let (code, plan) = plan(&lab, &[]);
    assert_eq!(code, Some(3), "blocked: {:#}", plan["findings"]);
    let health = the(&plan, "node-health", "block");
    assert_eq!(health["node"], m.as_str());
    assert!(
        message(health).starts_with(&format!("manager {m} is down")),
        "{health}"
    );
    let quorum = the(&plan, "quorum-budget", "block");
    assert!(message(quorum).starts_with(&quorum_message), "{quorum}");
    // Its host still answers SSH: nothing else blocks (no ssh-reachable, no misread facts).
    let mut ids: Vec<&str> = blockers(&plan)
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["node-health", "quorum-budget"],
        "{:#}",
        plan["findings"]
    );

    undo.done();
    assert_clean(&lab);
    report_time("stopped manager", t);
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn a_service_pinned_to_a_drained_node_is_warned_and_does_not_block() {
    let t = Instant::now();
    let lab = lab();
    let image = probe_image(&lab);
    let w1 = lab.workers()[0].name.clone();
    let others: Vec<String> = lab
        .nodes()
        .into_iter()
        .map(|n| n.name)
        .filter(|n| *n != w1)
        .collect();
    let undo = Undo::new(&lab, "service pinned", |lab| remove_service(lab, "pinned"));
    lab.on_manager(&format!(
        "docker service create --detach --name pinned --replicas 2 --constraint node.hostname=={w1} \
         --init --no-resolve-image --stop-grace-period 2s {image} server --port 8080 >/dev/null"
    ))
    .unwrap();
    wait_converged(&lab, "pinned", 2);

    let (code, plan) = plan(&lab, &[]);
    assert_eq!(
        code,
        Some(0),
        "warnings do not block: {:#}",
        plan["findings"]
    );
    assert!(blockers(&plan).is_empty(), "{:#}", plan["findings"]);
    let f = the(&plan, "drain-feasibility", "warn");
    let m = message(f);
    assert!(
        m.starts_with("service pinned (2 replicas) cannot place every replica during the drains"),
        "{f}"
    );
    assert!(
        m.contains(&format!(
            "while {w1} is drained, room for 0, so the service is down (`node.hostname=={w1}` rules out {})",
            others.join(", ")
        )),
        "{f}"
    );
    assert!(
        !m.contains("managers"),
        "draining the managers does not touch it: {f}"
    );

    undo.done();
    assert_clean(&lab);
    report_time("pinned service", t);
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn a_small_overlay_subnet_filled_to_capacity_is_blocked_with_the_numbers() {
    let t = Instant::now();
    let lab = lab();
    let image = probe_image(&lab);
    let undo = Undo::new(&lab, "service small and network small-net", |lab| {
        remove_service(lab, "small")?;
        // The network goes once the tasks' endpoints are gone.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match lab.on_manager("docker network rm small-net >/dev/null 2>&1 || ! docker network inspect small-net >/dev/null 2>&1") {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => thread::sleep(Duration::from_secs(2)),
            }
        }
    });
    // A /29: 8 addresses, 5 usable (network, gateway, broadcast reserved).
    lab.on_manager("docker network create --driver overlay --attachable --subnet 10.77.0.0/29 small-net >/dev/null")
        .unwrap();
    // dnsrr: no VIP. 3 tasks on the two workers, each of which also takes a
    // load-balancer address on the network: 3 + 2 = 5 of 5.
    lab.on_manager(&format!(
        "docker service create --detach --name small --replicas 3 --endpoint-mode dnsrr --network small-net \
         --constraint node.role==worker --init --no-resolve-image --stop-grace-period 2s {image} \
         server --port 8080 >/dev/null"
    ))
    .unwrap();
    wait_converged(&lab, "small", 3);
    // The real count of addresses on the network, on the nodes that hold them.
    let mut real = 0;
    for w in lab.workers() {
        let n = lab
            .exec_sh(
                &w.name,
                "docker network inspect small-net --format '{{len .Containers}}'",
            )
            .unwrap();
        real += n.trim().parse::<u32>().unwrap();
    }
    assert_eq!(
        real, 5,
        "3 task endpoints and 2 load-balancer endpoints on the workers"
    );

    let (code, plan) = plan(&lab, &[]);
    assert_eq!(code, Some(3), "blocked: {:#}", plan["findings"]);
    let f = the(&plan, "overlay-ip-headroom", "block");
    assert_eq!(f["node"], Value::Null);
    assert!(
        message(f).starts_with(
            "network small-net subnet 10.77.0.0/29: 5 of 5 addresses in use (3 tasks, 0 VIPs, 2 node LBs): it is full"
        ),
        "{f}"
    );
    assert!(message(f).contains("/24"), "the remedy: {f}");
    let others: Vec<_> = blockers(&plan)
        .into_iter()
        .filter(|f| f["id"] != "overlay-ip-headroom")
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    // The other overlay networks (ingress, probe-net: /24) have room.
    assert_eq!(
        findings(&plan)
            .iter()
            .filter(|f| f["id"] == "overlay-ip-headroom")
            .count(),
        1
    );

    // The swarm agrees that it is full: one more replica gets no address and
    // never leaves `new`, as the replacement task of a drain would not.
    lab.on_manager("docker service scale --detach small=4 >/dev/null")
        .unwrap();
    thread::sleep(Duration::from_secs(15));
    let states = lab
        .on_manager(
            "docker service ps small --filter desired-state=running --format '{{.CurrentState}}'",
        )
        .unwrap();
    let states: Vec<&str> = states
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(states.len(), 4, "{states:?}");
    assert_eq!(
        states.iter().filter(|s| s.starts_with("Running")).count(),
        3,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| s.starts_with("New")).count(),
        1,
        "{states:?}"
    );

    undo.done();
    assert_clean(&lab);
    report_time("small overlay subnet", t);
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn a_two_manager_swarm_is_blocked_by_quorum_budget() {
    let t = Instant::now();
    let lab = lab();
    let m = a_follower(&lab);
    lab.on_manager(&format!("docker node demote {m}")).unwrap();
    let undo = Undo::new(&lab, &format!("demotion of {m}"), {
        let m = m.clone();
        move |lab| {
            lab.on_manager(&format!("docker node promote {m}"))?;
            wait_status(
                lab,
                &format!("{m} to be a reachable manager again"),
                Duration::from_secs(120),
                |st| {
                    st.node(&m).is_some_and(|n| {
                        n.role == "manager" && n.reachability.as_deref() == Some("reachable")
                    })
                },
            )
            .map(drop)
        }
    });
    wait_status(&lab, "two managers", Duration::from_secs(60), |st| {
        st.nodes.iter().filter(|n| n.role == "manager").count() == 2
    })
    .unwrap_or_else(|e| panic!("{e:#}"));

    let (code, plan) = plan(&lab, &[]);
    assert_eq!(code, Some(3), "blocked: {:#}", plan["findings"]);
    let f = the(&plan, "quorum-budget", "block");
    assert_eq!(f["node"], Value::Null, "about the swarm, not a node");
    assert!(
        message(f).starts_with(
            "2 managers, quorum 2, 2 reachable: taking any one down for its upgrade leaves 1, below quorum"
        ),
        "{f}"
    );
    assert!(message(f).contains("Promote a worker"), "the remedy: {f}");
    let demoted = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == m.as_str())
        .expect("the demoted node is planned");
    assert_eq!(
        demoted["role"], "worker",
        "read from the real swarm: {demoted}"
    );
    let others: Vec<_> = blockers(&plan)
        .into_iter()
        .filter(|f| f["id"] != "quorum-budget")
        .collect();
    assert!(others.is_empty(), "{others:#?}");

    undo.done();
    assert_clean(&lab);
    report_time("two managers", t);
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn the_clean_lab_passes_and_its_facts_are_read_from_the_real_nodes() {
    let t = Instant::now();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let facts_file = dir.path().join("facts.json");
    let (code, plan) = plan(&lab, &["--save-facts", facts_file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{:#}", plan["findings"]);
    assert!(blockers(&plan).is_empty(), "{:#}", plan["findings"]);
    // What a clean lab does show: the 4-major jump, unheld packages, sysvinit.
    the(&plan, "version-skew", "warn");
    the(&plan, "quorum-budget", "info");

    let g: Value = serde_json::from_slice(&std::fs::read(&facts_file).unwrap()).unwrap();
    let facts = &g["facts"];
    let cluster = &facts["cluster"];
    assert_eq!(cluster["swarm"]["autolock"], false);
    assert_eq!(cluster["swarm"]["root_rotation_in_progress"], false);
    let nets: Vec<&str> = cluster["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert!(
        nets.contains(&"ingress") && nets.contains(&"probe-net"),
        "{nets:?}"
    );
    // The probe's 5 tasks hold their probe-net addresses.
    let with_addrs = cluster["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["network_addrs"].as_array().is_some_and(|a| !a.is_empty()))
        .count();
    assert_eq!(with_addrs, 5, "{:#}", cluster["tasks"]);

    // What the hazard catalogue reads: the networks' drivers, the hosts' kernel modules.
    assert!(
        cluster["networks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["driver"] == "overlay"),
        "{:#}",
        cluster["networks"]
    );
    let hosts = facts["hosts"].as_object().unwrap();
    assert_eq!(hosts.len(), 5);
    for h in hosts.values() {
        assert!(
            h["kernel_modules"]
                .as_array()
                .is_some_and(|m| !m.is_empty()),
            "{}: no kernel modules read",
            h["host"]
        );
    }
    let unreachable = facts["unreachable"].as_object();
    assert!(unreachable.is_none_or(|u| u.is_empty()), "{unreachable:?}");
    for (id, h) in hosts {
        let name = h["host"].as_str().unwrap();
        let node = cluster["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id.as_str())
            .unwrap();
        let manager = node["role"] == "manager";
        assert_eq!(h["sudo_ok"], true, "{name}");
        assert_eq!(h["os"]["id"], "debian", "{name}");
        assert_eq!(h["os"]["codename"], "bookworm", "{name}");
        assert_eq!(h["init"], "sysvinit", "{name}");
        assert_eq!(h["package_manager"], "apt", "{name}");
        assert_eq!(h["dockerd_path"], "/usr/sbin/dockerd", "{name}");
        assert_eq!(h["dockerd_package"], "docker.io", "{name}");
        assert_eq!(h["daemon_json"], Value::Null, "{name}");
        assert!(
            h["installed"]["docker.io"]
                .as_str()
                .unwrap()
                .starts_with("20.10.24"),
            "{name}: {h}"
        );
        assert!(
            h["available"]["docker.io"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v.as_str().unwrap().starts_with("26.1.5")),
            "{name}"
        );
        assert_eq!(h["held"], serde_json::json!([]), "{name}");
        assert_eq!(
            h["standalone_containers"],
            serde_json::json!([]),
            "swarm tasks are not standalone: {name}"
        );
        assert_eq!(h["ipvlan_networks"], serde_json::json!([]), "{name}");
        assert_eq!(h["live_restore_enabled"], false, "{name}");
        for path in ["/", "/var/lib/docker", "/var/lib/swarm-upgrade"] {
            assert!(
                h["disk_free"][path].as_u64().unwrap() > 1 << 20,
                "{name}: {path}: {}",
                h["disk_free"]
            );
        }
        // What the engine and dpkg say on the node itself, read here directly.
        let info = lab
            .exec_sh(
                name,
                "docker info --format '{{.Driver}}|{{.CgroupVersion}}'",
            )
            .unwrap();
        let (driver, cgroup) = info.trim().split_once('|').unwrap();
        assert_eq!(h["storage_driver"], driver, "{name}");
        assert_eq!(h["cgroup_version"], cgroup, "{name}");
        let kib = lab
            .exec_sh(name, "dpkg-query -W -f='${Installed-Size}' docker.io")
            .unwrap();
        let bytes = kib.trim().parse::<u64>().unwrap() * 1024;
        assert_eq!(h["installed_sizes"]["docker.io"], bytes, "{name}");
        assert!(bytes > 50 << 20, "{name}: docker.io is {bytes} bytes");
        let cert = h["node_cert_valid_secs"]
            .as_i64()
            .unwrap_or_else(|| panic!("{name}: no cert validity"));
        // Swarm node certificates last 90 days (a fresh one can end a few
        // seconds past that, from clock rounding at issue).
        assert!(cert > 24 * 3600 && cert <= 91 * 24 * 3600, "{name}: {cert}");
        let swarm_dir = h["swarm_dir_bytes"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: no swarm dir size"));
        assert!(swarm_dir > 0, "{name}");
        if manager {
            // The raft log: what a manager's backup copies.
            assert!(swarm_dir > 1 << 20, "{name}: {swarm_dir}");
        }
        // Issue 18's facts: local images, dockerd's flag files, the firewall,
        // the swarm ports, and the target dockerd's verdict.
        assert!(
            h["images"].as_array().is_some_and(|i| i
                .iter()
                .any(|i| i["repository"] == "localhost:1/testkit-probe")),
            "{name}: {}",
            h["images"]
        );
        assert!(
            h["daemon_flag_files"]["/etc/default/docker"].is_string(),
            "{name}: {}",
            h["daemon_flag_files"]
        );
        assert_eq!(
            h["firewall"],
            serde_json::json!({"backend": "nf_tables", "legacy_has_docker": false,
                               "nft_has_docker": true, "raw_table": true}),
            "{name}"
        );
        let probes = h["port_probes"].as_array().expect("ports probed");
        // TCP 7946 of the 4 other nodes, TCP 2377 of the other managers.
        assert_eq!(
            probes.len(),
            if manager { 6 } else { 7 },
            "{name}: {probes:?}"
        );
        assert!(
            probes.iter().all(|p| p["open"] == true),
            "{name}: {probes:?}"
        );
        let v = &h["target_validation"];
        assert_eq!(v["exit"], 0, "{name}: {v}");
        assert_eq!(
            v["output"].as_str().unwrap().trim(),
            "configuration OK",
            "{name}"
        );
        assert!(
            v["source"]
                .as_str()
                .unwrap()
                .starts_with("docker.io=26.1.5"),
            "{name}: {v}"
        );
    }
    // Every node resolves to the same package set, confirmed by apt on the node.
    for (id, r) in g["resolutions"].as_object().unwrap() {
        let ok = &r["ok"];
        assert!(ok.is_object(), "{id}: {r}");
        let names: Vec<&str> = ok["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["docker.io", "docker-cli", "containerd"], "{id}");
    }
    report_time("clean lab facts", t);
}

/// A hazard reproduced for real: `"oom-score-adjust"` in daemon.json, which
/// the lab's 20.10.24 accepts and 26.1.5 refuses. `check` blocks it naming
/// the hazard and the node; `apply` with the hazard waived really fails on
/// that node and rolls it back (exit 4), which proves the hazard. The node
/// chosen is the one the run upgrades first, so no other node changes.
#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn the_oom_score_adjust_hazard_is_blocked_by_check_and_really_stops_26_1_5() {
    const HAZARD: &str = "removed-oom-score-adjust-26.0";
    let t = Instant::now();
    let lab = lab();
    let (code, clean) = plan(&lab, &[]);
    assert_eq!(code, Some(0), "{:#}", clean["findings"]);
    let first = clean["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["order"] == 1)
        .and_then(|n| n["name"].as_str())
        .expect("a node upgraded first")
        .to_string();
    let before = lab
        .exec_sh(&first, "cat /etc/docker/daemon.json 2>/dev/null || true")
        .unwrap();
    assert!(
        before.trim().is_empty(),
        "{first} already has a daemon.json: {before}"
    );
    lab.exec_sh(
        &first,
        r#"mkdir -p /etc/docker && printf '{"oom-score-adjust": -500}\n' > /etc/docker/daemon.json"#,
    )
    .unwrap();
    let undo = Undo::new(
        &lab,
        &format!("oom-score-adjust in {first}'s daemon.json"),
        {
            let first = first.clone();
            // The rollback holds the restored packages and keeps its backup:
            // the shared lab goes back to unheld packages and an empty state dir.
            move |lab| {
                lab.exec_sh(
                &first,
                "rm -f /etc/docker/daemon.json; apt-mark unhold docker.io containerd runc >/dev/null 2>&1; \
                 rm -rf /var/lib/swarm-upgrade/backups",
            )
            .map(drop)
            }
        },
    );

    let (code, report) = check(&lab, &[]);
    assert_eq!(code, Some(3), "blocked: {:#}", report["findings"]);
    assert_eq!(report["blocked"], true);
    let f = the(&report, HAZARD, "block");
    assert_eq!(f["node"], first.as_str());
    assert!(
        message(f).starts_with(&format!(
            "host {first} (20.10.24 → 26.1.5): /etc/docker/daemon.json sets \"oom-score-adjust\""
        )),
        "{f}"
    );
    // The target's own dockerd agrees (`target-config`, dockerd --validate):
    // the catalogue and the binary block it independently.
    let mut ids: Vec<&str> = blockers(&report)
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [HAZARD, "target-config"], "{:#}", report["findings"]);
    let validated = the(&report, "target-config", "block");
    assert_eq!(validated["node"], first.as_str());
    assert!(
        message(validated).contains("oom-score-adjust"),
        "{validated}"
    );
    // The same through plan (which also runs check again).
    let (code, _) = plan(&lab, &[]);
    assert_eq!(code, Some(3));

    // Waived, the upgrade goes ahead and the new engine really refuses the file.
    let state = tempfile::tempdir().unwrap();
    let apply = Instant::now();
    let out = swarm_upgrade(
        &lab,
        state.path(),
        &[
            "apply",
            "--pin",
            PIN,
            "--yes",
            "--ignore-check",
            HAZARD,
            "--ignore-check",
            "target-config",
            "--verify-timeout",
            "60s",
        ],
        &[],
    );
    report_time("apply with the hazard waived", apply);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{first} fails and is rolled back: {err}"
    );
    assert!(err.contains("rolled back"), "{err}");
    assert!(err.contains(&first), "{err}");
    assert!(
        err.contains("oom-score-adjust"),
        "the engine's last log lines name the option: {err}"
    );
    let events = journal(state.path());
    let touched: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| e["event"] == "step-started")
        .filter_map(|e| e["node"].as_str())
        .collect();
    assert_eq!(
        touched.into_iter().collect::<Vec<_>>(),
        [first.as_str()],
        "only {first} was touched"
    );
    let st = lab
        .wait_healthy(Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("the lab is not healthy after the rollback: {e:#}"));
    assert!(
        st.nodes
            .iter()
            .all(|n| n.engine_version.starts_with("20.10.24")),
        "every node runs 20.10.24 again (the old engine accepts the file): {}",
        st.render_text()
    );

    undo.done();
    assert_clean(&lab);
    report_time("oom-score-adjust hazard", t);
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn with_autolock_the_key_is_required_then_every_manager_is_unlocked_after_its_restart() {
    let t = Instant::now();
    // One lab at a time on this machine: the shared lab goes (a later test
    // would bring it back), this test's own comes up.
    for name in [LAB, AUTOLOCK_LAB] {
        if testkit::paths::lab_dir(name).exists() {
            Lab::down(name).unwrap_or_else(|e| panic!("removing lab {name}: {e:#}"));
        }
    }
    let lab = common::up(AUTOLOCK_LAB, AUTOLOCK_SUBNET);
    struct Down;
    impl Drop for Down {
        fn drop(&mut self) {
            if let Err(e) = Lab::down(AUTOLOCK_LAB) {
                eprintln!("removing lab {AUTOLOCK_LAB}: {e:#}");
            }
        }
    }
    let _down = Down;
    lab.wait_healthy(Duration::from_secs(180)).unwrap();
    let state = tempfile::tempdir().unwrap();

    lab.on_manager("docker swarm update --autolock=true >/dev/null")
        .unwrap();
    let key = lab
        .on_manager("docker swarm unlock-key -q")
        .unwrap()
        .trim()
        .to_string();
    assert!(key.starts_with("SWMKEY-"), "an unlock key: {key}");

    // 1. Without the key: blocked, by plan and by apply (`--yes` waives nothing).
    let (code, plan_doc) = plan(&lab, &[]);
    assert_eq!(code, Some(3), "{:#}", plan_doc["findings"]);
    let f = the(&plan_doc, "autolock", "block");
    assert_eq!(f["node"], Value::Null);
    assert!(message(f).contains("SWARM_UPGRADE_UNLOCK_KEY"), "{f}");
    let out = swarm_upgrade(&lab, state.path(), &["apply", "--pin", PIN, "--yes"], &[]);
    assert_eq!(out.status.code(), Some(3), "apply refuses without the key");
    let st = lab.status().unwrap();
    assert!(
        st.nodes
            .iter()
            .all(|n| n.engine_version.starts_with("20.10.24")),
        "nothing changed"
    );

    // 2. With the key in the environment: not blocked, and the upgrade runs.
    let env = [("SWARM_UPGRADE_UNLOCK_KEY", key.as_str())];
    let out = swarm_upgrade(
        &lab,
        state.path(),
        &["plan", "--pin", PIN, "--output", "json"],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "the key lifts the block");
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        findings(&p).iter().all(|f| f["id"] != "autolock"),
        "{:#}",
        p["findings"]
    );

    let apply_start = Instant::now();
    let out = swarm_upgrade(&lab, state.path(), &["apply", "--pin", PIN, "--yes"], &env);
    report_time("apply with autolock", apply_start);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply with the key completes:\n{stdout}\n{stderr}"
    );

    let end = lab
        .wait_healthy(Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("healthy after the upgrade: {e:#}"));
    for n in &end.nodes {
        assert!(
            n.engine_version.starts_with(PIN),
            "{} runs {}",
            n.name,
            n.engine_version
        );
        assert_eq!(n.state, "ready", "{}", n.name);
        assert_eq!(n.availability, "active", "{}", n.name);
    }
    // Still autolocked, with the same key.
    let after = lab.on_manager("docker swarm unlock-key -q").unwrap();
    assert_eq!(after.trim(), key, "the swarm keeps its key");

    // Every manager came back locked and was unlocked by the run.
    let journal = journal(state.path());
    let mut unlocked: Vec<&str> = journal
        .iter()
        .filter(|e| {
            e["event"] == "step-output" && e["text"] == "unlocked the manager with the unlock key"
        })
        .filter_map(|e| e["node"].as_str())
        .collect();
    unlocked.sort_unstable();
    let mut managers: Vec<String> = lab.managers().into_iter().map(|m| m.name).collect();
    managers.sort();
    assert_eq!(
        unlocked, managers,
        "each manager is unlocked once after its restart"
    );
    // The key is in no file of the run, no output and no command line.
    let mut leaked = vec![];
    for entry in walk(state.path()) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        if text.contains(&key) {
            leaked.push(entry);
        }
    }
    assert!(leaked.is_empty(), "the unlock key is written in {leaked:?}");
    assert!(
        !stdout.contains(&key) && !stderr.contains(&key),
        "the unlock key is printed"
    );
    report_time("autolock", t);
}

/// The journal of the cluster's current run under `state_dir`.
fn journal(state_dir: &Path) -> Vec<Value> {
    let cluster = std::fs::read_dir(state_dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.join("current").exists())
        .expect("a cluster dir with a current run");
    let run = std::fs::read_to_string(cluster.join("current")).unwrap();
    let text = std::fs::read_to_string(cluster.join("runs").join(run.trim()).join("journal.jsonl"))
        .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![];
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let p = entry.path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

/// Last in name order: the shared lab is removed (and "ck2", should its test
/// have died before its own cleanup).
// ----- issue 18: images, the target's view of the configuration, swarm ports ------------------

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn an_image_only_on_the_node_to_be_drained_is_warned_naming_the_node_and_service() {
    let t = Instant::now();
    let lab = lab();
    let probe = probe_image(&lab);
    let (w1, w2) = (lab.workers()[0].name.clone(), lab.workers()[1].name.clone());
    // A locally built image: a tag that exists on w1 only. Its registry is
    // the probe's, which refuses connections at once (no registry in the
    // lab): the engine's pull before each task start fails fast and the
    // local image is used; a Docker Hub name would hang in the pull offline.
    let local = "localhost:1/ck-built-here:1";
    let undo = Undo::new(
        &lab,
        &format!("service local-only and image {local} on {w1}"),
        {
            let (w1, w2) = (w1.clone(), w2.clone());
            move |lab| {
                remove_service(lab, "local-only")?;
                lab.on_manager(&format!("docker node update --availability active {w2}"))?;
                lab.exec_sh(&w1, &format!("docker rmi {local} >/dev/null"))
                    .map(drop)
            }
        },
    );
    lab.exec_sh(&w1, &format!("docker tag {probe} {local}"))
        .unwrap();
    // w2 paused while the service is created, so that its one task starts on
    // w1, where the image is; then w2 is active again and could receive it.
    lab.on_manager(&format!(
        "docker node update --availability pause {w2} && \
         docker service create --detach --name local-only --replicas 1 --constraint node.role==worker \
         --network probe-net --endpoint-mode dnsrr --init --no-resolve-image --stop-grace-period 2s \
         {local} server --port 8080 >/dev/null"
    ))
    .unwrap();
    wait_converged(&lab, "local-only", 1);
    lab.on_manager(&format!("docker node update --availability active {w2}"))
        .unwrap();
    let on_w2 = lab
        .exec_sh(&w2, &format!("docker image ls -q {local}"))
        .unwrap();
    assert!(on_w2.trim().is_empty(), "{w2} has {local}: {on_w2}");

    let (code, plan) = plan(&lab, &[]);
    assert_eq!(
        code,
        Some(0),
        "warnings do not block: {:#}",
        plan["findings"]
    );
    let f = the(&plan, "image-availability", "warn");
    assert_eq!(f["node"], w1.as_str());
    assert!(
        message(f).starts_with(&format!(
            "service local-only has tasks on {w1}, which the upgrade drains; of the nodes that can receive \
             them, {w2} lack its image {local} (its spec records no digest"
        )),
        "{f}"
    );
    assert!(
        message(f).contains(&format!("or pull it on {w2} before the upgrade")),
        "{f}"
    );
    // Its registry was asked from w2, for real: nothing listens there.
    assert!(
        message(f).contains(&format!("; its registry did not serve it to {w2}: ")),
        "{f}"
    );
    assert!(message(f).contains("connection refused"), "{f}");

    undo.done();
    assert_clean(&lab);
    report_time("image only on the drained node", t);
}

/// A real registry (Debian's docker-registry, the host's binary) on w2's
/// loopback, where an engine pulls without TLS: the image's registry serves
/// it to w2, so w2 lacking it is information, not a warning, and draining
/// w1 then really moves the task there (w2 pulls it).
#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn an_image_its_registry_serves_to_the_receiving_node_is_information_and_really_pulled() {
    let t = Instant::now();
    let lab = lab();
    let probe = probe_image(&lab);
    let (w1, w2) = (lab.workers()[0].name.clone(), lab.workers()[1].name.clone());
    let image = "localhost:5000/ck-pulled:1";
    let registry = std::fs::read("/usr/bin/docker-registry")
        .expect("/usr/bin/docker-registry (testkit installs the host package docker-registry)");
    let undo = Undo::new(
        &lab,
        &format!("service pulled, the registry on {w2}, image {image}"),
        {
            let (w1, w2) = (w1.clone(), w2.clone());
            move |lab| {
                remove_service(lab, "pulled")?;
                lab.on_manager(&format!(
                    "docker node update --availability active {w1} && \
                     docker node update --availability active {w2}"
                ))?;
                for w in [&w1, &w2] {
                    lab.exec_sh(w, &format!("docker rmi {image} >/dev/null 2>&1 || true"))?;
                }
                lab.exec_sh(
                    &w2,
                    "pkill -x docker-registry || true; \
                     rm -rf /tmp/ck-registry /tmp/ck-registry.yml /usr/local/bin/docker-registry",
                )
                .map(drop)
            }
        },
    );
    lab.copy_in(&w2, &registry, "/usr/local/bin/docker-registry", 0o755)
        .unwrap();
    lab.exec_sh(
        &w2,
        "printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /tmp/ck-registry\n\
         http:\n  addr: 127.0.0.1:5000\n' > /tmp/ck-registry.yml && \
         (setsid docker-registry serve /tmp/ck-registry.yml >/tmp/ck-registry.log 2>&1 &) && \
         for i in $(seq 50); do grep -q 'listening on' /tmp/ck-registry.log && exit 0; sleep 0.2; done; \
         cat /tmp/ck-registry.log; exit 1",
    )
    .unwrap();
    // Pushed from w2, then untagged there: w2 lacks it, its registry has it.
    lab.exec_sh(
        &w2,
        &format!("docker tag {probe} {image} && docker push -q {image} >/dev/null && docker rmi {image} >/dev/null"),
    )
    .unwrap();
    // w1 runs the one task from its local copy (its own localhost:5000
    // refuses connections: the engine falls back to the local image).
    lab.exec_sh(&w1, &format!("docker tag {probe} {image}"))
        .unwrap();
    lab.on_manager(&format!(
        "docker node update --availability pause {w2} && \
         docker service create --detach --name pulled --replicas 1 --constraint node.role==worker \
         --network probe-net --endpoint-mode dnsrr --init --no-resolve-image --stop-grace-period 2s \
         {image} server --port 8080 >/dev/null"
    ))
    .unwrap();
    wait_converged(&lab, "pulled", 1);
    lab.on_manager(&format!("docker node update --availability active {w2}"))
        .unwrap();
    let on_w2 = lab
        .exec_sh(&w2, &format!("docker image ls -q {image}"))
        .unwrap();
    assert!(on_w2.trim().is_empty(), "{w2} has {image}: {on_w2}");

    let (code, plan) = plan(&lab, &[]);
    assert_eq!(code, Some(0), "{:#}", plan["findings"]);
    let findings: Vec<&Value> = findings(&plan)
        .iter()
        .filter(|f| f["id"] == "image-availability" && message(f).contains("service pulled"))
        .collect();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = findings[0];
    assert_eq!(f["severity"], "info", "{f}");
    assert_eq!(f["node"], w1.as_str());
    assert!(
        message(f).contains(&format!(
            "{w2} lack its image {image}, and its registry serves it without credentials (asked from {w2}: sha256:"
        )),
        "{f}"
    );

    // What the answer promised: drained, w1's task starts on w2, pulled.
    lab.on_manager(&format!("docker node update --availability drain {w1}"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let tasks = lab
            .on_manager(
                "docker service ps pulled --filter desired-state=running \
                 --format '{{.Node}} {{.CurrentState}} {{.Error}}'",
            )
            .unwrap();
        if tasks
            .lines()
            .any(|l| l.starts_with(&format!("{w2} Running")))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the task did not start on {w2} within 120 s: {tasks}"
        );
        thread::sleep(Duration::from_secs(1));
    }
    let on_w2 = lab
        .exec_sh(&w2, &format!("docker image ls -q {image}"))
        .unwrap();
    assert!(!on_w2.trim().is_empty(), "{w2} did not pull {image}");

    undo.done();
    assert_clean(&lab);
    report_time("image its registry serves", t);
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn a_docker_opts_flag_that_26_1_5_refuses_is_blocked_by_the_target_dockerd() {
    let t = Instant::now();
    let lab = lab();
    let w = lab.workers()[1].name.clone();
    // 20.10 takes --graph (deprecated, as --data-root: checked by hand with
    // a second 20.10 dockerd); 26.1.5 answers "unknown flag: --graph".
    let flag = "--graph=/var/lib/docker";
    let pid = |lab: &Lab| lab.exec_sh(&w, "cat /var/run/docker.pid").unwrap();
    let before = pid(&lab);
    let lines = lab
        .exec_sh(
            &w,
            "cp -p /etc/default/docker /tmp/ck-default-docker && wc -l < /etc/default/docker",
        )
        .unwrap();
    let line = lines.trim().parse::<usize>().unwrap() + 1;
    lab.exec_sh(
        &w,
        &format!("echo 'DOCKER_OPTS=\"{flag}\"' >> /etc/default/docker"),
    )
    .unwrap();
    let undo = Undo::new(
        &lab,
        &format!("DOCKER_OPTS in {w}'s /etc/default/docker"),
        {
            let w = w.clone();
            move |lab| {
                lab.exec_sh(&w, "mv /tmp/ck-default-docker /etc/default/docker")
                    .map(drop)
            }
        },
    );

    let (code, plan) = plan(&lab, &[]);
    assert_eq!(code, Some(3), "blocked: {:#}", plan["findings"]);
    let of_w: Vec<&Value> = blockers(&plan)
        .into_iter()
        .filter(|f| f["id"] == "target-config" && f["node"] == w.as_str())
        .collect();
    assert_eq!(
        of_w.len(),
        2,
        "the flag, and the binary's verdict: {:#}",
        plan["findings"]
    );
    assert!(
        of_w.iter().any(|f| message(f)
            == format!(
                "host {w}: /etc/default/docker line {line} passes --graph to dockerd, which Engine 23.0.0 \
                 removed: the target 26.1.5 refuses to start with it; use --data-root (same meaning)"
            )),
        "{of_w:#?}"
    );
    assert!(
        of_w.iter().any(|f| {
            let m = message(f);
            m.starts_with(&format!("host {w}: the target dockerd (docker.io=26.1.5"))
                && m.contains(&format!("(dockerd --validate {flag} exited"))
                && m.contains("unknown flag: --graph")
        }),
        "{of_w:#?}"
    );
    let others: Vec<_> = blockers(&plan)
        .into_iter()
        .filter(|f| f["id"] != "target-config")
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    assert_eq!(pid(&lab), before, "the running engine was not touched");
    let left = lab
        .exec_sh(
            &w,
            "ls -d /tmp/swarm-upgrade-validate.* 2>/dev/null || true",
        )
        .unwrap();
    assert!(left.trim().is_empty(), "temporary directories left: {left}");

    undo.done();
    assert_clean(&lab);
    report_time("DOCKER_OPTS flag", t);
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn a_gossip_port_closed_by_a_firewall_rule_is_warned_naming_both_nodes() {
    let t = Instant::now();
    let lab = lab();
    let (w1, w2) = (lab.workers()[0].clone(), lab.workers()[1].clone());
    // Dropped, not rejected: a silent firewall, as in a cloud security group.
    let rule = format!("INPUT -s {} -p tcp --dport 7946 -j DROP", w1.address);
    lab.exec_sh(&w2.name, &format!("iptables -I {rule}"))
        .unwrap();
    let undo = Undo::new(&lab, &format!("iptables rule on {}", w2.name), {
        let (w2, rule) = (w2.name.clone(), rule.clone());
        move |lab| lab.exec_sh(&w2, &format!("iptables -D {rule}")).map(drop)
    });

    let (code, plan) = plan(&lab, &[]);
    assert_eq!(
        code,
        Some(0),
        "warnings do not block: {:#}",
        plan["findings"]
    );
    let f = the(&plan, "swarm-ports", "warn");
    assert_eq!(f["node"], w1.name.as_str());
    assert_eq!(
        message(f),
        format!(
            "host {} cannot open TCP 7946 (gossip) to {} ({}): after their engines restart, overlay networks \
             and the routing mesh between them may not converge; open TCP and UDP 7946 between all nodes",
            w1.name, w2.name, w2.address
        )
    );

    undo.done();
    assert_clean(&lab);
    report_time("gossip port closed", t);
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn zz_remove_the_checks_lab() {
    Lab::down(LAB).unwrap_or_else(|e| panic!("removing lab {LAB}: {e:#}"));
    Lab::down(AUTOLOCK_LAB).unwrap_or_else(|e| panic!("removing lab {AUTOLOCK_LAB}: {e:#}"));
}
