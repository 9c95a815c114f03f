//! Running external programs (docker, ssh, apt, debootstrap) with useful errors.
//!
//! testkit drives everything through CLIs on purpose: the same commands a human would type
//! when debugging the lab by hand. This module adds what `std::process::Command` lacks for
//! that: a printable command line, errors that carry the command's stderr, and timeouts (a
//! `docker exec` against a manager without quorum can hang for a long time).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::paths;

/// A command line plus the options testkit needs around it.
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

/// A docker CLI call against testkit's private daemon (never the system one).
pub fn docker() -> Cmd {
    // By full path: the installed client of the engine the daemon runs (see
    // `engine`), not whatever PATH puts first.
    let mut cmd = Cmd::new(crate::engine::client());
    cmd.arg("-H")
        .arg(format!("unix://{}", paths::daemon_socket().display()));
    cmd
}

fn verbose() -> bool {
    std::env::var_os("TESTKIT_VERBOSE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Quote a word for display (and for remote shells, see `shell_quote`).
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%^".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            stdin: None,
            timeout: None,
        }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Bytes to feed on stdin (otherwise stdin is /dev/null: nothing may wait on a terminal).
    pub fn stdin(&mut self, bytes: Vec<u8>) -> &mut Self {
        self.stdin = Some(bytes);
        self
    }

    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// The command line, shell-quoted, for messages.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    /// Run to completion and return its output whatever the exit status. Errors only when the
    /// program cannot be started or the timeout expires (the process is then killed).
    pub fn output(&self) -> Result<Output> {
        if verbose() {
            eprintln!("+ {}", self.display());
        }
        let mut cmd = self.command();
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.display()))?;

        // Feed stdin and drain both pipes on threads so that no pipe buffer can deadlock us.
        let writer = self.stdin.clone().map(|bytes| {
            let mut pipe = child.stdin.take().expect("stdin was piped");
            thread::spawn(move || {
                // A program may legitimately exit without reading all input.
                let _ = pipe.write_all(&bytes);
            })
        });
        let stdout = drain(child.stdout.take().expect("stdout was piped"));
        let stderr = drain(child.stderr.take().expect("stderr was piped"));

        let status = wait_with_timeout(&mut child, self.timeout)
            .with_context(|| format!("`{}`", self.display()))?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        Ok(Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }

    /// Run and require success; returns stdout. The error names the command and carries the
    /// tail of its stderr, which is usually the only useful part.
    pub fn run(&self) -> Result<String> {
        let out = self.output()?;
        if !out.status.success() {
            bail!("{}", failure_message(&self.display(), &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Run and report only whether it succeeded (for probes like "does this image exist").
    pub fn succeeds(&self) -> bool {
        self.output().is_ok_and(|o| o.status.success())
    }

    /// Run with stdout and stderr appended to a log file (long builds), requiring success.
    /// On failure the error shows the end of the log.
    pub fn run_logged(&self, log: &Path) -> Result<()> {
        if verbose() {
            eprintln!("+ {}  (log: {})", self.display(), log.display());
        }
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open log {}", log.display()))?;
        let mut cmd = self.command();
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.display()))?;
        let status = wait_with_timeout(&mut child, self.timeout)
            .with_context(|| format!("`{}`", self.display()))?;
        if !status.success() {
            bail!(
                "`{}` failed ({status}); last lines of {}:\n{}",
                self.display(),
                log.display(),
                tail_of_file(log, 40)
            );
        }
        Ok(())
    }

    /// Run with the terminal attached (interactive pass-through, e.g. `testkit ssh`).
    pub fn run_inherit(&self) -> Result<ExitStatus> {
        if verbose() {
            eprintln!("+ {}", self.display());
        }
        self.command()
            .status()
            .with_context(|| format!("cannot start `{}`", self.display()))
    }
}

fn drain<R: Read + Send + 'static>(mut pipe: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

fn wait_with_timeout(child: &mut Child, timeout: Option<Duration>) -> Result<ExitStatus> {
    let Some(timeout) = timeout else {
        return Ok(child.wait()?);
    };
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {}", humantime::format_duration(timeout));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// "`cmd` failed (exit status: 1): <last stderr lines>".
pub fn failure_message(display: &str, out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Some tools (apt, docker swarm) explain failures on stdout.
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    format!(
        "`{display}` failed ({}): {}",
        out.status,
        tail(text.trim(), 20)
    )
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn tail_of_file(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => tail(&String::from_utf8_lossy(&bytes), lines),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Poll `check` until it returns `Ok(Some(_))` or the timeout expires. `check` returning
/// `Ok(None)` or `Err` means "not yet"; the last error is reported on timeout so that a
/// failing wait says *why* it was still waiting.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last: Option<String> = None;
    loop {
        match check() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last = Some(format!("{e:#}")),
        }
        if Instant::now() >= deadline {
            match last {
                Some(e) => bail!(
                    "timed out after {} waiting for {what}; last error: {e}",
                    humantime::format_duration(timeout)
                ),
                None => bail!(
                    "timed out after {} waiting for {what}",
                    humantime::format_duration(timeout)
                ),
            }
        }
        thread::sleep(interval);
    }
}

/// Whole seconds with one decimal, for progress lines ("done in 12.3 s").
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Human-readable byte size.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_protects_the_rest() {
        assert_eq!(
            shell_quote("docker.io=26.1.5+dfsg1-9"),
            "docker.io=26.1.5+dfsg1-9"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("{{.Task.Slot}}"), "'{{.Task.Slot}}'");
    }

    #[test]
    fn byte_sizes_are_readable() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn timeouts_kill_the_process() {
        let err = Cmd::new("sleep")
            .arg("5")
            .timeout(Duration::from_millis(200))
            .output()
            .unwrap_err();
        assert!(format!("{err:#}").contains("timed out"), "{err:#}");
    }

    #[test]
    fn failures_carry_stderr() {
        let err = Cmd::new("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .run()
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("boom") && msg.contains('3'), "{msg}");
    }

    #[test]
    fn stdin_is_fed() {
        let out = Cmd::new("cat").stdin(b"hello".to_vec()).run().unwrap();
        assert_eq!(out, "hello");
    }
}
