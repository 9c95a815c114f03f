//! The run directory: plan, journal and state of each run, on the machine
//! that runs swarm-upgrade.
//!
//! ```text
//! $XDG_STATE_HOME/swarm-upgrade/<cluster-id>/
//!   lock                    flock'ed while a run is in progress
//!   current                 the id of the latest run
//!   runs/<run-id>/plan.json     the plan, with its content hash
//!   runs/<run-id>/state.json    rewritten atomically after every step
//!   runs/<run-id>/journal.jsonl append-only, one event a line, fsync'ed
//! ```
//! Everything is created 0700/0600: the journal holds host details.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::state::{RunState, STATE_FORMAT};
use crate::error::Error;
use crate::files::{mkdir_private, write_atomic};
use crate::plan::{self, Plan};

/// The directory of one cluster's runs.
#[derive(Debug, Clone)]
pub struct ClusterDir {
    pub path: PathBuf,
}

/// An exclusive hold on a cluster directory, released when dropped (and by
/// the OS if the process dies).
#[derive(Debug)]
pub struct LocalLock {
    _file: File,
}

/// The default base: `$XDG_STATE_HOME/swarm-upgrade`, else `~/.local/state/swarm-upgrade`.
pub fn default_base() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"))
        .join("swarm-upgrade")
}

impl ClusterDir {
    pub fn open(base: &Path, cluster_id: &str) -> anyhow::Result<ClusterDir> {
        let safe: String = cluster_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        anyhow::ensure!(!safe.is_empty(), "the swarm reported no cluster ID");
        let path = base.join(safe);
        mkdir_private(&path.join("runs"))?;
        Ok(ClusterDir { path })
    }

    /// Takes the local lock, or fails with exit code 75 naming the holder.
    pub fn lock(&self) -> anyhow::Result<LocalLock> {
        let p = self.path.join("lock");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&p)
            .with_context(|| format!("opening {}", p.display()))?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                writeln!(file, "{}", super::state::owner())?;
                Ok(LocalLock { _file: file })
            }
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&p).unwrap_or_default();
                Err(Error::Locked(format!(
                    "another swarm-upgrade run holds {} ({}); wait for it to finish",
                    p.display(),
                    holder.trim()
                ))
                .into())
            }
            Err(fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", p.display()))
            }
        }
    }

    pub fn run(&self, run_id: &str) -> RunDir {
        RunDir {
            path: self.path.join("runs").join(run_id),
        }
    }

    /// The latest run, if any.
    pub fn current(&self) -> anyhow::Result<Option<RunDir>> {
        match fs::read_to_string(self.path.join("current")) {
            Ok(id) if !id.trim().is_empty() => Ok(Some(self.run(id.trim()))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context("reading the current run"),
        }
    }

    pub fn set_current(&self, run_id: &str) -> anyhow::Result<()> {
        write_atomic(&self.path.join("current"), run_id.as_bytes())
    }
}

