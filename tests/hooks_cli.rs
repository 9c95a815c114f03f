//! Hooks on the command line, without a cluster: `plan --hooks` shows the
//! hooks and their steps; a bad hooks file or inventory `hooks:` is a usage
//! error naming file, line and field (exit 2).

use assert_cmd::Command;

fn swarm_upgrade() -> Command {
    let mut c = Command::cargo_bin("swarm-upgrade").unwrap();
    c.env_remove("SWARM_UPGRADE_INVENTORY");
    c
}

fn fixture(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// `plan --from-facts` (the lab's) with a hooks file; (exit code, stdout,
/// stderr with the temp dir replaced by `[DIR]`).
fn plan_with_hooks(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks.yaml");
    std::fs::write(&hooks, text).unwrap();
    let out = swarm_upgrade()
        .args([
            "plan",
            "--pin",
            "26.1.5",
            "--from-facts",
            &fixture("lab-facts.json"),
            "--hooks",
        ])
        .arg(&hooks)
        .output()
        .unwrap();
    let clean =
        |b: &[u8]| String::from_utf8_lossy(b).replace(&dir.path().display().to_string(), "[DIR]");
    (
        out.status.code().unwrap(),
        clean(&out.stdout),
        clean(&out.stderr),
    )
}

#[test]
fn the_plan_shows_the_hooks_and_their_steps() {
    let (code, stdout, stderr) = plan_with_hooks(
        "hooks:\n  - at: pre-drain\n    run: controller\n    command: lb-out \"$SU_ADDRESS\"\n  - at: post-install\n    run: host\n    command: /usr/local/bin/smoke\n    timeout: 5m\n    role: worker\n",
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    insta::assert_snapshot!("plan_table_lab_hooks", stdout);

    let (_, json, _) = {
        let dir = tempfile::tempdir().unwrap();
        let hooks = dir.path().join("hooks.yaml");
        std::fs::write(&hooks, "hooks:\n  - at: post-verify\n    run: host\n    command: 'true'\n    nodes: [lab-w1]\n").unwrap();
        let out = swarm_upgrade()
            .args([
                "plan",
                "--pin",
                "26.1.5",
                "--from-facts",
                &fixture("lab-facts.json"),
                "-o",
                "json",
                "--hooks",
            ])
            .arg(&hooks)
            .output()
            .unwrap();
        (0, String::from_utf8_lossy(&out.stdout).into_owned(), ())
    };
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let hook_steps: Vec<&serde_json::Value> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "hook")
        .collect();
    assert_eq!(hook_steps.len(), 1, "{json}");
    assert_eq!(hook_steps[0]["hook"], "post-verify");
    assert_eq!(hook_steps[0]["node"], "lab-w1");
    assert_eq!(doc["hooks"][0]["command"], "true");
}

#[test]
fn bad_hooks_are_usage_errors_naming_file_line_and_field() {
    let cases = [
        (
            "unknown_point",
            "hooks:\n  - at: before-drain\n    run: host\n    command: x\n",
        ),
        (
            "unknown_field",
            "hooks:\n  - at: pre-drain\n    run: host\n    comand: x\n",
        ),
        (
            "bad_timeout",
            "hooks:\n  - at: pre-drain\n    run: host\n    command: x\n    timeout: soon\n",
        ),
        (
            "unknown_node",
            "hooks:\n  - at: pre-drain\n    run: host\n    command: x\n    nodes: [lab-w9]\n",
        ),
    ];
    for (name, text) in cases {
        let (code, _, stderr) = plan_with_hooks(text);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains("[DIR]/hooks.yaml"), "{name}: {stderr}");
        insta::assert_snapshot!(format!("hooks_{name}"), stderr);
    }
}
