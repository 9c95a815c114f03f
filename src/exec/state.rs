//! The run state: which steps are done, which one is in progress, how the run
//! ended. Rewritten atomically after every step (see [`super::rundir`]).
//!
//! It is rewritten twice per step, so its size must not grow with the
//! cluster: steps are stored as runs of equal status (`1-812 done, 813
//! running, 814-40051 pending`), a handful of entries whatever the plan's
//! length. When each step started and finished is in the journal, which
//! `status` reads.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::version::EngineVersion;

/// 2: steps as runs of equal status, without times. Format 1 (one object
/// per step) still loads.
pub const STATE_FORMAT: u32 = 2;

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
    #[serde(serialize_with = "steps_as_runs", deserialize_with = "steps_from_runs")]
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
    /// Stopped with nothing rolled back and every node safe or recorded in
    /// the swarm's labels (a precondition, a command not delivered, the
    /// lease lost, a convergence timeout): `resume` continues. Exit 6.
    Failed,
}

impl RunStatus {
    /// Whether `resume` has something to continue. A rolled-back run is: the
    /// nodes it upgraded before the failure are still drained (the swarm's
    /// labels say so), and the failed node goes again once it is fixed.
    pub fn resumable(self) -> bool {
        matches!(
            self,
            RunStatus::Running | RunStatus::Interrupted | RunStatus::Failed | RunStatus::RolledBack
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepState {
    pub index: usize,
    pub status: StepStatus,
    /// Why it failed.
    pub error: Option<String>,
}

/// Steps `first..=last` (1-based, as in the plan), all in one status. A
/// format 1 file has one entry per step, with `index` instead.
#[derive(Serialize, Deserialize)]
struct StepRun {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<usize>,
    status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn steps_as_runs<S: Serializer>(steps: &[StepState], ser: S) -> Result<S::Ok, S::Error> {
    let mut runs: Vec<StepRun> = vec![];
    for s in steps {
        match runs.last_mut() {
            Some(r) if r.status == s.status && r.error == s.error => r.last = Some(s.index),
            _ => runs.push(StepRun {
                index: None,
                first: Some(s.index),
                last: Some(s.index),
                status: s.status,
                error: s.error.clone(),
            }),
        }
    }
    runs.serialize(ser)
}

fn steps_from_runs<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<StepState>, D::Error> {
    use serde::de::Error;
    let runs = Vec::<StepRun>::deserialize(de)?;
    let mut steps: Vec<StepState> = vec![];
    for r in runs {
        let (first, last) = match (r.index, r.first, r.last) {
            (Some(i), None, None) => (i, i),
            (None, Some(f), Some(l)) if f <= l => (f, l),
            _ => {
                return Err(D::Error::custom(
                    "a step entry needs `first` and `last` (first <= last), or `index`",
                ));
            }
        };
        if first != steps.len() + 1 {
            return Err(D::Error::custom(format!(
                "steps must follow each other from 1: step {first} comes after step {}",
                steps.len()
            )));
        }
        steps.extend((first..=last).map(|index| StepState {
            index,
            status: r.status,
            error: r.error.clone(),
        }));
    }
    Ok(steps)
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
    /// Its node was left out with `--skip-node` (a later `resume` without
    /// the flag runs it).
    Skipped,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(steps: usize) -> RunState {
        RunState::new(
            "r1".into(),
            "c1".into(),
            "26.1.5".parse().unwrap(),
            "sha".into(),
            steps,
            vec![],
        )
    }

    #[test]
    fn steps_are_stored_as_runs_of_equal_status() {
        let mut st = state(40_000);
        for i in 1..=812 {
            st.step_mut(i).status = StepStatus::Done;
        }
        st.step_mut(813).status = StepStatus::Failed;
        st.step_mut(813).error = Some("boom".into());
        st.step_mut(814).status = StepStatus::Running;
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(
            json["steps"],
            serde_json::json!([
                {"first": 1, "last": 812, "status": "done"},
                {"first": 813, "last": 813, "status": "failed", "error": "boom"},
                {"first": 814, "last": 814, "status": "running"},
                {"first": 815, "last": 40000, "status": "pending"},
            ])
        );
        let back: RunState = serde_json::from_value(json).unwrap();
        assert_eq!(back, st);
        // The size does not grow with the plan.
        assert!(serde_json::to_vec_pretty(&st).unwrap().len() < 1_000);
    }

    #[test]
    fn format_1_states_still_load() {
        let mut json = serde_json::to_value(state(1)).unwrap();
        json["format"] = 1.into();
        json["steps"] = serde_json::json!([
            {"index": 1, "status": "done", "started_at": "t0", "finished_at": "t1", "error": null},
            {"index": 2, "status": "failed", "started_at": "t2", "finished_at": "t3", "error": "x"},
            {"index": 3, "status": "pending", "started_at": null, "finished_at": null, "error": null},
        ]);
        let st: RunState = serde_json::from_value(json).unwrap();
        assert_eq!(st.steps.len(), 3);
        assert!(st.done(1));
        assert_eq!(st.step(2).error.as_deref(), Some("x"));
        assert_eq!(st.step(3).status, StepStatus::Pending);
    }

    #[test]
    fn gaps_and_overlaps_are_refused() {
        let mut json = serde_json::to_value(state(1)).unwrap();
        json["steps"] = serde_json::json!([
            {"first": 1, "last": 3, "status": "done"},
            {"first": 5, "last": 6, "status": "pending"},
        ]);
        let err = serde_json::from_value::<RunState>(json.clone()).unwrap_err();
        assert!(
            err.to_string().contains("step 5 comes after step 3"),
            "{err}"
        );
        json["steps"] = serde_json::json!([{"first": 4, "last": 3, "status": "done"}]);
        assert!(serde_json::from_value::<RunState>(json).is_err());
    }
}
