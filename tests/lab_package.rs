//! The packages of `packaging/build`, installed where Rust never was: the
//! .deb in a clean Debian container (the lab's node image, a Debian rootfs,
//! on testkit's private daemon; no swarm, no network), and the static binary
//! run in another one. `packaging/build` must have run first (CI runs it just
//! before); a missing package fails the test, it is never skipped.
//!
//! `#[ignore]`d in a plain `cargo test`; the lab suite runs them with
//! `--ignored --test-threads=1`, as root. `zz_remove_the_package_lab` runs
//! last and stops the private daemon when no lab is left ("eco" has no
//! containers of its own).

use std::path::{Path, PathBuf};
use std::time::Instant;

use testkit::{Lab, cmd, host, image};

const LAB: &str = "eco";
const STATIC_BIN: &str = "target/x86_64-unknown-linux-musl/release/swarm-upgrade";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The newest .deb packaging/build left in target/debian.
fn deb() -> PathBuf {
    let dir = root().join("target/debian");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run packaging/build first", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("swarm-upgrade_") && n.ends_with("_amd64.deb"))
        })
        .collect();
    debs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    debs.pop().unwrap_or_else(|| {
        panic!(
            "no swarm-upgrade_*_amd64.deb in {}; run packaging/build first",
            dir.display()
        )
    })
}

/// Runs `script` in a fresh container of the node image, with `mounts`
/// (host path, container path) read-only; returns its stdout.
fn in_clean_debian(mounts: &[(&Path, &str)], script: &str) -> String {
    let _lock = host::lock_host("package test").expect("host lock");
    host::prepare().expect("the private dockerd");
    let tag = image::ensure(false).expect("the node image").tag();
    let mut c = cmd::docker();
    c.args(["run", "--rm", "--network", "none", "--entrypoint", "sh"]);
    for (from, to) in mounts {
        c.arg("-v").arg(format!("{}:{to}:ro", from.display()));
    }
    c.arg(&tag).args(["-c", script]);
    c.run()
        .unwrap_or_else(|e| panic!("in a clean {tag} container: {e:#}"))
}

#[test]
#[ignore = "lab test: needs root and testkit's private dockerd"]
fn the_deb_installs_and_runs_in_a_clean_debian_container() {
    let start = Instant::now();
    let deb = deb();
    let out = in_clean_debian(
        &[(&deb, "/tmp/swarm-upgrade.deb")],
        "set -e
         if command -v cargo rustc; then echo 'not clean: Rust is installed' >&2; exit 1; fi
         dpkg -i /tmp/swarm-upgrade.deb >/dev/null
         swarm-upgrade --version
         test -s /usr/share/man/man1/swarm-upgrade.1.gz
         test -s /usr/share/bash-completion/completions/swarm-upgrade
         test -s /usr/share/zsh/vendor-completions/_swarm-upgrade
         test -s /usr/share/fish/vendor_completions.d/swarm-upgrade.fish
         swarm-upgrade plan --help | grep -q Examples:",
    );
    assert_eq!(
        out.trim(),
        format!("swarm-upgrade {}", env!("CARGO_PKG_VERSION")),
        "{out}"
    );
    eprintln!("the .deb ran in a clean container in {:?}", start.elapsed());
}

#[test]
#[ignore = "lab test: needs root and testkit's private dockerd"]
fn the_static_binary_runs_in_a_clean_debian_container() {
    let bin = root().join(STATIC_BIN);
    assert!(
        bin.is_file(),
        "{}: run packaging/build first",
        bin.display()
    );
    let out = in_clean_debian(
        &[(&bin, "/opt/swarm-upgrade")],
        "/opt/swarm-upgrade --version",
    );
    assert_eq!(
        out.trim(),
        format!("swarm-upgrade {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
#[ignore = "lab test: needs root and testkit's private dockerd"]
fn zz_remove_the_package_lab() {
    Lab::down(LAB).unwrap_or_else(|e| panic!("removing lab {LAB}: {e:#}"));
}
