//! How a failed command is reported: a plain `error:` line on stderr, and,
//! under `--output json`, one JSON object on stdout, so that a script reading
//! stdout gets JSON and nothing else, whatever happened.

use serde::Serialize;

use crate::error::Error;
use crate::exit_code;

/// Bumped when a field of the JSON documents (plan, status, check, errors)
/// changes meaning or disappears; new fields do not bump it.
pub const FORMAT_VERSION: u32 = 1;

/// A failure as scripts read it.
#[derive(Debug, Serialize)]
pub struct ErrorReport {
    /// Stable name of the failure's category (`usage`, `blocked`, ...).
    pub code: &'static str,
    pub exit_code: u8,
    /// The whole message, causes included.
    pub message: String,
    /// What to do next.
    pub hint: &'static str,
}

impl ErrorReport {
    pub fn of(err: &anyhow::Error) -> ErrorReport {
        let kind = err.chain().find_map(|e| e.downcast_ref::<Error>());
        let (code, hint) = match kind {
            Some(Error::Usage(_)) => (
                "usage",
                "nothing was changed; fix the input named in the message (see `swarm-upgrade help COMMAND`)",
            ),
            Some(Error::Blocked(_)) => (
                "blocked",
                "nothing was changed; fix the findings (`swarm-upgrade check --explain ID` describes a hazard), or waive one with --ignore-check ID if you accept the risk",
            ),
            Some(Error::RolledBack(_)) => (
                "rolled_back",
                "a node failed and was rolled back; fix the cause shown, then `swarm-upgrade resume` (or `resume --skip-node NAME` to finish without it)",
            ),
            Some(Error::RollbackFailed(_)) => (
                "rollback_failed",
                "a rollback failed: follow the manual steps in the message before anything else",
            ),
            Some(Error::StoppedSafely(_)) => (
                "stopped_safely",
                "every node is safe; fix the cause in the message, then `swarm-upgrade resume` from this or any machine",
            ),
            Some(Error::Locked(_)) => (
                "locked",
                "another run holds the lock; wait for it, or `swarm-upgrade status --inventory FILE` shows who holds it",
            ),
            Some(Error::Interrupted(_)) => (
                "interrupted",
                "stopped on request at a safe point; `swarm-upgrade resume` continues",
            ),
            None => (
                "failure",
                "an unexpected failure; rerun with -vv --log-file FILE and report it with that file",
            ),
        };
        ErrorReport {
            code,
            exit_code: kind.map_or(exit_code::FAILURE, Error::exit_code),
            message: format!("{err:#}"),
            hint,
        }
    }
}

/// Prints `err`: always on stderr, and as one JSON line on stdout when `json`.
pub fn print_error(err: &anyhow::Error, json: bool) {
    eprintln!("error: {err:#}");
    if json && let Ok(line) = serde_json::to_string(&ErrorReport::of(err)) {
        println!("{line}");
    }
}

/// Whether the arguments ask for `--output json`, read before clap parses
/// them, so that even a command line clap refuses is reported in JSON.
pub fn json_requested<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> bool {
    let args: Vec<&str> = args.iter().filter_map(|a| a.as_ref().to_str()).collect();
    args.iter().enumerate().any(|(i, a)| {
        matches!(*a, "--output=json" | "-ojson" | "-o=json")
            || (matches!(*a, "--output" | "-o") && args.get(i + 1) == Some(&"json"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_seen_in_every_spelling() {
        for args in [
            &["x", "plan", "--output", "json"][..],
            &["x", "plan", "--output=json"],
            &["x", "plan", "-o", "json"],
            &["x", "plan", "-ojson"],
        ] {
            assert!(json_requested(args), "{args:?}");
        }
        assert!(!json_requested(&["x", "plan", "-o", "table"]));
        assert!(!json_requested(&["x", "plan", "--out", "json"]));
    }

    #[test]
    fn errors_keep_their_category() {
        let e = anyhow::Error::from(Error::Usage("bad".into())).context("reading x");
        let r = ErrorReport::of(&e);
        assert_eq!((r.code, r.exit_code), ("usage", 2));
        assert_eq!(r.message, "reading x: bad");
        let r = ErrorReport::of(&anyhow::anyhow!("boom"));
        assert_eq!((r.code, r.exit_code), ("failure", 1));
    }
}
