//! Running commands on hosts.
//!
//! A command is an argument vector, never a shell string: the transport
//! escapes every argument, so a hostname or a version string cannot inject
//! shell. Scripts that need a shell are passed as one argument to `sh -c`.

pub(crate) mod local;
pub(crate) mod ssh;
mod ssh_errors;

pub use ssh::{connections_made, handshakes_peak};

use std::future::Future;
use std::time::Duration;

/// One remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub argv: Vec<String>,
    /// Needs root: wrapped in `sudo -n --` when the host's user is not root.
    pub privileged: bool,
    pub timeout: Duration,
    /// Bytes for the command's stdin (secrets go here, never in `argv`).
    pub stdin: Option<Vec<u8>>,
    /// What the stdin bytes are, shown instead of them (dry run, logs).
    pub stdin_is: Option<&'static str>,
    /// Must not run twice (an operator's hook): when the connection is lost
    /// while it runs, its outcome is reported as unknown instead of running
    /// it again. Every command swarm-upgrade writes itself can run again
    /// (the playbooks' scripts wait for a package run left behind, writes
    /// are idempotent), so this is the exception.
    pub at_most_once: bool,
    /// Leaves the host's engine running as it was (a probe, a backup): the
    /// API connections kept to it stay usable. Otherwise the next request
    /// connects afresh, as after a restart.
    pub keeps_engine: bool,
}

impl Cmd {
    pub fn new<I, S>(argv: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            argv: argv.into_iter().map(Into::into).collect(),
            privileged: false,
            timeout: Duration::from_secs(60),
            stdin: None,
            stdin_is: None,
            at_most_once: false,
            keeps_engine: false,
        }
    }

    /// `sh -c SCRIPT` (the script is one argument, escaped as a whole).
    pub fn script(script: impl Into<String>) -> Cmd {
        Cmd::new(["sh".to_string(), "-c".to_string(), script.into()])
    }

    pub fn privileged(mut self) -> Cmd {
        self.privileged = true;
        self
    }

    pub fn timeout(mut self, t: Duration) -> Cmd {
        self.timeout = t;
        self
    }

    /// See [`Cmd::keeps_engine`](Cmd#structfield.keeps_engine).
    pub fn keeps_engine(mut self) -> Cmd {
        self.keeps_engine = true;
        self
    }

    /// See [`Cmd::at_most_once`](Cmd#structfield.at_most_once).
    pub fn at_most_once(mut self) -> Cmd {
        self.at_most_once = true;
        self
    }

    /// Feeds `bytes` (`what` they are, for anything that shows the command)
    /// to the command's stdin.
    pub fn stdin(mut self, what: &'static str, bytes: Vec<u8>) -> Cmd {
        self.stdin = Some(bytes);
        self.stdin_is = Some(what);
        self
    }

    /// The command for the debug log: as a shell would read it, and what
    /// its stdin is, never the stdin's bytes (the unlock key goes there).
    pub fn for_log(&self) -> String {
        match self.stdin_is {
            Some(what) => format!("{}  (stdin: {what})", self.display()),
            None => self.display(),
        }
    }

    /// The command as a shell would read it, for `--dry-run` and logs.
    pub fn display(&self) -> String {
        let joined = shlex::try_join(self.argv.iter().map(String::as_str))
            .unwrap_or_else(|_| self.argv.join(" "));
        if self.privileged {
            format!("sudo -n -- {joined}")
        } else {
            joined
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CmdOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// Runs commands on one host.
pub trait Transport: Send + Sync {
    /// Runs `cmd`; a non-zero exit is an `Ok` with that status, a transport
    /// failure or a timeout is an `Err` naming the host and the command.
    fn run(&self, cmd: &Cmd) -> impl Future<Output = anyhow::Result<CmdOutput>> + Send;
}
