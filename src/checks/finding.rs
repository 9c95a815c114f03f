//! A finding: one thing a check saw, with its severity and its remedy.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Shown, changes nothing.
    Info,
    /// Shown and recorded; the upgrade may go on.
    Warn,
    /// The upgrade must not start (unless the check is waived by id).
    Block,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Block => "BLOCK",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The stable id of the check that produced it (`quorum-budget`, ...).
    pub id: String,
    pub severity: Severity,
    /// The node (hostname) it is about, if it is about one.
    pub node: Option<String>,
    /// What was seen, with the numbers, and what to do about it.
    pub message: String,
}

impl Finding {
    pub fn new(
        id: &str,
        severity: Severity,
        node: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            id: id.to_string(),
            severity,
            node: node.map(str::to_string),
            message: message.into(),
        }
    }
    pub fn block(id: &str, node: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(id, Severity::Block, node, message)
    }
    pub fn warn(id: &str, node: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(id, Severity::Warn, node, message)
    }
    pub fn info(id: &str, node: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(id, Severity::Info, node, message)
    }
}
