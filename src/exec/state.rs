//! The run state: which steps are done, which one is in progress, how the run
//! ended. Rewritten atomically after every step (see [`super::rundir`]).

use serde::{Deserialize, Serialize};

use crate::version::EngineVersion;

pub const STATE_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub format: u32,
    pub run_id: String,
    pub cluster_id: String,
    pub pin: EngineVersion,
    /// Hash of the plan this run executes (the plan file's `sha256`).
    pub plan_sha256: String,
    /// `user@machine pid N`: who runs it.
    pub owner: String,
    pub started_at: String,
    pub updated_at: String,
    pub status: RunStatus,
    pub steps: Vec<StepState>,
    /// Checks waived with `--ignore-check`.
    #[serde(default)]
    pub ignored_checks: Vec<String>,
    /// What went wrong, for `status`.
    #[serde(default)]
    pub failure: Option<String>,
    /// Nodes whose upgrade was undone.
    #[serde(default)]
    pub rolled_back: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Running,
    /// Stopped on request at a safe point; `resume` continues.
    Interrupted,
    Done,
    /// A step failed and the node was rolled back.
    RolledBack,
    /// A step failed and could not be undone: manual work needed.
    RollbackFailed,
    /// A step failed with nothing to roll back (e.g. convergence timed out).
    Failed,
}

impl RunStatus {
    /// Whether `resume` has something to continue.
    pub fn resumable(self) -> bool {
        matches!(
            self,
            RunStatus::Running | RunStatus::Interrupted | RunStatus::Failed
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    pub index: usize,
    pub status: StepStatus,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Pending,
    /// Started and not finished: after a crash, resume runs it again
    /// (every step is idempotent) rather than assume it.
    Running,
    Done,
    Failed,
    /// Undone by a rollback.
    RolledBack,
}

impl RunState {
    pub fn new(
        run_id: String,
        cluster_id: String,
        pin: EngineVersion,
        plan_sha256: String,
        steps: usize,
        ignored_checks: Vec<String>,
    ) -> RunState {
        let now = now();
        RunState {
            format: STATE_FORMAT,
            run_id,
            cluster_id,
            pin,
            plan_sha256,
            owner: owner(),
            started_at: now.clone(),
            updated_at: now,
            status: RunStatus::Running,
            steps: (1..=steps)
                .map(|index| StepState {
                    index,
                    status: StepStatus::Pending,
                    started_at: None,
                    finished_at: None,
                    error: None,
                })
                .collect(),
            ignored_checks,
            failure: None,
            rolled_back: vec![],
        }
    }

    pub fn step(&self, index: usize) -> &StepState {
        &self.steps[index - 1]
    }

    pub fn step_mut(&mut self, index: usize) -> &mut StepState {
        &mut self.steps[index - 1]
    }

    pub fn done(&self, index: usize) -> bool {
        self.step(index).status == StepStatus::Done
    }

    pub fn count(&self, status: StepStatus) -> usize {
        self.steps.iter().filter(|s| s.status == status).count()
    }
}

/// Now, RFC 3339 with milliseconds, UTC.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// `user@machine pid N`, to tell operators apart in locks and leases.
pub fn owner() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host} pid {}", std::process::id())
}

/// A new run id: UTC time plus a random suffix, sortable and unique enough.
pub fn new_run_id() -> String {
    let t = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let compact: String = t.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let mut bytes = [0u8; 3];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut bytes)
    });
    format!("{compact}-{:02x}{:02x}{:02x}", bytes[0], bytes[1], bytes[2])
}
