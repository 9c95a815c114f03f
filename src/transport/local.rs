//! Running a command on the controller (operator hooks): a child process
//! with the same argument vector a host would get, no shell around it.

use std::process::Stdio;

use anyhow::Context;

use super::{Cmd, CmdOutput};

/// The exit status reported for a command killed at its timeout (as
/// coreutils' `timeout` reports it).
pub const TIMED_OUT: i32 = 124;

/// Runs `cmd` locally; at its timeout the child is killed and the output so
/// far is lost (the status says why). `Err` only when it cannot start.
pub async fn run(cmd: &Cmd) -> anyhow::Result<CmdOutput> {
    let (program, args) = cmd.argv.split_first().context("an empty local command")?;
    tracing::debug!(cmd = %cmd.for_log(), "local command");
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {program:?} on the controller"))?;
    match tokio::time::timeout(cmd.timeout, child.wait_with_output()).await {
        Ok(out) => {
            let out = out.with_context(|| format!("waiting for {program:?}"))?;
            Ok(CmdOutput {
                // Killed by a signal: no code, reported as the shell would.
                status: out.status.code().unwrap_or(128),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
        // Dropping the child's future kills it (kill_on_drop).
        Err(_) => Ok(CmdOutput {
            status: TIMED_OUT,
            stdout: String::new(),
            stderr: format!(
                "killed after its timeout of {}",
                humantime::format_duration(cmd.timeout)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn runs_with_its_environment_and_reports_the_status() {
        let out = run(&Cmd::new([
            "env",
            "SU_NODE=a b",
            "sh",
            "-c",
            "echo \"$SU_NODE\"; exit 3",
        ]))
        .await
        .unwrap();
        assert_eq!(out.status, 3);
        assert_eq!(out.stdout, "a b\n");
    }

    #[tokio::test]
    async fn a_timeout_kills_it() {
        let t = std::time::Instant::now();
        let out = run(&Cmd::new(["sleep", "30"]).timeout(Duration::from_millis(200)))
            .await
            .unwrap();
        assert_eq!(out.status, TIMED_OUT);
        assert!(out.stderr.contains("timeout"), "{}", out.stderr);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
