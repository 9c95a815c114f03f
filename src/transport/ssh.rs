//! The SSH transport: one multiplexed OpenSSH connection per host per run,
//! parked (closed) between uses when the cluster is larger than `--forks`
//! and reopened on demand with the same options.
//!
//! OpenSSH does the SSH: the operator's ~/.ssh/config (ProxyJump, agent,
//! certificates, keys) applies unchanged. Host keys are checked strictly unless
//! the operator opts in to accepting new ones. `sudo -n` never prompts: a host
//! without passwordless sudo fails at once instead of hanging.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use openssh::{ControlPersist, ForwardType, KnownHosts, Session, SessionBuilder, Socket, Stdio};
use tokio::io::AsyncWriteExt;

use super::{Cmd, CmdOutput, Transport, ssh_errors};
use crate::inventory::{SshTarget, Sudo};

/// Settings shared by every connection of a run.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Accept (and record) host keys not yet in known_hosts. Off by default.
    pub accept_new_host_keys: bool,
    /// `ssh -F`: this ssh config instead of ~/.ssh/config (OpenSSH hands it
    /// on to ProxyJump hops too).
    pub config_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Short private directory (0700) for control sockets and forwards.
    pub runtime_dir: PathBuf,
}

/// SSH connections made by this process, per host name: measured, not
/// assumed, so that a run can report that it opened one per host.
static CONNECTIONS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// How many SSH connections this process has made to the host `name`.
pub fn connections_made(name: &str) -> u64 {
    CONNECTIONS
        .lock()
        .map_or(0, |c| c.get(name).copied().unwrap_or(0))
}

/// SSH handshakes in progress in this process, and the most seen at once:
/// measured, so that the SSH benchmark can show that `--forks` bounds them.
static HANDSHAKES: AtomicUsize = AtomicUsize::new(0);
static HANDSHAKES_PEAK: AtomicUsize = AtomicUsize::new(0);

/// The most SSH handshakes this process has had in progress at once.
pub fn handshakes_peak() -> usize {
    HANDSHAKES_PEAK.load(Ordering::Relaxed)
}

/// Counts one handshake while it lives (dropped on error or cancellation too).
struct Handshake;

