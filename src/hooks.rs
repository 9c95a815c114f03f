//! Operator hooks: commands run at fixed points of each node's upgrade (or
//! restart), on the controller or on the node's host, each blocking with a
//! timeout.
//!
//! Declared under a top-level `hooks:` key, in swarm-upgrade's YAML
//! inventory or in a file given with `--hooks` (same schema):
//!
//! ```yaml
//! hooks:
//!   - at: pre-drain            # pre-drain, post-stop, post-install, post-verify, pre-restore
//!     run: host                # host (over the node's SSH connection) or controller
//!     command: "/usr/local/bin/lb-remove \"$SU_NODE\""
//!     timeout: 60s             # default 60s
//!     nodes: [wrk-1, wrk-2]    # optional: only these swarm hostnames
//!     role: worker             # optional: only managers or only workers
//! ```
//!
//! A hook that fails (non-zero exit, or its timeout) before the node's
//! engine is stopped (`pre-drain`) stops the run with the node untouched;
//! after (`post-stop`, `post-install`, `post-verify`, `pre-restore`) it
//! rolls the node back. Hooks are plan steps: they are checkpointed,
//! resumed (run again: a hook must be idempotent), journaled and shown by
//! `plan` and `--dry-run`.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::error::usage;
use crate::facts::model::Role;

/// Where in a node's steps a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookPoint {
    /// Before the node is drained (nothing done to it yet).
    PreDrain,
    /// After its engine stopped.
    PostStop,
    /// After the new engine is installed (upgrades only).
    PostInstall,
    /// After its engine verified.
    PostVerify,
    /// Before its availability is given back.
    PreRestore,
}

pub const POINTS: [HookPoint; 5] = [
    HookPoint::PreDrain,
    HookPoint::PostStop,
    HookPoint::PostInstall,
    HookPoint::PostVerify,
    HookPoint::PreRestore,
];

impl HookPoint {
    pub fn name(self) -> &'static str {
        match self {
            HookPoint::PreDrain => "pre-drain",
            HookPoint::PostStop => "post-stop",
            HookPoint::PostInstall => "post-install",
            HookPoint::PostVerify => "post-verify",
            HookPoint::PreRestore => "pre-restore",
        }
    }

    /// Whether a failure leaves the node as it was: nothing was done to it
    /// yet, so the run stops (resumable) instead of rolling it back.
    pub fn before_changes(self) -> bool {
        self == HookPoint::PreDrain
    }
}

/// Where a hook's command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookRun {
    /// A local process on the machine running swarm-upgrade.
    Controller,
    /// On the node's host, over its SSH connection (`sh -c`, not privileged).
    Host,
}

/// One hook, as the plan carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub at: HookPoint,
    pub run: HookRun,
    /// A shell command (`sh -c`), with the `SU_*` variables set.
    pub command: String,
    pub timeout_secs: u64,
    /// Swarm hostnames it applies to (empty: every node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// `file:line` it was declared at, for messages (not saved with a plan).
    #[serde(skip)]
    pub defined_at: String,
}

impl Hook {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Whether it runs for a node.
    pub fn applies(&self, at: HookPoint, name: &str, role: Role) -> bool {
        self.at == at
            && (self.nodes.is_empty() || self.nodes.iter().any(|n| n == name))
            && self.role.is_none_or(|r| r == role)
    }
}

