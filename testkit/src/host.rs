//! Host preparation: root check, Debian packages, and testkit's own private dockerd.
//!
//! The lab must never touch another Docker installation on the machine. An installed
//! Docker (any family) is used as it is, never replaced (see `engine`); only on a machine
//! with no Docker is `docker.io` installed, with a policy-rc.d that forbids starting
//! services (no system daemon appears). testkit runs a dockerd of its own with a private
//! data root, exec root, socket and config file.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::{self, Cmd};
use crate::paths;

/// What the host needs besides an engine (see `engine`): debootstrap and dpkg-dev for the
/// node image, ssh for the lab's real SSH path, iptables for dockerd, and docker-registry
/// (Docker's distribution registry, no service started) whose binary a lab test runs in a
/// node: a real registry, since the lab reaches none; python3-venv for the bastion test's
/// ansible-core (installed from PyPI into a venv).
pub const HOST_PACKAGES: &[&str] = &[
    "debootstrap",
    "dpkg-dev",
    "openssh-client",
    "iptables",
    "docker-registry",
    "python3-venv",
];

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// Fail early and clearly: nearly every step (apt, dockerd, debootstrap) needs root.
pub fn require_root() -> Result<()> {
    let status =
        fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no Uid line in /proc/self/status")?;
    if euid != "0" {
        bail!(
            "testkit must run as root (effective uid is {euid}): it installs Debian packages, \
             runs its own dockerd and builds a root filesystem with debootstrap"
        );
    }
    Ok(())
}

/// Packages from `HOST_PACKAGES` that dpkg does not report as installed.
pub fn missing_packages() -> Result<Vec<&'static str>> {
    let mut missing = Vec::new();
    for pkg in HOST_PACKAGES {
        let out = Cmd::new("dpkg-query")
            .args(["-W", "-f=${db:Status-Abbrev}", pkg])
            .output()?;
        let installed =
            out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("ii");
        if !installed {
            missing.push(*pkg);
        }
    }
    Ok(missing)
}