impl Handshake {
    fn start() -> Handshake {
        let now = HANDSHAKES.fetch_add(1, Ordering::Relaxed) + 1;
        HANDSHAKES_PEAK.fetch_max(now, Ordering::Relaxed);
        Handshake
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        HANDSHAKES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connected host.
#[derive(Clone)]
pub struct SshHost {
    pub target: SshTarget,
    /// `target.sudo` resolved for this connection (see [`SshHost::sudo`]).
    sudo: bool,
    opts: SshOptions,
    /// The master connection, replaced when it dies (see [`SshHost::session`]).
    conn: Arc<tokio::sync::RwLock<Conn>>,
}

struct Conn {
    /// `None` while parked (see [`SshHost::park`]).
    session: Option<Arc<Session>>,
    /// The local end of the Docker socket forward, made once per master
    /// (requesting the same forward again would leave a dead socket path)
    /// and made again, at the same path, over a new master.
    docker_socket: Option<PathBuf>,
    /// The private directory the forward lives in.
    forward_dir: Option<PathBuf>,
}

impl SshHost {
    pub async fn connect(target: &SshTarget, opts: &SshOptions) -> anyhow::Result<SshHost> {
        let session = open(target, opts).await?;
        let sudo = match target.sudo {
            Sudo::Yes => true,
            Sudo::No => false,
            Sudo::Auto => login_needs_sudo(&session, opts.connect_timeout)
                .await
                .with_context(|| {
                    format!(
                        "host {} ({}): cannot tell whether the SSH user is root; set `user` or `sudo` (ansible_user or ansible_become) in the inventory",
                        target.name, target.defined_at
                    )
                })?,
        };
        Ok(SshHost {
            target: target.clone(),
            sudo,
            opts: opts.clone(),
            conn: Arc::new(tokio::sync::RwLock::new(Conn {
                session: Some(Arc::new(session)),
                docker_socket: None,
                forward_dir: None,
            })),
        })
    }

    /// The live master. One that died (a network cut longer than the
    /// keepalives, or `ControlPersist` idle expiry) or was parked is
    /// re-established with the same options, strict host-key checking
    /// included, and the Docker socket forwarded again at the same local
    /// path; a command is only ever sent over a master that answered, so a
    /// failure here means it was not delivered.
    async fn session(&self) -> anyhow::Result<Arc<Session>> {
        let stale = {
            let conn = self.conn.read().await;
            match &conn.session {
                Some(s) if s.check().await.is_ok() => return Ok(s.clone()),
                s => s.clone(),
            }
        };
        let mut conn = self.conn.write().await;
        // Another task may have reconnected meanwhile.
        if let Some(s) = &conn.session
            && !stale.as_ref().is_some_and(|st| Arc::ptr_eq(s, st))
            && s.check().await.is_ok()
        {
            return Ok(s.clone());
        }
        let session = Arc::new(open(&self.target, &self.opts).await.with_context(|| {
            if stale.is_some() {
                format!("host {}: the SSH connection was lost", self.target.name)
            } else {
                format!("host {}: reopening the SSH connection", self.target.name)
            }
        })?);
        conn.session = Some(session.clone());
        if let Some(dir) = conn.forward_dir.clone() {
            conn.docker_socket = Some(self.request_docker_forward(&session, &dir).await?);
        }
        Ok(session)
    }
}

impl SshHost {
    /// Makes sure the master (and so the Docker socket forward) is live,
    /// re-establishing it if it died.
    pub async fn ensure_live(&self) -> anyhow::Result<()> {
        self.session().await.map(|_| ())
    }

    /// Closes the master until the next command reopens it: a controller
    /// that kept one master (an ssh process) per host would grow with the
    /// cluster, so gathering a cluster larger than `--forks` parks each host
    /// once it is read. A master in use by another task is left open.
    pub async fn park(&self) {
        let mut conn = self.conn.write().await;
        if let Some(s) = conn.session.take() {
            match Arc::try_unwrap(s) {
                Ok(s) => {
                    let _ = s.close().await;
                }
                Err(s) => conn.session = Some(s),
            }
        }
    }
}

/// Opens a master connection to `target`. A connection refused before any
/// key exchange (a jump host's sshd dropping a burst beyond its MaxStartups,
/// or restarting) is tried again for up to twice the connect timeout.
async fn open(target: &SshTarget, opts: &SshOptions) -> anyhow::Result<Session> {
    let give_up = std::time::Instant::now() + opts.connect_timeout * 2;
    let mut delay = Duration::from_millis(500);
    let mut asked_jump_host = false;
    loop {
        match open_once(target, opts).await {
            Ok(s) => return Ok(s),
            Err(detail)
                if ssh_errors::refused_before_handshake(&detail)
                    && std::time::Instant::now() + delay < give_up =>
            {
                // A jump host's own failure (its host key, our key) reaches us
                // only as a closed connection: ask it once, directly.
                if !asked_jump_host {
                    asked_jump_host = true;
                    if let Some(e) = jump_host_failure(target, opts).await {
                        return Err(e);
                    }
                }
                tracing::debug!(host = %target.name, "ssh: refused before the handshake, again in {delay:?}: {detail}");
                // Jitter, so that connections refused together do not come back together.
                let jitter = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos() % 250);
                tokio::time::sleep(delay + Duration::from_millis(jitter.into())).await;
                delay = (delay * 2).min(Duration::from_secs(4));
            }
            Err(detail) => return Err(connect_error(target, opts, &detail).await),
        }
    }
}

/// One attempt; the error is ssh's own message (with the crate's).
async fn open_once(target: &SshTarget, opts: &SshOptions) -> Result<Session, String> {
    tracing::debug!(host = %target.name, "ssh: opening a connection");
    let mut b = SessionBuilder::default();
    b.known_hosts_check(if opts.accept_new_host_keys {
        KnownHosts::Add
    } else {
        KnownHosts::Strict
    })
    .control_directory(&opts.runtime_dir)
    // A crashed run must not leave masters behind forever.
    .control_persist(ControlPersist::IdleFor(
        std::num::NonZeroUsize::new(300).expect("non-zero"),
    ))
    .connect_timeout(opts.connect_timeout)
    .server_alive_interval(Duration::from_secs(15));
    if let Some(f) = &opts.config_file {
        b.config_file(f);
    }
    let _handshake = Handshake::start();
    if let Some(u) = &target.user {
        b.user(u.clone());
    }
    if let Some(p) = target.port {
        b.port(p);
    }
    if let Some(k) = &target.identity_file {
        b.keyfile(k);
    }
    if let Some(k) = &target.known_hosts_file {
        b.user_known_hosts_file(k);
    }
    if let Some(j) = &target.jump {
        b.jump_hosts(j.split(',').map(str::trim).filter(|s| !s.is_empty()));
    }
    let session = b.connect_mux(&target.address).await.map_err(|e| {
        // The reason (ssh's own message) is in the error's sources.
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(s.to_string().trim());
            source = s.source();
        }
        detail
    })?;
    if let Ok(mut c) = CONNECTIONS.lock() {
        *c.entry(target.name.clone()).or_default() += 1;
    }
    Ok(session)
}