#[derive(Debug, Deserialize)]
struct HooksFile {
    #[serde(default)]
    hooks: Vec<Spanned<RawHook>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHook {
    at: HookPoint,
    run: HookRun,
    command: String,
    timeout: Option<String>,
    #[serde(default)]
    nodes: Vec<String>,
    role: Option<Role>,
}

const EXPECTED: &str = "expected: hooks [{at: pre-drain|post-stop|post-install|post-verify|pre-restore, run: controller|host, command, timeout (e.g. 60s), nodes [hostnames], role: manager|worker}]";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The hooks of a file's top-level `hooks:` key (none when it has none).
pub fn load(path: &Path) -> anyhow::Result<Vec<Hook>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("{}: cannot read the hooks: {e}", path.display())))?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> anyhow::Result<Vec<Hook>> {
    let file: HooksFile = serde_saphyr::from_str(text).map_err(|e| {
        usage(format!(
            "{}: hooks: {}\n  {EXPECTED}",
            path.display(),
            e.to_string().trim_end().trim_start_matches("error: ")
        ))
    })?;
    let mut hooks = vec![];
    for spanned in file.hooks {
        let at = format!("{}:{}", path.display(), spanned.referenced.line());
        let h = spanned.value;
        if h.command.trim().is_empty() {
            return Err(usage(format!(
                "{at}: hook field `command` is empty: give the shell command to run"
            )));
        }
        let timeout = match &h.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => humantime::parse_duration(t).map_err(|e| {
                usage(format!(
                    "{at}: hook field `timeout`: {t:?} is not a duration ({e}); write e.g. 60s or 5m"
                ))
            })?,
        };
        if timeout.is_zero() || timeout.as_secs() > 24 * 3600 {
            return Err(usage(format!(
                "{at}: hook field `timeout`: {} is out of range; give 1s to 24h",
                humantime::format_duration(timeout)
            )));
        }
        hooks.push(Hook {
            at: h.at,
            run: h.run,
            command: h.command,
            timeout_secs: timeout.as_secs().max(1),
            nodes: h.nodes,
            role: h.role,
            defined_at: at,
        });
    }
    Ok(hooks)
}

/// Hooks naming a node that is not in the swarm: a typo, refused before
/// anything runs.
pub fn check_nodes(hooks: &[Hook], hostnames: &[&str]) -> Result<(), String> {
    for h in hooks {
        if let Some(bad) = h.nodes.iter().find(|n| !hostnames.contains(&n.as_str())) {
            return Err(format!(
                "{}: hook field `nodes`: {bad:?} is not a node of the swarm; use one of {}",
                h.defined_at,
                hostnames.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> anyhow::Result<Vec<Hook>> {
        parse(s, Path::new("/etc/swarm/inv.yaml"))
    }

    #[test]
    fn parses_hooks_with_defaults() {
        let hooks = p("hosts:\n  - name: m1\nhooks:\n  - at: pre-drain\n    run: host\n    command: test -f /ok\n  - at: post-verify\n    run: controller\n    command: echo $SU_NODE\n    timeout: 5m\n    nodes: [w1]\n    role: worker\n").unwrap();
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0].at, HookPoint::PreDrain);
        assert_eq!(hooks[0].run, HookRun::Host);
        assert_eq!(hooks[0].timeout_secs, 60);
        assert!(hooks[0].applies(HookPoint::PreDrain, "m1", Role::Manager));
        assert!(!hooks[0].applies(HookPoint::PostStop, "m1", Role::Manager));
        assert_eq!(hooks[1].timeout_secs, 300);
        assert!(hooks[1].applies(HookPoint::PostVerify, "w1", Role::Worker));
        assert!(!hooks[1].applies(HookPoint::PostVerify, "w2", Role::Worker));
        assert!(!hooks[1].applies(HookPoint::PostVerify, "w1", Role::Manager));
        assert!(p("hosts: []\n").unwrap().is_empty());
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let err = p("hooks:\n  - at: pre-drain\n    run: host\n    comand: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/etc/swarm/inv.yaml: hooks: "), "{err}");
        assert!(err.contains("comand"), "{err}");
        assert!(err.contains("line 4"), "{err}");

        let err = p("hooks:\n  - at: before-drain\n    run: host\n    command: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("before-drain"), "{err}");

        let err =
            p("hooks:\n  - at: pre-drain\n    run: host\n    command: x\n    timeout: soon\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("/etc/swarm/inv.yaml:2: hook field `timeout`"),
            "{err}"
        );

        let err = p("hooks:\n  - at: pre-drain\n    run: host\n    command: \" \"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("inv.yaml:2: hook field `command` is empty"),
            "{err}"
        );
    }

    #[test]
    fn a_node_not_in_the_swarm_is_refused() {
        let hooks =
            p("hooks:\n  - at: pre-drain\n    run: host\n    command: x\n    nodes: [w9]\n")
                .unwrap();
        let err = check_nodes(&hooks, &["m1", "w1"]).unwrap_err();
        assert!(
            err.contains("inv.yaml:2: hook field `nodes`: \"w9\" is not a node"),
            "{err}"
        );
        assert!(check_nodes(&hooks, &["w9"]).is_ok());
    }
}
