//! Every built-in hazard detects what it describes and nothing else; the
//! loader refuses bad files with the file, line and field.

use std::collections::BTreeSet;
use std::path::Path;

use super::load::parse;
use super::*;
use crate::checks::fixtures::Fixture;
use crate::checks::{Finding, Severity};
use crate::facts::model::PublishedPort;

/// The findings of hazard `id` on the fixture (the whole catalogue runs, so
/// a hazard that fires under another id would show as missing here).
fn of(fx: &Fixture, id: &str) -> Vec<Finding> {
    let cat = Catalogue::builtin();
    assert!(cat.get(id).is_some(), "no hazard {id}");
    evaluate(&cat, &fx.ctx())
        .into_iter()
        .filter(|f| f.id == id)
        .collect()
}

/// The fixture with every node at `current` and the pin at `pin`.
fn at(current: &str, pin: &str) -> Fixture {
    let mut fx = Fixture::healthy();
    for n in &mut fx.facts.cluster.nodes {
        n.engine_version = current.into();
    }
    fx.set_pin(pin);
    fx
}

/// Every hazard with a test below; `every_builtin_hazard_is_tested` holds the
/// catalogue to it.
const TESTED: &[&str] = &[
    "removed-cluster-store-23.0",
    "removed-cluster-advertise-23.0",
    "removed-graph-23.0",
    "removed-oom-score-adjust-26.0",
    "removed-storage-aufs-24.0",
    "removed-storage-overlay-24.0",
    "removed-storage-devicemapper-25.0",
    "unreleased-27.0.0",
    "apparmor-parser-23.0",
    "ipvlan-23.0.0",
    "containerd2-nofile-29.0",
    "iptables-rewrite-28.0",
    "ipset-modules-28.0.0",
    "ingress-order-28.0.0",
    "overlay-dns-28.2",
    "api-minimum-1.44-29.0",
    "encrypted-overlay-28-29",
    "dns-nxdomain-29",
    "swarm-local-dns-29.0.0",
    "embedded-dns-29.1.0",
];

#[test]
fn every_builtin_hazard_is_tested_sourced_and_there_are_at_least_15() {
    let cat = Catalogue::builtin();
    assert!(cat.len() >= 15, "{}", cat.len());
    let ids: BTreeSet<&str> = cat.iter().map(|h| h.id.as_str()).collect();
    let tested: BTreeSet<&str> = TESTED.iter().copied().collect();
    assert_eq!(
        ids, tested,
        "hazards without a test, or tests without a hazard"
    );
    for h in cat.iter() {
        assert!(h.source.starts_with("https://"), "{}", h.id);
        assert!(cat.explain(&h.id).unwrap().contains(&h.source));
    }
}