/// The error for a connection that failed: ssh's message, and what to do.
/// A host key failure on a jump host names the jump host.
async fn connect_error(target: &SshTarget, opts: &SshOptions, detail: &str) -> anyhow::Error {
    let head = format!(
        "cannot connect to host {} ({}, {})",
        target.name,
        target.display(),
        target.defined_at
    );
    if let Some(host) = ssh_errors::host_key_failure_host(detail)
        && let Some((jump, hostname, _)) = resolve_route(target, opts).await
        && !ssh_errors::is_final_host(host, &hostname, &target.address)
    {
        return anyhow!(
            "{head}: the host key of the jump host {jump} ({host}) is unknown or changed, not the key of {}: {detail}\n  check the jump host's key, and fix the known_hosts that ssh uses for {jump} (its UserKnownHostsFile in the ssh config)",
            target.name
        );
    }
    let hint = if detail.contains("Host key verification failed")
        || detail.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
    {
        "\n  the host key is unknown or changed: check it, add it to known_hosts (ssh-keyscan), or pass --accept-new-host-keys to trust a NEW key on first use"
    } else if detail.contains("Permission denied") {
        "\n  authentication failed: check the user and identity_file in the inventory, or your ssh-agent"
    } else {
        ""
    };
    anyhow!("{head}: {detail}{hint}")
}

/// Connects to `target`'s jump host as its ProxyJump does (`ssh -W` to the
/// target, stdin closed, same `-F` file): the error when the jump host itself
/// refuses us for good (its host key, our authentication), naming it.
async fn jump_host_failure(target: &SshTarget, opts: &SshOptions) -> Option<anyhow::Error> {
    let (jump, hostname, port) = resolve_route(target, opts).await?;
    let (earlier, last) = match jump.rsplit_once(',') {
        Some((a, b)) => (Some(a), b),
        None => (None, jump.as_str()),
    };
    let mut c = tokio::process::Command::new("ssh");
    if let Some(f) = &opts.config_file {
        c.arg("-F").arg(f);
    }
    if let Some(j) = earlier {
        c.arg("-J").arg(j);
    }
    c.args(["-o", "BatchMode=yes", "-o"])
        .arg(format!(
            "ConnectTimeout={}",
            opts.connect_timeout.as_secs().max(1)
        ))
        .arg("-W")
        .arg(format!("{hostname}:{port}"))
        .arg("--")
        .arg(last)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(opts.connect_timeout + Duration::from_secs(5), c.output())
        .await
        .ok()?
        .ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let head = format!(
        "cannot connect to host {} ({}, {}) through the jump host {jump}",
        target.name,
        target.display(),
        target.defined_at
    );
    if let Some(host) = ssh_errors::host_key_failure_host(&stderr) {
        return Some(anyhow!(
            "{head}: the host key of the jump host {jump} ({host}) is unknown or changed, not the key of {}: {}\n  check the jump host's key, and fix the known_hosts that ssh uses for {jump} (its UserKnownHostsFile in the ssh config)",
            target.name,
            stderr.trim()
        ));
    }
    if stderr.contains("Permission denied") {
        return Some(anyhow!(
            "{head}: the jump host {jump} refused our authentication: {}\n  check the User and IdentityFile of {jump} in the ssh config (options given for the nodes are not used for their jump host)",
            stderr.trim()
        ));
    }
    None
}

