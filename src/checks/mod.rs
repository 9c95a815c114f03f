//! Preflight checks: small pure functions from facts to findings.
//!
//! Each check lives in its own module, has a stable id that operators can
//! waive with `--ignore-check ID`, and returns findings whose messages name
//! the node, service or network, the numbers, and the remedy.

pub mod finding;

use std::collections::BTreeMap;

pub use finding::{Finding, Severity};

use crate::facts::model::Facts;
use crate::version::EngineVersion;
use crate::version::resolve::{ResolveError, Resolution};

/// What every check may read.
pub struct CheckContext<'a> {
    pub facts: &'a Facts,
    pub pin: &'a EngineVersion,
    /// Per swarm node ID: the resolved package set, or why it cannot be resolved.
    pub resolutions: &'a BTreeMap<String, Result<Resolution, ResolveError>>,
    pub max_parallel: usize,
}

/// One preflight check.
pub trait Check: Sync {
    /// Stable id, kebab-case (`quorum-budget`).
    fn id(&self) -> &'static str;
    /// One line: what the check protects against.
    fn describe(&self) -> &'static str;
    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding>;
}

/// Every check, in the order their findings are shown.
pub fn all() -> Vec<&'static dyn Check> {
    vec![]
}

/// Runs every check; findings come out blockers first, then by check order.
pub fn run_all(ctx: &CheckContext<'_>) -> Vec<Finding> {
    let mut findings: Vec<Finding> = all().iter().flat_map(|c| c.run(ctx)).collect();
    findings.sort_by(|a, b| b.severity.cmp(&a.severity));
    findings
}