#[test]
fn a_healthy_cluster_trips_no_hazard_on_an_ordinary_upgrade() {
    let fx = Fixture::healthy();
    let findings = evaluate(&Catalogue::builtin(), &fx.ctx());
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn crossing_covers_both_directions_and_unknown_current_versions() {
    let a = Applies {
        crossing: Some("28.0.0".parse().unwrap()),
        ..Default::default()
    };
    let v = |s: &str| -> EngineVersion { s.parse().unwrap() };
    assert!(a.matches(Some(&v("27.5.1")), &v("28.0.1")));
    assert!(a.matches(Some(&v("28.0.1")), &v("27.5.1")), "rollback");
    assert!(a.matches(Some(&v("27.5.1")), &v("28.0.0")));
    assert!(!a.matches(Some(&v("28.0.0")), &v("29.0.0")), "already past");
    assert!(!a.matches(Some(&v("26.1.5")), &v("27.5.1")), "not yet");
    assert!(a.matches(None, &v("28.1.0")));
    assert!(!a.matches(None, &v("27.5.1")));
}

// ---- removed options and drivers ----

fn daemon_json_hazard(id: &str, json: &str, removed_in: &str) {
    let mut fx = at("20.10.24", "26.1.5");
    fx.host("m2").daemon_json = Some(json.into());
    let found = of(&fx, id);
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_eq!(
        (f.severity, f.node.as_deref()),
        (Severity::Block, Some("m2"))
    );
    assert!(
        f.message
            .starts_with("host m2 (20.10.24 → 26.1.5): /etc/docker/daemon.json sets")
    );
    // Already past the removal: not this run's problem.
    let mut fx = at(removed_in, "26.1.5");
    fx.set_pin("27.5.1");
    fx.host("m2").daemon_json = Some(json.into());
    assert!(of(&fx, id).is_empty());
    // Without the key: nothing.
    assert!(of(&at("20.10.24", "26.1.5"), id).is_empty());
}

#[test]
fn removed_cluster_store_23_0() {
    daemon_json_hazard(
        "removed-cluster-store-23.0",
        r#"{"cluster-store": "consul://x"}"#,
        "23.0.0",
    );
}

#[test]
fn removed_cluster_advertise_23_0() {
    daemon_json_hazard(
        "removed-cluster-advertise-23.0",
        r#"{"cluster-advertise": "eth0:2376"}"#,
        "23.0.0",
    );
}

#[test]
fn removed_graph_23_0() {
    daemon_json_hazard(
        "removed-graph-23.0",
        r#"{"graph": "/srv/docker"}"#,
        "23.0.0",
    );
}

#[test]
fn removed_oom_score_adjust_26_0() {
    daemon_json_hazard(
        "removed-oom-score-adjust-26.0",
        r#"{"oom-score-adjust": -500}"#,
        "26.0.0",
    );
    // 25.0.5 → 26.1.5 crosses 26.0 (the fixture's own versions).
    let mut fx = Fixture::healthy();
    fx.host("m1").daemon_json = Some(r#"{"oom-score-adjust": -500}"#.into());
    assert_eq!(of(&fx, "removed-oom-score-adjust-26.0").len(), 1);
    // The pin stays before 26.0.
    fx.set_pin("25.0.6");
    assert!(of(&fx, "removed-oom-score-adjust-26.0").is_empty());
}

#[test]
fn a_daemon_json_that_does_not_parse_is_left_to_daemon_config() {
    let mut fx = at("20.10.24", "26.1.5");
    fx.host("m2").daemon_json = Some("{\"graph\": ".into());
    assert!(of(&fx, "removed-graph-23.0").is_empty());
    assert!(of(&fx, "containerd2-nofile-29.0").is_empty());
}

fn storage_hazard(id: &str, driver: &str) {
    let mut fx = at("20.10.24", "26.1.5");
    fx.host("w1").storage_driver = Some(driver.into());
    fx.host("w2").daemon_json = Some(format!(r#"{{"storage-driver": "{driver}"}}"#));
    let found = of(&fx, id);
    let nodes: Vec<_> = found.iter().filter_map(|f| f.node.as_deref()).collect();
    assert_eq!(nodes, ["w1", "w2"], "{found:#?}");
    assert!(
        found[0]
            .message
            .contains(&format!("uses the {driver} storage driver"))
    );
    assert!(of(&at("20.10.24", "23.0.6"), id).is_empty());
}

#[test]
fn removed_storage_aufs_24_0() {
    storage_hazard("removed-storage-aufs-24.0", "aufs");
}

#[test]
fn removed_storage_overlay_24_0() {
    storage_hazard("removed-storage-overlay-24.0", "overlay");
    // overlay2 is not overlay.
    let mut fx = at("20.10.24", "26.1.5");
    fx.host("w1").storage_driver = Some("overlay2".into());
    assert!(of(&fx, "removed-storage-overlay-24.0").is_empty());
}

#[test]
fn removed_storage_devicemapper_25_0() {
    storage_hazard("removed-storage-devicemapper-25.0", "devicemapper");
}

// ---- releases ----

#[test]
fn unreleased_27_0_0() {
    let found = of(&at("26.1.5", "27.0.0"), "unreleased-27.0.0");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].node, None);
    assert!(found[0].message.contains("pin 27.0.1 or later"));
    assert!(found[0].message.contains("Engine 27.0.0 on every node"));
    assert!(of(&at("26.1.5", "27.0.1"), "unreleased-27.0.0").is_empty());
}

#[test]
fn apparmor_parser_23_0() {
    let mut fx = at("20.10.24", "23.0.1");
    fx.host("w1").apparmor_parser = false;
    let found = of(&fx, "apparmor-parser-23.0");
    assert_eq!(found.len(), 1);
    assert!(
        found[0]
            .message
            .contains("debian host; AppArmor on; no apparmor_parser")
    );
    assert!(found[0].message.contains("apt-get install apparmor"));
    fx.set_pin("23.0.2");
    assert!(of(&fx, "apparmor-parser-23.0").is_empty());
    fx.set_pin("23.0.0");
    fx.host("w1").os.id = "rhel".into();
    assert!(of(&fx, "apparmor-parser-23.0").is_empty());
}

#[test]
fn ipvlan_23_0_0() {
    let mut fx = at("20.10.24", "23.0.0");
    fx.host("w2").ipvlan_networks = None;
    assert!(of(&fx, "ipvlan-23.0.0").is_empty(), "not read: not claimed");
    fx.host("w2").ipvlan_networks = Some(vec!["vlan20".into()]);
    let found = of(&fx, "ipvlan-23.0.0");
    assert_eq!(found.len(), 1);
    assert!(found[0].message.contains("ipvlan networks vlan20"));
    fx.set_pin("23.0.1");
    assert!(of(&fx, "ipvlan-23.0.0").is_empty());
}

#[test]
fn containerd2_nofile_29_0() {
    let mut fx = at("28.5.2", "29.1.3");
    let found = of(&fx, "containerd2-nofile-29.0");
    assert_eq!(found.len(), 5, "every host without default-ulimits");
    assert_eq!(found[0].severity, Severity::Warn);
    for h in ["m1", "m2", "m3", "w1", "w2"] {
        fx.host(h).daemon_json = Some(
            r#"{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 65536, "Hard": 65536}}}"#
                .into(),
        );
    }
    assert!(of(&fx, "containerd2-nofile-29.0").is_empty());
    assert!(of(&at("27.5.1", "28.5.2"), "containerd2-nofile-29.0").is_empty());
}

#[test]
fn swarm_local_dns_29_0_0() {
    let found = of(&at("28.5.2", "29.0.0"), "swarm-local-dns-29.0.0");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, Severity::Warn);
    assert!(of(&at("28.5.2", "29.0.1"), "swarm-local-dns-29.0.0").is_empty());
}

#[test]
fn embedded_dns_29_1_0() {
    let found = of(&at("29.0.4", "29.1.0"), "embedded-dns-29.1.0");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, Severity::Block);
    assert!(found[0].message.contains("pin 29.1.1 or later"));
    assert!(of(&at("29.0.4", "29.1.1"), "embedded-dns-29.1.0").is_empty());
}