/// (jump host, final hostname, port) of `target` as ssh resolves them
/// (`ssh -G`, ssh config applied); `None` when there is no jump host.
async fn resolve_route(target: &SshTarget, opts: &SshOptions) -> Option<(String, String, String)> {
    let mut c = tokio::process::Command::new("ssh");
    if let Some(f) = &opts.config_file {
        c.arg("-F").arg(f);
    }
    if let Some(j) = &target.jump {
        c.arg("-J").arg(j);
    }
    if let Some(p) = target.port {
        c.arg("-p").arg(p.to_string());
    }
    c.arg("-G").arg("--").arg(&target.address);
    let out = c.output().await.ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let jump = ssh_errors::ssh_g_field(&text, "proxyjump")?;
    let hostname = ssh_errors::ssh_g_field(&text, "hostname")?;
    let port = ssh_errors::ssh_g_field(&text, "port").unwrap_or("22");
    Some((jump.to_string(), hostname.to_string(), port.to_string()))
}

impl SshHost {
    /// Whether privileged commands on this connection run under `sudo -n`.
    pub fn sudo(&self) -> bool {
        self.sudo
    }

    /// Forwards the host's Docker socket to a local socket in `dir`, once;
    /// later calls return the same path. The forward outlives engine restarts
    /// (every API connection opens a new channel to the remote socket).
    /// The directory must be private (0700): the socket is root on that host.
    pub async fn forward_docker_socket(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let session = self.session().await?;
        let mut conn = self.conn.write().await;
        if let Some(path) = &conn.docker_socket {
            return Ok(path.clone());
        }
        tracing::debug!(host = %self.target.name, "ssh: forwarding the Docker socket");
        let path = self.request_docker_forward(&session, dir).await?;
        conn.docker_socket = Some(path.clone());
        conn.forward_dir = Some(dir.to_path_buf());
        Ok(path)
    }

    async fn request_docker_forward(
        &self,
        session: &Session,
        dir: &Path,
    ) -> anyhow::Result<PathBuf> {
        let local = dir.join(format!("{}.docker.sock", sanitize(&self.target.name)));
        // The forward fails if the socket file exists (a previous run's, or
        // the lost master's).
        let _ = std::fs::remove_file(&local);
        session
            .request_port_forward(
                ForwardType::Local,
                Socket::UnixSocket {
                    path: local.clone().into(),
                },
                Socket::UnixSocket {
                    path: Path::new("/var/run/docker.sock").into(),
                },
            )
            .await
            .with_context(|| {
                format!(
                    "host {}: cannot forward /var/run/docker.sock over SSH (sshd must allow AllowStreamLocalForwarding, and {} must be able to use the Docker socket: root or the docker group)",
                    self.target.name,
                    self.target.user.as_deref().unwrap_or("the SSH user")
                )
            })?;
        Ok(local)
    }

    /// Closes the master: explicitly, at the end of the run.
    pub async fn close(self) {
        if let Ok(conn) = Arc::try_unwrap(self.conn)
            && let Some(session) = conn.into_inner().session
            && let Ok(session) = Arc::try_unwrap(session)
        {
            let _ = session.close().await;
        }
    }
}

