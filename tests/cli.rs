//! The command line, end to end, without a cluster: argument and inventory
//! errors (exit 2, nothing touched), and planning from saved facts.

use std::path::Path;

use assert_cmd::Command;

fn swarm_upgrade() -> Command {
    let mut c = Command::cargo_bin("swarm-upgrade").unwrap();
    c.env_remove("SWARM_UPGRADE_INVENTORY");
    c
}

/// Runs `plan` on an inventory text; returns (exit code, stderr with the temp
/// dir replaced by `[DIR]`).
fn plan_with_inventory(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(&inv, text).unwrap();
    let out = swarm_upgrade()
        .args(["plan", "--pin", "26.1.5", "--inventory"])
        .arg(&inv)
        .output()
        .unwrap();
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&dir.path().display().to_string(), "[DIR]");
    (out.status.code().unwrap(), stderr)
}

#[test]
fn malformed_inventories_are_usage_errors_naming_file_line_and_field() {
    let cases = [
        ("wrong_type", "hosts:\n  - name: m1\n    port: seventy\n"),
        (
            "unknown_field",
            "hosts:\n  - name: m1\n    adress: 10.0.0.1\n",
        ),
        ("duplicate_host", "hosts:\n  - name: m1\n  - name: m1\n"),
        (
            "option_injection",
            "hosts:\n  - name: m1\n    address: -oProxyCommand=touch\n",
        ),
        ("no_hosts", "defaults:\n  user: ops\n"),
        ("not_yaml", "hosts: [\n"),
    ];
    for (name, text) in cases {
        let (code, stderr) = plan_with_inventory(text);
        assert_eq!(code, 2, "{name}: {stderr}");
        insta::assert_snapshot!(format!("inventory_{name}"), stderr);
    }
}

#[test]
fn missing_inventory_file_is_a_usage_error() {
    let out = swarm_upgrade()
        .args([
            "plan",
            "--pin",
            "26.1.5",
            "--inventory",
            "/nonexistent/inv.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/inv.yaml: cannot read the inventory"),
        "{err}"
    );
}

#[test]
fn bad_pins_are_refused_before_anything_is_read() {
    for pin in ["latest", "26.1", "26.1.5;reboot"] {
        let out = swarm_upgrade()
            .args(["plan", "--inventory", "/nonexistent", "--pin", pin])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{pin}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("MAJOR.MINOR.PATCH"), "{pin}: {err}");
    }
}

#[test]
fn an_inventory_is_required() {
    let out = swarm_upgrade()
        .args(["plan", "--pin", "26.1.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--inventory"));
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn plan_table_from_saved_lab_facts() {
    let out = swarm_upgrade()
        .args([
            "plan",
            "--pin",
            "26.1.5",
            "--from-facts",
            &fixture("lab-facts.json"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!("plan_table_lab", stdout);
}

#[test]
fn plan_json_from_saved_lab_facts() {
    let out = swarm_upgrade()
        .args([
            "plan",
            "--pin",
            "26.1.5",
            "--output",
            "json",
            "--from-facts",
            &fixture("lab-facts.json"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!("plan_json_lab", v);
}

#[test]
fn a_blocked_plan_exits_3() {
    let out = swarm_upgrade()
        .args([
            "plan",
            "--pin",
            "26.1.5",
            "--from-facts",
            &fixture("two-managers-facts.json"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("quorum-budget"), "{stdout}");
    insta::assert_snapshot!("plan_table_blocked", stdout);
}

#[test]
fn status_without_local_runs_asks_for_an_inventory() {
    let state = tempfile::tempdir().unwrap();
    let out = swarm_upgrade()
        .args(["status", "--cluster", "c1", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no run of swarm c1 is recorded in")
            && stderr.contains("pass --inventory FILE to read what the swarm records"),
        "{stderr}"
    );
}

#[test]
fn status_refuses_a_corrupt_state_file_naming_it() {
    let state = tempfile::tempdir().unwrap();
    let run = state.path().join("c1/runs/r1");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(state.path().join("c1/current"), "r1").unwrap();
    std::fs::write(run.join("state.json"), "{\"format\": 2, \"run_id\": \"r1\"").unwrap();
    let out = swarm_upgrade()
        .args(["status", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&run.join("state.json").display().to_string())
            && stderr.contains("the file is corrupt"),
        "{stderr}"
    );
}