/// One run's files.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn create(&self) -> anyhow::Result<()> {
        mkdir_private(&self.path)
    }
    pub fn plan_path(&self) -> PathBuf {
        self.path.join("plan.json")
    }
    pub fn state_path(&self) -> PathBuf {
        self.path.join("state.json")
    }
    pub fn journal_path(&self) -> PathBuf {
        self.path.join("journal.jsonl")
    }

    /// The run's state file, refused with a usage error (exit 2) naming the
    /// file when it is unreadable, corrupt, or from a newer swarm-upgrade:
    /// a run whose state cannot be trusted must never silently become a new
    /// run (its nodes may be drained or stopped).
    pub fn load_state(&self) -> anyhow::Result<RunState> {
        let p = self.state_path();
        let shown = p.display();
        let fix = self.fix();
        let text = fs::read_to_string(&p)
            .map_err(|e| Error::Usage(format!("cannot read the run state {shown}: {e}; {fix}")))?;
        let mut state: RunState = serde_json::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "{shown}:{}:{}: not a run state ({e}): the file is corrupt; {fix}",
                e.line(),
                e.column()
            ))
        })?;
        if state.format > STATE_FORMAT {
            return Err(Error::Usage(format!(
                "{shown} is in format {}, from a newer swarm-upgrade (this one reads up to \
                 {STATE_FORMAT}): use that version to resume or inspect the run",
                state.format
            ))
            .into());
        }
        // Older formats load into the current model and are saved in it.
        state.format = STATE_FORMAT;
        Ok(state)
    }

    /// The run's plan and state, checked against each other and against the
    /// swarm they are used on: a state of another swarm or another run, or
    /// one whose plan is not the plan it recorded (hash, step count), is a
    /// usage error naming the file.
    pub fn load(&self, cluster_id: &str) -> anyhow::Result<(Plan, RunState)> {
        let state = self.load_state()?;
        let p = self.state_path();
        let shown = p.display();
        let fix = self.fix();
        let bad = |what: String| -> anyhow::Error {
            Error::Usage(format!("{shown}: {what}; {fix}")).into()
        };
        if state.cluster_id != cluster_id {
            return Err(bad(format!(
                "records a run of swarm {}, not of this swarm ({cluster_id})",
                state.cluster_id
            )));
        }
        let dir_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        if dir_name.as_deref() != Some(state.run_id.as_str()) {
            return Err(bad(format!(
                "records run {}, but lies in the directory of run {}",
                state.run_id,
                dir_name.unwrap_or_default()
            )));
        }
        let plan = plan::file::load(&self.plan_path())?;
        let digest = plan::file::digest(&plan)?;
        if digest != state.plan_sha256 {
            return Err(bad(format!(
                "records a plan with sha256 {}, but {} hashes to {digest}: the run's plan was replaced",
                state.plan_sha256,
                self.plan_path().display()
            )));
        }
        if plan.steps.len() != state.steps.len() {
            return Err(bad(format!(
                "has {} steps, but its plan has {}",
                state.steps.len(),
                plan.steps.len()
            )));
        }
        if plan.cluster_id != cluster_id {
            return Err(bad(format!(
                "its plan {} is for swarm {}, not this one ({cluster_id})",
                self.plan_path().display(),
                plan.cluster_id
            )));
        }
        Ok((plan, state))
    }

    /// What to do about a run directory that cannot be trusted.
    fn fix(&self) -> String {
        format!(
            "nothing was changed. Move {0} aside (e.g. `mv {0} {0}.broken`) and run `swarm-upgrade status --inventory FILE` \
             to see what the swarm itself records of the run, then `apply` again",
            self.path.display()
        )
    }

    /// When each step started and finished, from the journal (the state
    /// file keeps only statuses). The latest attempt counts: a resumed step
    /// appears twice.
    pub fn step_times(&self) -> anyhow::Result<BTreeMap<usize, StepTimes>> {
        let p = self.journal_path();
        let text = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
        };
        let mut times: BTreeMap<usize, StepTimes> = BTreeMap::new();
        // A line torn by a crash is skipped, not fatal: it is the last one.
        for v in text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        {
            let (Some(index), Some(ts)) = (v["index"].as_u64(), v["ts"].as_str()) else {
                continue;
            };
            let t = times.entry(index as usize).or_default();
            match v["event"].as_str() {
                Some("step-started") => {
                    t.started_at = Some(ts.to_string());
                    t.finished_at = None;
                }
                Some("step-finished" | "step-failed") => t.finished_at = Some(ts.to_string()),
                _ => {}
            }
        }
        Ok(times)
    }

    pub fn save_state(&self, state: &RunState) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(state)?;
        write_atomic(&self.state_path(), &json)
    }

    pub fn journal(&self) -> anyhow::Result<Journal> {
        let p = self.journal_path();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&p)
            .with_context(|| format!("opening {}", p.display()))?;
        Ok(Journal { file, path: p })
    }
}

