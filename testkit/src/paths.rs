//! Where testkit keeps its state on the host.
//!
//! Everything lives under two roots so that `testkit down` can remove a lab without guessing:
//! the state root (private daemon, per-lab keys and inventories) and the cache root (node image
//! tarballs, kept across `down` so that a second CI run skips the image build).

use std::path::PathBuf;

/// Root of all testkit state that `down` may delete.
pub const STATE_ROOT: &str = "/var/lib/swarm-upgrade-testkit";

/// Default image cache; CI can point `TESTKIT_CACHE` at a directory it caches between runs.
pub const DEFAULT_CACHE_ROOT: &str = "/var/cache/swarm-upgrade-testkit";

/// Label put on every container, network and volume of a lab; its value is the lab name.
pub const LAB_LABEL: &str = "swarm-upgrade-testkit.lab";

pub fn state_root() -> PathBuf {
    PathBuf::from(STATE_ROOT)
}

/// The private dockerd's directory (data root, exec root, socket, pid file, log).
pub fn daemon_dir() -> PathBuf {
    state_root().join("daemon")
}

/// Socket of the private daemon. Every docker CLI call goes here explicitly: the host may have
/// another docker CLI earlier on PATH and another daemon on /var/run/docker.sock.
pub fn daemon_socket() -> PathBuf {
    daemon_dir().join("docker.sock")
}

/// Per-lab directory: SSH client key, known_hosts, inventory, lab.json.
pub fn lab_dir(name: &str) -> PathBuf {
    state_root().join(name)
}

/// Scratch space for image builds; on the same filesystem as the state root, not in /tmp,
/// because a debootstrapped rootfs is ~600 MB and /tmp may be a small tmpfs.
pub fn build_dir() -> PathBuf {
    state_root().join("build")
}

pub fn cache_root() -> PathBuf {
    match std::env::var_os("TESTKIT_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_CACHE_ROOT),
    }
}
