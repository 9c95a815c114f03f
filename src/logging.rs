//! The debug log (`tracing`): with `-v` on stderr (`-v` debug: every remote
//! command and Engine API call; `-vv` trace), and with `--log-file` as JSON
//! lines in a file, at debug level (trace with `-vv`) whatever `-v` says.
//!
//! Nothing secret is ever logged: a command's stdin (where the unlock key
//! goes) is logged as what it is (`stdin: the swarm unlock key`), never as its
//! bytes, and command output is logged by size only.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::error::usage;

/// Only this crate's events: its dependencies' would drown the log.
fn ours(level: LevelFilter) -> Targets {
    Targets::new().with_target("swarm_upgrade", level)
}

/// Installs the log for the process.
pub fn init(verbose: u8, quiet: bool, file: Option<&Path>) -> anyhow::Result<()> {
    let stderr_level = match (quiet, verbose) {
        (true, _) | (false, 0) => LevelFilter::OFF,
        (false, 1) => LevelFilter::DEBUG,
        (false, _) => LevelFilter::TRACE,
    };
    let stderr = (stderr_level != LevelFilter::OFF).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(ours(stderr_level))
    });
    let file = match file {
        Some(path) => {
            // The log names hosts, users and commands: private, like the state files.
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| usage(format!("{}: cannot open the log file: {e}", path.display())))?;
            let level = if verbose >= 2 {
                LevelFilter::TRACE
            } else {
                LevelFilter::DEBUG
            };
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(Mutex::new(f))
                    .with_filter(ours(level)),
            )
        }
        None => None,
    };
    // A second init (tests calling `run` twice in one process) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
    Ok(())
}