/// When a step last started and finished (RFC 3339), as the journal says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepTimes {
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// Append-only JSONL; every line is fsync'ed before the step it records goes on.
#[derive(Debug)]
pub struct Journal {
    file: File,
    pub path: PathBuf,
}

impl Journal {
    pub fn append(&mut self, event: &impl Serialize) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::state::{RunState, StepStatus};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn state_round_trips_atomically_with_private_modes() {
        let base = tempfile::tempdir().unwrap();
        let cd = ClusterDir::open(base.path(), "abc123").unwrap();
        let run = cd.run("r1");
        run.create().unwrap();
        let mut st = RunState::new(
            "r1".into(),
            "abc123".into(),
            "26.1.5".parse().unwrap(),
            "h".into(),
            3,
            vec![],
        );
        st.step_mut(2).status = StepStatus::Done;
        run.save_state(&st).unwrap();
        assert_eq!(run.load_state().unwrap(), st);
        let mode = fs::metadata(run.state_path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = fs::metadata(&cd.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        cd.set_current("r1").unwrap();
        assert_eq!(cd.current().unwrap().unwrap().path, run.path);
    }

    #[test]
    fn journal_appends_lines() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir {
            path: dir.path().to_path_buf(),
        };
        let mut j = run.journal().unwrap();
        j.append(&serde_json::json!({"event": "a"})).unwrap();
        drop(j);
        let mut j = run.journal().unwrap();
        j.append(&serde_json::json!({"event": "b"})).unwrap();
        let text = fs::read_to_string(run.journal_path()).unwrap();
        assert_eq!(text, "{\"event\":\"a\"}\n{\"event\":\"b\"}\n");
    }

    #[test]
    fn step_times_come_from_the_journal_latest_attempt_first() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir {
            path: dir.path().to_path_buf(),
        };
        let mut j = run.journal().unwrap();
        for (ts, event, index) in [
            ("t1", "step-started", 1),
            ("t2", "step-finished", 1),
            ("t3", "step-started", 2),
            ("t4", "step-output", 2),
            // Killed in step 2; resumed: it starts again.
            ("t5", "step-started", 2),
            ("t6", "step-failed", 2),
            ("t7", "step-started", 3),
        ] {
            j.append(&serde_json::json!({"ts": ts, "event": event, "index": index}))
                .unwrap();
        }
        drop(j);
        let torn = fs::read_to_string(run.journal_path()).unwrap() + "{\"ts\": \"t8\", \"ev";
        fs::write(run.journal_path(), torn).unwrap();
        let times = run.step_times().unwrap();
        let t = |s: Option<&str>, f: Option<&str>| StepTimes {
            started_at: s.map(String::from),
            finished_at: f.map(String::from),
        };
        assert_eq!(times[&1], t(Some("t1"), Some("t2")));
        assert_eq!(times[&2], t(Some("t5"), Some("t6")));
        assert_eq!(times[&3], t(Some("t7"), None));
        assert_eq!(times.len(), 3);
    }

