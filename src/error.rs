//! The error type whose variants decide the process exit code.
//!
//! Modules return `anyhow::Result` with context; an `Error` anywhere in the
//! chain selects the exit code (see [`exit_code_of`]). Anything else is 1.

use crate::exit_code;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input (file, line, field and fix in the message). Exit 2.
    #[error("{0}")]
    Usage(String),
    /// A check blocks the upgrade; the findings were already printed. Exit 3.
    #[error("{0}")]
    Blocked(String),
    /// A node failed and was rolled back. Exit 4.
    #[error("{0}")]
    RolledBack(String),
    /// Rollback failed; manual steps in the message. Exit 5.
    #[error("{0}")]
    RollbackFailed(String),
    /// Stopped with every node safe and the run resumable (not delivered,
    /// precondition, lease lost). Exit 6.
    #[error("{0}")]
    StoppedSafely(String),
    /// Another run holds the lock. Exit 75.
    #[error("{0}")]
    Locked(String),
    /// Stopped on request after the current step. Exit 130.
    #[error("{0}")]
    Interrupted(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit_code::USAGE,
            Error::Blocked(_) => exit_code::BLOCKED,
            Error::RolledBack(_) => exit_code::ROLLED_BACK,
            Error::RollbackFailed(_) => exit_code::ROLLBACK_FAILED,
            Error::StoppedSafely(_) => exit_code::STOPPED_SAFELY,
            Error::Locked(_) => exit_code::LOCKED,
            Error::Interrupted(_) => exit_code::INTERRUPTED,
        }
    }
}

/// The exit code for an error chain: the first [`Error`] found in it, else 1.
pub fn exit_code_of(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| e.downcast_ref::<Error>())
        .map_or(exit_code::FAILURE, Error::exit_code)
}

/// Shorthand for a usage error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    Error::Usage(msg.into()).into()
}