// ---- networking ----

#[test]
fn iptables_rewrite_28_0_covers_the_rollback() {
    let found = of(&at("27.5.1", "28.5.2"), "iptables-rewrite-28.0");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, Severity::Warn);
    assert_eq!(
        of(&at("28.5.2", "27.5.1"), "iptables-rewrite-28.0").len(),
        1
    );
    assert!(of(&at("28.0.1", "28.5.2"), "iptables-rewrite-28.0").is_empty());
}

#[test]
fn ipset_modules_28_0_0() {
    let mut fx = at("27.5.1", "28.0.0");
    assert!(
        of(&fx, "ipset-modules-28.0.0").is_empty(),
        "modules not read"
    );
    fx.host("m3").kernel_modules = Some(vec!["overlay".into(), "ip_set".into()]);
    let found = of(&fx, "ipset-modules-28.0.0");
    assert_eq!(found.len(), 1);
    assert!(
        found[0]
            .message
            .contains("kernel modules not loaded: ip_set_hash_net, xt_set")
    );
    fx.host("m3").kernel_modules = Some(vec![
        "ip_set".into(),
        "ip_set_hash_net".into(),
        "xt_set".into(),
    ]);
    assert!(of(&fx, "ipset-modules-28.0.0").is_empty());
}

#[test]
fn ingress_order_28_0_0() {
    let mut fx = at("27.5.1", "28.0.0");
    assert!(
        of(&fx, "ingress-order-28.0.0").is_empty(),
        "nothing published"
    );
    fx.service("web").published_ports = vec![PublishedPort {
        published: 8080,
        target: 80,
        protocol: "tcp".into(),
        mode: "host".into(),
    }];
    assert!(of(&fx, "ingress-order-28.0.0").is_empty(), "host mode only");
    fx.service("web").published_ports[0].mode = "ingress".into();
    let found = of(&fx, "ingress-order-28.0.0");
    assert_eq!(found.len(), 1);
    assert!(found[0].message.contains("services web"));
    fx.set_pin("28.0.1");
    assert!(of(&fx, "ingress-order-28.0.0").is_empty());
}

#[test]
fn overlay_dns_28_2() {
    let mut fx = at("28.1.1", "28.2.2");
    let found = of(&fx, "overlay-dns-28.2");
    assert_eq!(found.len(), 1);
    assert!(
        found[0].message.contains("overlay networks "),
        "{}",
        found[0].message
    );
    assert!(found[0].message.contains("app"));
    fx.set_pin("28.3.0");
    assert!(of(&fx, "overlay-dns-28.2").is_empty());
    let mut fx = at("28.1.1", "28.2.2");
    fx.facts.cluster.networks.clear();
    assert!(of(&fx, "overlay-dns-28.2").is_empty());
}

