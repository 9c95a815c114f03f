//! Stopping a run on request: Ctrl-C (SIGINT), SIGTERM (a CI job cancelled,
//! `systemctl stop`, `kill`) and SIGHUP (the terminal closed) all mean the
//! same. The first finishes the current step and stops at a safe point; a
//! second one of any of them exits at once (the interrupted step runs again
//! on `resume`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::exec::events::Event;
use crate::exit_code;

/// The signals that ask a run to stop.
pub struct StopSignals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl StopSignals {
    /// Takes the signals over from now on: from here, none of them kills the
    /// process outright (within a tokio runtime).
    pub fn register() -> anyhow::Result<StopSignals> {
        let take = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("cannot handle {name}"))
        };
        Ok(StopSignals {
            int: take(SignalKind::interrupt(), "SIGINT")?,
            term: take(SignalKind::terminate(), "SIGTERM")?,
            hup: take(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// The name of the next signal received.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }

    /// The first signal sets `stop`; the second exits now.
    pub async fn stop_run(mut self, stop: Arc<AtomicBool>) {
        let first = self.next().await;
        stop.store(true, Ordering::SeqCst);
        tracing::debug!(signal = first, "stop requested");
        eprintln!("{first}: {}", crate::ui::line(&Event::StopRequested));
        let second = self.next().await;
        eprintln!("{second}: aborted: the interrupted step runs again on `swarm-upgrade resume`");
        std::process::exit(i32::from(exit_code::INTERRUPTED));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real signal to this process, as `kill` sends it.
    fn send(sig: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{sig}"), std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[tokio::test]
    async fn sigterm_and_sighup_stop_the_run_like_ctrl_c() {
        let mut signals = StopSignals::register().unwrap();
        send("TERM");
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), signals.next())
            .await
            .expect("SIGTERM seen");
        assert_eq!(got, "SIGTERM");
        send("HUP");
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), signals.next())
            .await
            .expect("SIGHUP seen");
        assert_eq!(got, "SIGHUP");
    }
}
