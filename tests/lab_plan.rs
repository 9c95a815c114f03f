//! `swarm-upgrade plan` against the real testkit lab (the one `testkit up`
//! started for the lab suite), over real SSH with strict host-key checking.
//! Read-only: these tests change nothing on the lab.

mod common;

use std::path::Path;
use std::process::Output;

use testkit::Lab;

fn lab() -> Lab {
    Lab::open("lab").unwrap_or_else(|e| panic!("the lab suite needs `testkit up` first: {e:#}"))
}

fn plan(inventory: &Path, extra: &[&str]) -> Output {
    let state = tempfile::tempdir().unwrap();
    let mut args = vec!["plan", "--pin", "26.1.5"];
    args.extend_from_slice(extra);
    common::run_logged(common::command(inventory, state.path(), &args), &args)
}

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn plan_reads_the_real_lab() {
    let lab = lab();
    let out = plan(&lab.inventory_path(), &["--output", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["target"], "26.1.5");
    let nodes = p["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 5);
    for n in nodes {
        assert_eq!(n["method"], "debian-apt", "{n}");
        let pkgs: Vec<&str> = n["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            pkgs,
            ["docker.io", "docker-cli", "containerd"],
            "the whole package set of 26.1.5 on trixie: {n}"
        );
        assert!(n["current"].as_str().unwrap().starts_with("20.10.24"));
    }
    // Managers first, the leader last among them, then the workers.
    let order: Vec<(&str, bool)> = nodes
        .iter()
        .map(|n| (n["role"].as_str().unwrap(), n["leader"].as_bool().unwrap()))
        .collect();
    assert_eq!(order[2], ("manager", true), "{order:?}");
    assert_eq!(order[3].0, "worker");
    let status = lab.status().unwrap();
    let leader = status.nodes.iter().find(|n| n.leader).unwrap();
    assert_eq!(nodes[2]["name"], leader.name.as_str());
    // 3 managers of 7 steps + their reactivation (4) + 3 service checks,
    // 2 workers of 8 steps + a wait and a service check each, the canaries' soaks (the
    // first manager, the first worker batch), and each node staged before its drain
    // (debian-apt stages).
    let steps = p["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 55);
    for n in nodes.iter() {
        let of = |action: &str| {
            steps
                .iter()
                .filter(|s| s["node"] == n["name"] && s["action"] == action)
                .map(|s| s["batch"].as_u64().unwrap())
                .collect::<Vec<_>>()
        };
        let (stage, drain) = (of("stage"), of("drain"));
        assert_eq!(stage.len(), 1, "{}: {steps:?}", n["name"]);
        assert_eq!(
            stage[0] + 1,
            drain[0],
            "{}: staged in the batch before its drain",
            n["name"]
        );
    }
    let soaked: Vec<&str> = p["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "soak")
        .map(|s| s["node"].as_str().unwrap())
        .collect();
    assert_eq!(
        soaked,
        [
            nodes[0]["name"].as_str().unwrap(),
            nodes[3]["name"].as_str().unwrap()
        ]
    );
    assert!(
        p["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] != "block"),
        "{}",
        p["findings"]
    );
}

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn host_keys_are_checked_strictly_unless_new_ones_are_accepted() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(lab.inventory_path()).unwrap();
    let with = |known_hosts: &Path| {
        let inv = dir.path().join("inventory.yaml");
        let t = text
            .replace(
                "identity_file: id_ed25519",
                &format!("identity_file: {}", lab.identity_file().display()),
            )
            .replace(
                "known_hosts_file: known_hosts",
                &format!("known_hosts_file: {}", known_hosts.display()),
            );
        std::fs::write(&inv, t).unwrap();
        inv
    };

    // A known_hosts with a wrong key for every node: refused, with a hint.
    let wrong = dir.path().join("wrong_known_hosts");
    let mut lines = String::new();
    for n in lab.nodes() {
        lines.push_str(&format!(
            "{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
            n.address
        ));
    }
    std::fs::write(&wrong, lines).unwrap();
    let out = plan(&with(&wrong), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("host key"), "{err}");

    // An empty known_hosts: refused by default...
    let empty = dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let out = plan(&with(&empty), &[]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "strict checking refuses unknown hosts"
    );
    // ... and accepted (and recorded) only with the explicit opt-in.
    let out = plan(&with(&empty), &["--accept-new-host-keys"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded = std::fs::read_to_string(&empty).unwrap();
    assert_eq!(
        recorded
            .lines()
            .filter(|l| l.contains("ssh-ed25519"))
            .count(),
        5,
        "{recorded}"
    );
}

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn one_manager_in_the_inventory_is_enough() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let m1 = &lab.managers()[0];
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(
        &inv,
        format!(
            "defaults:\n  user: upgrader\n  identity_file: {}\n  known_hosts_file: {}\nhosts:\n  - name: only-one\n    address: {}\n",
            lab.identity_file().display(),
            lab.known_hosts_file().display(),
            m1.address
        ),
    )
    .unwrap();
    let out = plan(&inv, &["--output", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        p["nodes"].as_array().unwrap().len(),
        5,
        "the other nodes are discovered from the swarm"
    );
}

#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn a_host_without_passwordless_sudo_blocks_the_plan_by_name() {
    let lab = lab();
    let w = lab.workers()[0].name.clone();
    lab.fault(&w, testkit::Fault::NoSudo).unwrap();
    let out = plan(&lab.inventory_path(), &[]);
    lab.restore(&w, testkit::Fault::NoSudo).unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("sudo") && table.contains(&w), "{table}");
}

/// `--forks 1` on the 5-host lab: one host read at a time, and every master
/// but the manager's closed once its host is read (5 hosts > 1 fork). The
/// facts, and so the plan, are the same as with the default (all at once).
#[test]
#[ignore = "lab: needs a running testkit lab (testkit up)"]
fn forks_one_reads_the_lab_one_host_at_a_time_to_the_same_plan() {
    let lab = lab();
    let summary = |extra: &[&str]| {
        let mut args = vec!["--output", "json"];
        args.extend_from_slice(extra);
        let out = plan(&lab.inventory_path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids = |k: &str, f: &str| -> Vec<String> {
            p[k].as_array()
                .unwrap()
                .iter()
                .map(|x| format!("{}|{}|{}", x[f], x["node"], x["packages"]))
                .collect()
        };
        (
            ids("nodes", "name"),
            ids("findings", "id"),
            ids("steps", "action"),
            stderr,
        )
    };
    let (nodes, findings, steps, _) = summary(&[]);
    let (nodes1, findings1, steps1, stderr) = summary(&["--forks", "1"]);
    assert_eq!(nodes1.len(), 5, "{stderr}");
    assert_eq!(nodes1, nodes, "{stderr}");
    assert_eq!(findings1, findings, "{stderr}");
    assert_eq!(steps1, steps, "{stderr}");
}