#[test]
fn api_minimum_1_44_29_0() {
    let mut fx = at("28.5.2", "29.1.3");
    assert!(of(&fx, "api-minimum-1.44-29.0").is_empty());
    fx.service("agent").bind_mounts = vec!["/var/run/docker.sock".into()];
    let found = of(&fx, "api-minimum-1.44-29.0");
    assert_eq!(found.len(), 1);
    assert!(
        found[0].message.contains("services agent"),
        "{}",
        found[0].message
    );
    assert!(of(&at("27.5.1", "28.5.2"), "api-minimum-1.44-29.0").is_empty());
}

#[test]
fn encrypted_overlay_28_29() {
    let mut fx = at("28.5.2", "29.1.3");
    assert!(of(&fx, "encrypted-overlay-28-29").is_empty());
    fx.network("app")
        .options
        .insert("encrypted".into(), String::new());
    let found = of(&fx, "encrypted-overlay-28-29");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, Severity::Block);
    assert!(found[0].message.contains("encrypted overlay networks app"));
    fx.set_pin("28.5.2");
    for n in &mut fx.facts.cluster.nodes {
        n.engine_version = "27.5.1".into();
    }
    assert!(of(&fx, "encrypted-overlay-28-29").is_empty());
}

#[test]
fn dns_nxdomain_29() {
    let found = of(&at("28.5.2", "29.1.3"), "dns-nxdomain-29");
    assert_eq!(found.len(), 1);
    assert!(of(&at("27.5.1", "28.5.2"), "dns-nxdomain-29").is_empty());
}

// ---- the loader ----

const ONE: &str = "- id: test-hazard-1.0
  title: a hazard from a file
  applies:
    target: \">=26.0.0\"
  detect:
    daemon-json-key: debug
  severity: warn
  effect: nothing really
  remedy: nothing
  source: https://example.com/issue/1
";

#[test]
fn a_hazard_from_a_file_needs_no_rust() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.yaml");
    std::fs::write(&path, ONE).unwrap();
    let cat = Catalogue::load(&[&path]).unwrap();
    assert_eq!(cat.len(), Catalogue::builtin().len() + 1);
    let mut fx = Fixture::healthy();
    fx.host("w1").daemon_json = Some(r#"{"debug": true}"#.into());
    let found: Vec<_> = evaluate(&cat, &fx.ctx())
        .into_iter()
        .filter(|f| f.id == "test-hazard-1.0")
        .collect();
    assert_eq!(found.len(), 1);
    // A directory works too, and the same id replaces a built-in hazard.
    let replaced = ONE.replace("test-hazard-1.0", "removed-graph-23.0");
    std::fs::write(dir.path().join("mine.yaml"), replaced).unwrap();
    let cat = Catalogue::load(&[dir.path()]).unwrap();
    assert_eq!(cat.len(), Catalogue::builtin().len());
    assert_eq!(
        cat.get("removed-graph-23.0").unwrap().title,
        "a hazard from a file"
    );
}

#[test]
fn bad_hazard_files_name_the_file_the_line_and_the_field() {
    let cases = [
        (
            ONE.replace("daemon-json-key", "daemon-json-kee"),
            "daemon-json-kee",
        ),
        (
            ONE.replace(">=26.0.0", "26.0"),
            ":1: hazard `test-hazard-1.0`, field `applies.target`",
        ),
        (
            ONE.replace("https://example.com/issue/1", "moby#1"),
            "field `source`",
        ),
        (ONE.replace("severity: warn", "severity: fatal"), "fatal"),
        (
            ONE.replace("id: test-hazard-1.0", "id: Test Hazard"),
            "field `id`",
        ),
        (
            format!("{ONE}{}", ONE.replace("- id", "\n- id")),
            ":12: hazard `test-hazard-1.0`, field `id`: the id is also used at line 1",
        ),
    ];
    for (text, expected) in cases {
        let err = parse(&text, Path::new("extra/mine.yaml")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.starts_with("extra/mine.yaml:"), "{msg}");
        assert!(msg.contains(expected), "{expected}: {msg}");
        assert_eq!(crate::error::exit_code_of(&err), crate::exit_code::USAGE);
    }
}