impl Transport for SshHost {
    /// A command whose master died between its check and the command (a
    /// jump host restarting cuts every master through it) never reached the
    /// host: it is sent once more, over a new master. One whose master died
    /// while it ran may or may not have run to its end: it runs once more
    /// over a new master too, unless it must run at most once (a hook),
    /// which is then reported as cut with its outcome unknown.
    async fn run(&self, cmd: &Cmd) -> anyhow::Result<CmdOutput> {
        let session = self.session().await?;
        let e = match self.run_on(&session, cmd).await {
            Ok(out) if !out_of_a_lost_master(&out) || session.check().await.is_ok() => {
                return Ok(out);
            }
            Ok(out) => anyhow!(
                "exit status {} ({})",
                out.status,
                out.stderr.lines().last().unwrap_or("no output")
            ),
            Err(e) => e,
        };
        let chain = format!("{e:#}");
        let host = &self.target.name;
        let master_lost = session.check().await.is_err();
        match ssh_errors::after_failure(&chain, master_lost, cmd.at_most_once) {
            ssh_errors::Next::Resend => {
                tracing::debug!(host = %host, "ssh: the master was gone before the command reached it, reconnecting: {chain}");
            }
            ssh_errors::Next::RunAgain => {
                tracing::warn!(host = %host, "ssh: the connection was lost while `{}` ran; running it again over a new connection: {chain}", cmd.display());
            }
            ssh_errors::Next::OutcomeUnknown => {
                return Err(e).with_context(|| {
                    format!(
                        "host {host}: the SSH connection was lost while `{}` ran: whether it ran to its end is not known, and it must not run twice",
                        cmd.display()
                    )
                });
            }
            ssh_errors::Next::Fail => return Err(e),
        }
        let session = self.session().await?;
        self.run_on(&session, cmd).await
    }
}

/// What a command cut by its master's death can look like: no exit status
/// (the crate saw no exit), or ssh's own 255.
fn out_of_a_lost_master(out: &CmdOutput) -> bool {
    out.status == -1 || out.status == 255
}