    #[test]
    fn a_state_from_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir {
            path: dir.path().to_path_buf(),
        };
        let mut st = RunState::new(
            "r1".into(),
            "c".into(),
            "26.1.5".parse().unwrap(),
            "h".into(),
            1,
            vec![],
        );
        st.format = STATE_FORMAT + 1;
        run.save_state(&st).unwrap();
        let err = run.load_state().unwrap_err();
        assert!(
            err.to_string().contains("from a newer swarm-upgrade"),
            "{err}"
        );
    }

    /// A run directory holding the lab plan and its fresh state.
    fn lab_run(base: &Path) -> (RunDir, Plan, RunState) {
        use crate::plan::testutil::{LAB_CLUSTER_ID, lab_plan};
        let cd = ClusterDir::open(base, LAB_CLUSTER_ID).unwrap();
        let run = cd.run("r1");
        run.create().unwrap();
        let plan = lab_plan();
        plan::file::save(&plan, &run.plan_path()).unwrap();
        let st = RunState::new(
            "r1".into(),
            LAB_CLUSTER_ID.into(),
            plan.target.clone(),
            plan::file::digest(&plan).unwrap(),
            plan.steps.len(),
            vec![],
        );
        run.save_state(&st).unwrap();
        (run, plan, st)
    }

    /// The usage error (exit 2) `load` gives, checked to name the state file.
    fn refused(run: &RunDir, cluster: &str) -> String {
        let err = run.load(cluster).unwrap_err();
        assert_eq!(crate::error::exit_code_of(&err), 2, "{err:#}");
        let msg = format!("{err:#}");
        assert!(msg.contains(&run.path.display().to_string()), "{msg}");
        msg
    }

    #[test]
    fn a_consistent_run_loads_with_its_plan() {
        use crate::plan::testutil::LAB_CLUSTER_ID;
        let base = tempfile::tempdir().unwrap();
        let (run, plan, st) = lab_run(base.path());
        let (p, s) = run.load(LAB_CLUSTER_ID).unwrap();
        assert_eq!((p, s), (plan, st));
    }

    #[test]
    fn corrupt_foreign_and_newer_states_are_usage_errors_naming_the_file() {
        use crate::plan::testutil::LAB_CLUSTER_ID;
        let base = tempfile::tempdir().unwrap();
        let (run, plan, st) = lab_run(base.path());

        // Torn or garbage: never a new run.
        fs::write(run.state_path(), b"{\"format\": 2, \"run_id\"").unwrap();
        assert!(refused(&run, LAB_CLUSTER_ID).contains("corrupt"));
        fs::remove_file(run.state_path()).unwrap();
        assert!(refused(&run, LAB_CLUSTER_ID).contains("cannot read the run state"));

        // Newer format.
        let mut newer = st.clone();
        newer.format = STATE_FORMAT + 1;
        run.save_state(&newer).unwrap();
        assert!(refused(&run, LAB_CLUSTER_ID).contains("from a newer swarm-upgrade"));

        // Another swarm's state, and this swarm's state of another run.
        run.save_state(&st).unwrap();
        assert!(refused(&run, "otherswarm").contains("not of this swarm"));
        let mut other_run = st.clone();
        other_run.run_id = "r2".into();
        run.save_state(&other_run).unwrap();
        assert!(refused(&run, LAB_CLUSTER_ID).contains("records run r2"));

        // A plan that is not the one the state recorded.
        let mut other_hash = st.clone();
        other_hash.plan_sha256 = "0".repeat(64);
        run.save_state(&other_hash).unwrap();
        assert!(refused(&run, LAB_CLUSTER_ID).contains("the run's plan was replaced"));

        // A plan with more steps than its state (this used to panic).
        let fewer = RunState::new(
            "r1".into(),
            LAB_CLUSTER_ID.into(),
            plan.target.clone(),
            st.plan_sha256.clone(),
            plan.steps.len() - 3,
            vec![],
        );
        run.save_state(&fewer).unwrap();
        let msg = refused(&run, LAB_CLUSTER_ID);
        assert!(
            msg.contains(&format!(
                "has {} steps, but its plan has {}",
                plan.steps.len() - 3,
                plan.steps.len()
            )),
            "{msg}"
        );
        assert!(msg.contains("nothing was changed"), "{msg}");
    }

    #[test]
    fn a_second_lock_is_refused_with_exit_75() {
        let base = tempfile::tempdir().unwrap();
        let cd = ClusterDir::open(base.path(), "c1").unwrap();
        let held = cd.lock().unwrap();
        let err = cd.lock().unwrap_err();
        assert_eq!(crate::error::exit_code_of(&err), 75);
        assert!(
            err.to_string().contains("another swarm-upgrade run"),
            "{err}"
        );
        drop(held);
        cd.lock().unwrap();
    }
}
