//! Plan output at scale (issue 15, item 5), end to end: a simulated swarm,
//! saved as facts, planned by the binary. The table groups alike nodes and
//! batches, `--wide` lists every one, and JSON is never grouped, at 2,000
//! nodes.

use assert_cmd::Command;
use swarm_upgrade::version::EngineVersion;
use swarm_upgrade_sim::{SimCluster, SimSpec};

const NODES: usize = 2000;

/// Facts of a simulated swarm (5 managers, the bench's shape),
/// saved as `plan --save-facts` would; and the hostnames.
fn facts() -> (tempfile::TempDir, std::path::PathBuf, Vec<String>) {
    let pin: EngineVersion = "26.1.5".parse().unwrap();
    let sim = SimCluster::from_spec(&SimSpec::new(NODES, 5, NODES * 2 / 5, NODES * 10, 4, 2026));
    let g = sim.gathered(&pin);
    let names = g
        .facts
        .cluster
        .nodes
        .iter()
        .map(|n| n.hostname.clone())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("facts.json");
    std::fs::write(&path, serde_json::to_vec(&g).unwrap()).unwrap();
    (dir, path, names)
}

fn plan(facts: &std::path::Path, extra: &[&str]) -> String {
    let out = Command::cargo_bin("swarm-upgrade")
        .unwrap()
        .env_remove("SWARM_UPGRADE_INVENTORY")
        .args([
            "plan",
            "--pin",
            "26.1.5",
            "--max-parallel",
            "10",
            "--from-facts",
        ])
        .arg(facts)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    // Exit 0, or 3 when the simulated swarm has a blocker: both print the plan.
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The node table: from its header to the blank line after it.
fn node_table(text: &str) -> Vec<&str> {
    text.lines()
        .skip_while(|l| !l.starts_with("ORDER "))
        .take_while(|l| !l.is_empty())
        .collect()
}

#[test]
fn a_200_node_plan_is_grouped_and_wide_lists_every_node() {
    let (_dir, facts, names) = facts();
    let grouped = plan(&facts, &[]);
    let wide = plan(&facts, &["--wide"]);
    let (g, w) = (node_table(&grouped), node_table(&wide));
    assert!(
        g.last()
            .is_some_and(|l| l.ends_with("nodes grouped; --wide lists every node")),
        "{grouped}"
    );
    assert!(g.len() * 5 < w.len(), "{} vs {} lines", g.len(), w.len());
    let first_column = |table: &[&str]| -> Vec<String> {
        table
            .iter()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .collect()
    };
    let listed = first_column(&w);
    for n in &names {
        assert!(listed.contains(n), "--wide does not list {n}");
    }
    assert!(!wide.contains("grouped; --wide"), "{wide}");
    // The step listing groups too, and --wide lists every step.
    assert!(grouped.contains("batches grouped; --wide lists every step"));
    assert!(grouped.lines().count() * 5 < wide.lines().count());
}

#[test]
fn json_is_never_grouped() {
    let (_dir, facts, names) = facts();
    for extra in [&["-o", "json"][..], &["-o", "json", "--wide"][..]] {
        let doc: serde_json::Value = serde_json::from_str(&plan(&facts, extra)).unwrap();
        let nodes = doc["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), names.len());
        for n in &names {
            assert!(nodes.iter().any(|x| x["name"] == n.as_str()), "{n} missing");
        }
    }
}