impl SshHost {
    async fn run_on(&self, session: &Session, cmd: &Cmd) -> anyhow::Result<CmdOutput> {
        let argv = argv_for(cmd, self.sudo);
        let (program, args) = argv.split_first().context("empty command")?;
        let mut command = session.command(program.as_str());
        command.args(args.iter().map(String::as_str));
        let host = &self.target.name;
        tracing::debug!(host = %host, timeout = ?cmd.timeout, "run: {}", cmd.for_log());
        let started = std::time::Instant::now();
        let run = async {
            let output = if let Some(input) = &cmd.stdin {
                command
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut child = command.spawn().await?;
                if let Some(mut stdin) = child.stdin().take() {
                    stdin
                        .write_all(input)
                        .await
                        .map_err(openssh::Error::ChildIo)?;
                    stdin.shutdown().await.map_err(openssh::Error::ChildIo)?;
                }
                child.wait_with_output().await?
            } else {
                command.output().await?
            };
            Ok::<_, openssh::Error>(output)
        };
        let output = match tokio::time::timeout(cmd.timeout, run).await {
            Err(_) => bail!(
                "host {host}: `{}` did not finish within {}",
                cmd.display(),
                humantime::format_duration(cmd.timeout)
            ),
            // The crate reports "command not found" (exit 127) as an error.
            Ok(Err(openssh::Error::Remote(e))) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CmdOutput {
                    status: 127,
                    stdout: String::new(),
                    stderr: format!("{}: command not found", argv[0]),
                });
            }
            Ok(Err(e)) => {
                return Err(anyhow!(e))
                    .with_context(|| format!("host {host}: running `{}`", cmd.display()));
            }
            Ok(Ok(o)) => o,
        };
        // Sizes only: command output may hold what the log must not (keys,
        // tokens); errors carry the output that matters.
        tracing::debug!(
            host = %host,
            status = output.status.code().unwrap_or(-1),
            elapsed_ms = started.elapsed().as_millis() as u64,
            stdout_bytes = output.stdout.len(),
            stderr_bytes = output.stderr.len(),
            "exited: {}",
            cmd.display()
        );
        Ok(CmdOutput {
            // No status: killed by a signal (the crate cannot tell which).
            status: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// For [`Sudo::Auto`]: asks the host who the SSH login is, since only the
/// host knows what `~/.ssh/config` or the local account made it.
async fn login_needs_sudo(session: &Session, timeout: Duration) -> anyhow::Result<bool> {
    let out = tokio::time::timeout(timeout, session.command("id").arg("-u").output())
        .await
        .map_err(|_| {
            anyhow!(
                "`id -u` did not answer within {}",
                humantime::format_duration(timeout)
            )
        })??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match sudo_for_uid(&stdout) {
        Some(sudo) if out.status.success() => Ok(sudo),
        _ => bail!(
            "`id -u` printed `{}` ({})",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// What the output of `id -u` means for sudo: root (uid 0) needs none,
/// every other user does; `None` when it is not a uid.
fn sudo_for_uid(id_u: &str) -> Option<bool> {
    id_u.trim().parse::<u32>().ok().map(|uid| uid != 0)
}

/// The argument vector actually sent: `sudo -n --` in front of privileged
/// commands when the host needs sudo.
pub fn argv_for(cmd: &Cmd, sudo: bool) -> Vec<String> {
    if cmd.privileged && sudo {
        let mut v = vec!["sudo".to_string(), "-n".to_string(), "--".to_string()];
        v.extend(cmd.argv.iter().cloned());
        v
    } else {
        cmd.argv.clone()
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A private (0700) runtime directory short enough for socket paths (108 bytes).
pub fn runtime_dir() -> anyhow::Result<tempfile::TempDir> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir() && p.as_os_str().len() < 40)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("swup-")
        .tempdir_in(base)
        .context("creating a private runtime directory")?;
    // Set, not assumed: the forwarded Docker sockets in it are root on the
    // hosts, and what mode a new directory gets depends on the library.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .context("making the runtime directory private")?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileged_commands_get_non_interactive_sudo() {
        let cmd = Cmd::new(["apt-mark", "hold", "docker.io"]).privileged();
        assert_eq!(
            argv_for(&cmd, true),
            ["sudo", "-n", "--", "apt-mark", "hold", "docker.io"]
        );
        assert_eq!(argv_for(&cmd, false), ["apt-mark", "hold", "docker.io"]);
        let plain = Cmd::new(["uname", "-m"]);
        assert_eq!(argv_for(&plain, true), ["uname", "-m"]);
    }

    #[test]
    fn auto_sudo_is_decided_by_the_login_uid() {
        assert_eq!(sudo_for_uid("0\n"), Some(false));
        assert_eq!(sudo_for_uid("1000\n"), Some(true));
        assert_eq!(sudo_for_uid(" 65534 "), Some(true));
        assert_eq!(sudo_for_uid(""), None);
        assert_eq!(sudo_for_uid("uid=0(root)"), None);
        assert_eq!(sudo_for_uid("-1"), None);
    }

    #[test]
    fn display_quotes_every_argument() {
        let cmd = Cmd::new(["apt-get", "install", "docker.io=1; rm -rf /"]).privileged();
        assert_eq!(
            cmd.display(),
            "sudo -n -- apt-get install 'docker.io=1; rm -rf /'"
        );
    }

    #[test]
    fn the_log_names_stdin_but_never_shows_it() {
        let cmd = Cmd::new(["docker", "swarm", "unlock"])
            .privileged()
            .stdin("the swarm unlock key", b"SWMKEY-1-secret\n".to_vec());
        let line = cmd.for_log();
        assert_eq!(
            line,
            "sudo -n -- docker swarm unlock  (stdin: the swarm unlock key)"
        );
        assert!(!line.contains("SWMKEY"));
    }

    #[test]
    fn handshakes_in_progress_are_counted_until_they_end() {
        let a = Handshake::start();
        let b = Handshake::start();
        assert!(handshakes_peak() >= 2);
        drop((a, b));
        // Ended handshakes no longer count: two more reach the same peak.
        let peak = handshakes_peak();
        let c = Handshake::start();
        let d = Handshake::start();
        assert_eq!(handshakes_peak(), peak);
        drop((c, d));
    }

    #[test]
    fn runtime_dir_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = runtime_dir().unwrap();
        let mode = std::fs::metadata(d.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(d.path().as_os_str().len() < 60);
    }
}
