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

// ----- check -------------------------------------------------------------------------------

fn check(args: &[&str]) -> (i32, String, String) {
    let out = swarm_upgrade().arg("check").args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_passes_the_lab_and_blocks_the_two_manager_swarm() {
    let (code, stdout, stderr) = check(&[
        "--pin",
        "26.1.5",
        "--from-facts",
        &fixture("lab-facts.json"),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.ends_with("nothing blocks an upgrade to 26.1.5\n"),
        "{stdout}"
    );
    let (code, stdout, stderr) = check(&[
        "--pin",
        "26.1.5",
        "--output",
        "json",
        "--from-facts",
        &fixture("two-managers-facts.json"),
    ]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["blocked"], true);
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "quorum-budget" && f["severity"] == "block"),
        "{v:#}"
    );
    assert!(stderr.contains("quorum-budget"), "{stderr}");
}

#[test]
fn a_hazard_given_on_the_command_line_blocks_without_any_rust() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("site.yaml");
    std::fs::write(
        &file,
        "# a site's own hazard\n\
         - id: site-no-sysvinit-26\n\
         \x20 title: our sysvinit hosts are not certified for 26.x\n\
         \x20 applies:\n\
         \x20   target: \">=26.0.0\"\n\
         \x20 detect:\n\
         \x20   distro: [debian]\n\
         \x20   init: sysvinit\n\
         \x20 severity: block\n\
         \x20 effect: unsupported by our platform team\n\
         \x20 remedy: move the host to systemd first\n\
         \x20 source: https://wiki.example.com/docker-26\n",
    )
    .unwrap();
    let lab = fixture("lab-facts.json");
    let hazard = file.display().to_string();
    let args = [
        "--pin",
        "26.1.5",
        "--output",
        "json",
        "--from-facts",
        &lab,
        "--hazards",
        &hazard,
    ];
    let (code, stdout, stderr) = check(&args);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let hits: Vec<&serde_json::Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "site-no-sysvinit-26")
        .collect();
    assert_eq!(hits.len(), 5, "every lab node: {v:#}");
    assert!(
        hits[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("host lab-m1 (20.10.24 → 26.1.5): debian host: our sysvinit hosts"),
        "{:#}",
        hits[0]
    );
    // Waived, it no longer blocks; and the explanation comes from the file too.
    let mut waived = args.to_vec();
    waived.extend(["--ignore-check", "site-no-sysvinit-26"]);
    assert_eq!(check(&waived).0, 0);
    let (code, stdout, _) = check(&["--explain", "site-no-sysvinit-26", "--hazards", &hazard]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("source:    https://wiki.example.com/docker-26"),
        "{stdout}"
    );
}