/// Install whatever is missing. Idempotent: does nothing (and needs no network) when all
/// packages are present.
pub fn ensure_packages() -> Result<()> {
    let mut missing = missing_packages()?;
    // Decided before anything is installed: a partial Docker is refused here.
    if crate::engine::inspect()? == crate::engine::Decision::InstallDockerIo {
        missing.push("docker.io");
    }
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("testkit: installing host packages: {}", missing.join(" "));
    // Held for the duration of the install; removed on drop, also on error.
    let _policy = PolicyRcGuard::install()?;
    Cmd::new("apt-get")
        .args(["update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
        .context("apt-get update failed")?;
    Cmd::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
        .context("installing host packages failed")?;
    let mut still = missing_packages()?;
    if crate::engine::locate().is_err() {
        still.push("docker.io (no dockerd and docker client after the install)");
    }
    if !still.is_empty() {
        bail!(
            "apt-get reported success but these are not installed: {}",
            still.join(" ")
        );
    }
    Ok(())
}

/// A temporary /usr/sbin/policy-rc.d that exits 101 ("action forbidden"), so that the
/// docker.io postinst does not start (or enable-and-start) a system dockerd. Removed on drop,
/// and only if we created it: an existing policy belongs to someone else.
pub struct PolicyRcGuard {
    created: bool,
}

impl PolicyRcGuard {
    pub fn install() -> Result<Self> {
        let path = Path::new(POLICY_RC_D);
        if path.exists() {
            eprintln!(
                "testkit: note: {POLICY_RC_D} already exists and is left as it is; \
                 it decides whether the docker.io install starts a system daemon"
            );
            return Ok(PolicyRcGuard { created: false });
        }
        fs::write(
            path,
            "#!/bin/sh\n# Temporary, written by swarm-upgrade testkit: start no services.\nexit 101\n",
        )
        .with_context(|| format!("cannot write {POLICY_RC_D}"))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
        Ok(PolicyRcGuard { created: true })
    }
}

impl Drop for PolicyRcGuard {
    fn drop(&mut self) {
        if self.created
            && let Err(e) = fs::remove_file(POLICY_RC_D)
            && e.kind() != ErrorKind::NotFound
        {
            eprintln!("testkit: warning: cannot remove {POLICY_RC_D}: {e}");
        }
    }
}

/// `bash -c` script: close every inherited fd above 2, then exec "$@".
const CLOSE_FDS_AND_EXEC: &str = r#"for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done; exec "$@""#;

/// testkit's own dockerd.
pub struct Daemon {
    dir: PathBuf,
}

impl Default for Daemon {
    fn default() -> Self {
        Self::new()
    }
}

impl Daemon {
    pub fn new() -> Self {
        Daemon {
            dir: paths::daemon_dir(),
        }
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.join("dockerd.pid")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    /// The pid of a live private dockerd, if any (a stale pid file does not count).
    pub fn pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.pidfile())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "dockerd").then_some(pid)
    }

    /// Does the daemon answer API calls on its socket?
    pub fn answers(&self) -> bool {
        cmd::docker()
            .args(["version", "--format", "{{.Server.Version}}"])
            .timeout(Duration::from_secs(10))
            .succeeds()
    }

    /// Start the daemon unless it is already up. Idempotent.
    pub fn ensure_running(&self) -> Result<()> {
        let engine = crate::engine::locate()?;
        if self.pid().is_some() {
            if self.answers() {
                return Ok(());
            }
            // Running but not (yet) answering, e.g. started a moment ago by another testkit.
            return self.wait_answering(self.pid());
        }
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        // Our own config file, so that a host /etc/docker/daemon.json cannot change the lab.
        // No default bridge (docker0 would collide with a system daemon's), no iptables rules
        // and no ip_forward sysctl change on the host: the lab only needs host <-> node and
        // node <-> node traffic on one bridge, and the nodes must stay offline anyway.
        let config = self.dir.join("daemon.json");
        fs::write(
            &config,
            "{\n  \"bridge\": \"none\",\n  \"iptables\": false,\n  \"ip-masq\": false,\n  \"ip-forward\": false,\n  \"log-level\": \"warn\"\n}\n",
        )?;
        let log = fs::File::options()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        eprintln!(
            "testkit: starting private dockerd (log: {})",
            self.log_path().display()
        );
        let d = self.dir.display();
        // setsid --fork: the daemon gets its own session and is reparented to init, so it
        // survives this process and a Ctrl-C in its terminal.
        // The daemon lives on after the caller, so it must not inherit the caller's open
        // files: a `flock LOCK cargo test` would otherwise stay locked for as long as the
        // daemon runs (seen). Rust opens its own fds close-on-exec, but fds inherited from
        // our parent are not, so bash closes every fd above 2 before exec'ing setsid.
        let status = std::process::Command::new("bash")
            .args(["-c", CLOSE_FDS_AND_EXEC, "testkit-spawn"])
            .args(["setsid", "--fork"])
            .arg(&engine.dockerd)
            .arg(format!("--config-file={}", config.display()))
            .arg(format!("--data-root={d}/data"))
            .arg(format!("--exec-root={d}/exec"))
            .arg(format!("--pidfile={d}/dockerd.pid"))
            .arg(format!("--host=unix://{d}/docker.sock"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .with_context(|| {
                format!(
                    "cannot run bash -c 'exec setsid {}' (bash and util-linux installed?)",
                    engine.dockerd.display()
                )
            })?;
        if !status.success() {
            bail!("setsid dockerd failed: {status}");
        }
        self.wait_answering(None)
    }

    fn wait_answering(&self, known_pid: Option<u32>) -> Result<()> {
        let start = Instant::now();
        let timeout = Duration::from_secs(60);
        loop {
            if self.answers() {
                eprintln!(
                    "testkit: private dockerd answers on {} ({})",
                    paths::daemon_socket().display(),
                    cmd::secs(start.elapsed())
                );
                return Ok(());
            }
            // Give it a few seconds to write its pid file before declaring it dead.
            if start.elapsed() > Duration::from_secs(5)
                && self.pid().is_none()
                && known_pid.is_none()
            {
                bail!(
                    "the private dockerd exited; last lines of {}:\n{}",
                    self.log_path().display(),
                    cmd::tail_of_file(&self.log_path(), 30)
                );
            }
            if start.elapsed() > timeout {
                bail!(
                    "the private dockerd did not answer within {}; last lines of {}:\n{}",
                    humantime::format_duration(timeout),
                    self.log_path().display(),
                    cmd::tail_of_file(&self.log_path(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stop the daemon (SIGTERM, then wait for it to exit; it stops its containers first).
    pub fn stop(&self) -> Result<()> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        eprintln!("testkit: stopping private dockerd (pid {pid})");
        Cmd::new("kill").args(["-TERM", &pid.to_string()]).run()?;
        cmd::wait_for(
            "the private dockerd to exit",
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                let alive = Path::new(&format!("/proc/{pid}")).exists();
                Ok((!alive).then_some(()))
            },
        )
    }

    /// Delete the daemon's directory (data root included). Only when it is stopped, and only
    /// after unmounting anything left below it, so that `rm -rf` can never walk into a mount.
    pub fn remove_data(&self) -> Result<()> {
        if self.pid().is_some() {
            bail!(
                "refusing to delete {}: the private dockerd is running",
                self.dir.display()
            );
        }
        if !self.dir.exists() {
            return Ok(());
        }
        unmount_below(&self.dir)?;
        Cmd::new("rm")
            .args(["-rf", "--one-file-system"])
            .arg(&self.dir)
            .run()?;
        Ok(())
    }
}

/// Unmount (lazily, deepest first) every mount point at or below `dir`.
pub fn unmount_below(dir: &Path) -> Result<()> {
    let mounts = fs::read_to_string("/proc/self/mounts")?;
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        // /proc/mounts escapes spaces as \040; our paths have none, so compare as is.
        .filter(|p| *p == prefix || p.starts_with(&format!("{prefix}/")))
        .map(str::to_string)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        Cmd::new("umount").args(["-l", &p]).run()?;
    }
    Ok(())
}

/// Serializes the operations that start, use or stop the shared private daemon (`up`,
/// `down`, `prepare`) across processes. Without it, a `down` that sees no lab left stops the
/// daemon under an `up` that is still importing the node image in another process (seen:
/// parallel test binaries that each bring up labs of their own). Released on drop.
pub struct HostLock {
    _file: fs::File,
}

pub fn lock_host(what: &str) -> Result<HostLock> {
    require_root()?;
    fs::create_dir_all(paths::state_root())?;
    let path = paths::state_root().join(".lock");
    let file =
        fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            eprintln!("testkit: {what}: waiting for another testkit (up/down/prepare) to finish");
            file.lock()
                .with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    Ok(HostLock { _file: file })
}

/// Everything the host needs before a lab can be built: root, packages, private daemon.
/// Callers hold the `HostLock`.
pub fn prepare() -> Result<Daemon> {
    require_root()?;
    ensure_packages()?;
    let daemon = Daemon::new();
    daemon.ensure_running()?;
    Ok(daemon)
}
