//! Engine-version hazards as data: `hazards/*.yaml`.
//!
//! Every Docker release brings its own traps (an option it removed, a
//! regression fixed a week later, a change that breaks a rollback). They
//! change with every release, so they live in reviewed YAML, like the
//! playbooks, not in Rust: each hazard says which versions it applies to,
//! what in the facts reveals it (a small declarative vocabulary, see
//! [`detect`]), how bad it is, what to do, and where it was confirmed. The
//! shipped files are compiled in; `--hazards FILE_OR_DIR` adds hazards or
//! replaces the one of the same id.
//!
//! The catalogue is passed explicitly (in `PlanRequest` and the launch
//! options); nothing here is global.

pub mod detect;
mod load;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checks::Severity;
use crate::version::EngineVersion;
use detect::Detect;
pub use detect::evaluate;

/// One hazard, as written in `hazards/*.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Hazard {
    /// Stable id, waivable with `--ignore-check ID` (`removed-graph-23.0`).
    pub id: String,
    /// One line: what the hazard is.
    pub title: String,
    /// The versions it applies to; empty: every version.
    #[serde(default)]
    pub applies: Applies,
    /// What in the facts reveals it; empty: the versions alone.
    #[serde(default)]
    pub detect: Detect,
    pub severity: Severity,
    /// What happens if the upgrade goes ahead.
    pub effect: String,
    /// What the operator does about it.
    pub remedy: String,
    /// Where it was confirmed (release notes, issue): an https URL.
    pub source: String,
}

/// Versions, per node: `current` is the node's engine, `target` the pin.
/// Every field given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Applies {
    /// The node goes from one side of this release to the other, in either
    /// direction (so the automatic rollback of a failed node, and
    /// `swarm-upgrade rollback`, are covered too): min < X ≤ max.
    #[serde(default)]
    pub crossing: Option<EngineVersion>,
    /// A requirement on the pin, with explicit operators: `=28.0.0`,
    /// `>=28.2.0, <28.3.0`.
    #[serde(default)]
    pub target: Option<semver::VersionReq>,
    /// A requirement on the node's current engine.
    #[serde(default)]
    pub current: Option<semver::VersionReq>,
}

impl Applies {
    /// Whether a node at `current` (unknown: `None`) going to `target` is
    /// concerned. An unreadable current version is taken as concerned:
    /// a hazard is better shown once too often than missed.
    pub fn matches(&self, current: Option<&EngineVersion>, target: &EngineVersion) -> bool {
        let crossing = self.crossing.as_ref().is_none_or(|x| match current {
            Some(c) => c.min(target) < x && x <= c.max(target),
            None => x <= target,
        });
        let target_ok = self.target.as_ref().is_none_or(|r| r.matches(&target.0));
        let current_ok = self
            .current
            .as_ref()
            .is_none_or(|r| current.is_none_or(|c| r.matches(&c.0)));
        crossing && target_ok && current_ok
    }

    /// `crossing 26.0.0`, `target =28.0.0`, ... for `--explain`.
    fn describe(&self) -> String {
        let mut parts = vec![];
        if let Some(x) = &self.crossing {
            parts.push(format!(
                "upgrades or rollbacks crossing {x} (current < {x} <= target, or the reverse)"
            ));
        }
        if let Some(r) = &self.target {
            parts.push(format!("target {r}"));
        }
        if let Some(r) = &self.current {
            parts.push(format!("current {r}"));
        }
        if parts.is_empty() {
            "every version".to_string()
        } else {
            parts.join(", and ")
        }
    }
}

/// The hazards in use: the built-in ones, then the operator's files.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    by_id: BTreeMap<String, Hazard>,
}

impl Catalogue {
    /// The built-in hazards, then each `--hazards` file or directory: a
    /// hazard with a known id replaces it, a new id is added. Bad files are
    /// usage errors naming the file, the line and the field.
    pub fn load(extra: &[impl AsRef<std::path::Path>]) -> anyhow::Result<Catalogue> {
        load::load(extra)
    }

    /// Only the built-in hazards (tests, the benchmark).
    pub fn builtin() -> Catalogue {
        load::load(&[] as &[&str]).expect("the built-in hazards are valid")
    }

    pub fn get(&self, id: &str) -> Option<&Hazard> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Hazard> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// `check --explain ID`: the hazard, its versions, detection, remedy and
    /// source, as text.
    pub fn explain(&self, id: &str) -> Option<String> {
        let h = self.get(id)?;
        Some(format!(
            "{id}: {title}\n\
             severity:  {severity}\n\
             applies:   {applies}\n\
             detected:  {detect}\n\
             effect:    {effect}\n\
             remedy:    {remedy}\n\
             source:    {source}\n",
            id = h.id,
            title = h.title,
            severity = h.severity.label(),
            applies = h.applies.describe(),
            detect = h.detect.describe(),
            effect = h.effect,
            remedy = h.remedy,
            source = h.source,
        ))
    }
}

#[cfg(test)]
mod tests;