#[test]
fn explain_prints_a_hazard_with_its_source() {
    let (code, stdout, _) = check(&["--explain", "api-minimum-1.44-29.0"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("check_explain", stdout);
    let (code, _, stderr) = check(&["--explain", "no-such-hazard"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no hazard `no-such-hazard`"), "{stderr}");
    assert!(stderr.contains("removed-oom-score-adjust-26.0"), "{stderr}");
}

#[test]
fn bad_hazard_files_and_missing_pins_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "- id: bad-1\n  title: t\n  applies:\n    target: \"29.0\"\n  severity: warn\n  effect: e\n  remedy: r\n  source: https://example.com\n",
    )
    .unwrap();
    let (code, _, stderr) = check(&[
        "--pin",
        "26.1.5",
        "--from-facts",
        &fixture("lab-facts.json"),
        "--hazards",
        &file.display().to_string(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    let stderr = stderr.replace(&dir.path().display().to_string(), "[DIR]");
    insta::assert_snapshot!("check_bad_hazard_file", stderr);
    let (code, _, stderr) = check(&["--from-facts", &fixture("lab-facts.json")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--pin"), "{stderr}");
}

#[test]
fn plan_shows_canaries_their_pause_and_the_windows() {
    let out = swarm_upgrade()
        .args([
            "plan",
            "--pin",
            "26.1.5",
            "--from-facts",
            &fixture("lab-facts.json"),
            "--soak",
            "2m",
            "--soak-checks",
            "4",
            "--pause-after-canary",
            "--window",
            "Mon-Fri 01:00-05:00 UTC",
            "--window",
            "sat,sun 22:00-06:00 +01:00",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for needle in [
        "Canaries (the first manager and the first worker batch): lab-m2, lab-w1; soaked 2m",
        "passing 4 times in a row; then the run pauses until `swarm-upgrade continue`",
        "canary soak:   lab-w1           soak",
        "pause:         (swarm)          pause",
        "Maintenance windows: Mon-Fri 01:00-05:00 UTC, sat,sun 22:00-06:00 +01:00.",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in\n{stdout}");
    }
    // No soak: no soak step, and no canary line.
    let out = swarm_upgrade()
        .args([
            "plan",
            "--pin",
            "26.1.5",
            "--from-facts",
            &fixture("lab-facts.json"),
            "--soak",
            "0s",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["canary"]["soak_secs"], 0);
    assert!(
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] != "soak" && s["action"] != "pause")
    );
}

// ----- output contracts: JSON-only stdout, -q, completions, man, log file ----------------

/// Runs the command; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = swarm_upgrade().args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// stdout is exactly one JSON error object, with the fields scripts read.
fn one_json_error(stdout: &str, code: &str, exit: i32) -> serde_json::Value {
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("stdout is not JSON only ({e}): {stdout}"));
    assert_eq!(docs.len(), 1, "{stdout}");
    let e = docs.into_iter().next().unwrap();
    assert_eq!(e["code"], code, "{e}");
    assert_eq!(e["exit_code"], exit, "{e}");
    assert!(!e["message"].as_str().unwrap().is_empty(), "{e}");
    assert!(!e["hint"].as_str().unwrap().is_empty(), "{e}");
    e
}

#[test]
fn with_output_json_a_failing_command_prints_one_json_error_on_stdout() {
    // An error of the command itself.
    let (code, stdout, stderr) = run(&[
        "plan",
        "--pin",
        "26.1.5",
        "-o",
        "json",
        "--from-facts",
        "/nonexistent/facts.json",
    ]);
    assert_eq!(code, 2, "{stderr}");
    let e = one_json_error(&stdout, "usage", 2);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/facts.json: cannot read the facts file"),
        "{e}"
    );
    // A command line clap refuses (no --pin).
    let (code, stdout, _) = run(&["plan", "--output=json", "--from-facts", "x.json"]);
    assert_eq!(code, 2);
    let e = one_json_error(&stdout, "usage", 2);
    assert!(e["message"].as_str().unwrap().contains("--pin"), "{e}");
    // status, and apply refusing a typo before reading any inventory.
    let state = tempfile::tempdir().unwrap();
    let (code, stdout, _) = run(&[
        "status",
        "--cluster",
        "c1",
        "-o",
        "json",
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    one_json_error(&stdout, "usage", 2);
    let (code, stdout, _) = run(&[
        "apply",
        "--inventory",
        "/nonexistent/inv.yaml",
        "--pin",
        "26.1.5",
        "--ignore-check",
        "quorum-budgte",
        "-o",
        "json",
    ]);
    assert_eq!(code, 2);
    let e = one_json_error(&stdout, "usage", 2);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("--ignore-check quorum-budgte: no check or hazard has this id"),
        "{e}"
    );
}

#[test]
fn a_bad_window_is_a_usage_error_that_says_what_is_wrong() {
    let out = swarm_upgrade()
        .args([
            "plan",
            "--pin",
            "26.1.5",
            "--from-facts",
            &fixture("lab-facts.json"),
            "--window",
            "Mon-Fri 01:00-05:00 Europe/Paris",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no time-zone names"), "{err}");
}

#[test]
fn pause_needs_an_inventory() {
    let out = swarm_upgrade().args(["pause"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no inventory"), "{err}");
}

#[test]
fn a_blocked_plan_in_json_is_one_document_that_says_so() {
    let (code, stdout, _) = run(&[
        "plan",
        "--pin",
        "26.1.5",
        "-o",
        "json",
        "--from-facts",
        &fixture("two-managers-facts.json"),
    ]);
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(v["blocked"], true);
    assert_eq!(v["format_version"], 1);
}

#[test]
fn ignore_check_ids_are_validated() {
    let (code, _, stderr) = check(&[
        "--pin",
        "26.1.5",
        "--from-facts",
        &fixture("two-managers-facts.json"),
        "--ignore-check",
        "quorum-budgte",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("known ids:"), "{stderr}");
    let (code, _, stderr) = check(&[
        "--pin",
        "26.1.5",
        "--from-facts",
        &fixture("two-managers-facts.json"),
        "--ignore-check",
        "quorum-budget",
    ]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn quiet_prints_results_and_errors_only() {
    let dir = tempfile::tempdir().unwrap();
    let facts = dir.path().join("facts.json");
    let base = [
        "plan",
        "--pin",
        "26.1.5",
        "--from-facts",
        &fixture("lab-facts.json"),
        "--save-facts",
        facts.to_str().unwrap(),
    ];
    let (code, loud_out, loud_err) = run(&base);
    assert_eq!(code, 0);
    assert!(loud_err.contains("facts saved to"), "{loud_err}");
    let (code, quiet_out, quiet_err) = run(&[&base[..], &["-q"]].concat());
    assert_eq!(code, 0);
    assert_eq!(quiet_err, "");
    assert_eq!(quiet_out, loud_out, "the result is the same");
    // An error still shows.
    let (code, _, quiet_err) = run(&[
        "-q",
        "check",
        "--pin",
        "26.1.5",
        "--from-facts",
        &fixture("two-managers-facts.json"),
    ]);
    assert_eq!(code, 3);
    assert!(quiet_err.starts_with("error: "), "{quiet_err}");
    assert_eq!(quiet_err.lines().count(), 1, "{quiet_err}");
}

#[test]
fn completions_are_generated_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, stdout, stderr) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(
            stdout.contains("swarm-upgrade") && stdout.contains("ignore-check"),
            "{shell}: {stdout}"
        );
    }
    let (code, _, _) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2);
}

#[test]
fn the_man_page_covers_every_command_and_the_examples() {
    let (code, man, stderr) = run(&["man"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        man.starts_with(".ie") || man.contains(".TH swarm-upgrade 1"),
        "{man}"
    );
    for section in [
        "SWARM-UPGRADE CHECK",
        "SWARM-UPGRADE PLAN",
        "SWARM-UPGRADE APPLY",
        "SWARM-UPGRADE RESUME",
        "SWARM-UPGRADE STATUS",
        "SWARM-UPGRADE ROLLBACK",
    ] {
        assert!(man.contains(section), "{section} missing");
    }
    assert!(man.contains("\\-\\-dry\\-run"), "apply's options are in it");
    assert!(man.contains("Examples:"), "plan/apply examples are in it");
    // One page: the subcommands list points to its sections, not to pages
    // that are not installed.
    assert!(!man.contains("swarm\\-upgrade\\-check(1)"), "{man}");
    assert!(man.contains("\\fBswarm\\-upgrade check\\fR"), "{man}");
}

#[test]
fn plan_and_apply_help_show_examples() {
    for cmd in ["plan", "apply"] {
        let (code, stdout, _) = run(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(
            stdout.contains("Examples:") && stdout.contains(&format!("swarm-upgrade {cmd} ")),
            "{stdout}"
        );
    }
}

#[test]
fn log_file_gets_json_lines_and_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let (code, _, stderr) = run(&[
        "plan",
        "--pin",
        "26.1.5",
        "--from-facts",
        &fixture("lab-facts.json"),
        "--log-file",
        log.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "DEBUG" && l["fields"]["command"] == "plan"),
        "{text}"
    );
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // -v: the same on stderr.
    let (_, _, stderr) = run(&[
        "-v",
        "plan",
        "--pin",
        "26.1.5",
        "--from-facts",
        &fixture("lab-facts.json"),
    ]);
    assert!(
        stderr.contains("DEBUG") && stderr.contains("start"),
        "{stderr}"
    );
    let (code, _, _) = run(&["-q", "-v", "status"]);
    assert_eq!(code, 2, "-q and -v conflict");
}

/// A bad `--notify` URL or `--metrics-file` directory is refused before any
/// host is read (exit 2), and the message never shows the URL's path or
/// query, where webhook tokens live.
#[test]
fn bad_notify_urls_and_metrics_paths_are_refused_without_showing_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(&inv, "hosts:\n  - name: m1\n").unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--notify", "https://hooks.example.com/services/T0KEN"],
            "--notify https://hooks.example.com/…: https is not supported",
        ),
        (
            &["--notify", "http://user:T0KEN@hooks.example.com/x"],
            "--notify http://hooks.example.com/…: credentials in the URL",
        ),
        (
            &["--notify", "T0KEN"],
            "--notify (value not shown): not a URL",
        ),
        (
            &["--metrics-file", "/nonexistent-dir/x.prom"],
            "--metrics-file /nonexistent-dir/x.prom: the directory /nonexistent-dir does not exist",
        ),
    ];
    for (args, expected) in cases {
        let out = swarm_upgrade()
            .args(["apply", "--pin", "26.1.5", "--yes", "--inventory"])
            .arg(&inv)
            .args(args)
            .env("SWARM_UPGRADE_STATE_DIR", dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("T0KEN"), "{args:?}: {stderr}");
    }
    // From the environment too, and the help never prints its value.
    let out = swarm_upgrade()
        .args(["apply", "--pin", "26.1.5", "--yes", "--inventory"])
        .arg(&inv)
        .env("SWARM_UPGRADE_NOTIFY", "https://hooks.example.com/T0KEN")
        .env("SWARM_UPGRADE_STATE_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("T0KEN"));
    let help = swarm_upgrade()
        .args(["apply", "--help"])
        .env("SWARM_UPGRADE_NOTIFY", "http://x/T0KEN")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--notify <URL>"), "{help}");
    assert!(!help.contains("T0KEN"), "{help}");
}

#[test]
fn a_restart_plan_lists_what_is_out_of_scope_and_is_not_applied_as_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("restart.plan");
    let out = swarm_upgrade()
        .args([
            "plan",
            "--restart",
            "--selector",
            "role=worker",
            "--from-facts",
            &fixture("lab-facts.json"),
            "--out",
        ])
        .arg(&saved)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("Restart plan for swarm"), "{stdout}");
    assert!(
        stdout.contains("Selected: --selector role=worker"),
        "{stdout}"
    );
    // (The reason wraps in the table: `does not match --selector role=worker`.)
    assert_eq!(
        stdout
            .matches("skipped: out of scope: does not match")
            .count(),
        3,
        "{stdout}"
    );
    assert!(
        !stdout.contains("install"),
        "a restart installs nothing: {stdout}"
    );

    let out = swarm_upgrade()
        .args(["plan", "--restart", "--nodes", "nosuch", "--from-facts"])
        .arg(fixture("lab-facts.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--nodes nosuch: no node of the swarm"),
        "{err}"
    );

    let inv = dir.path().join("inventory.yaml");
    std::fs::write(&inv, "hosts:\n  - name: mgr-1\n    address: 10.0.0.11\n").unwrap();
    let out = swarm_upgrade()
        .args(["apply", "--pin", "26.1.5", "--yes", "--inventory"])
        .arg(&inv)
        .arg("--plan")
        .arg(&saved)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("restart plan"), "{err}");
}

#[test]
fn forks_must_be_at_least_one() {
    let out = swarm_upgrade()
        .args([
            "plan",
            "--pin",
            "26.1.5",
            "--inventory",
            "/nonexistent/inv.yaml",
            "--forks",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--forks"), "{err}");
}
