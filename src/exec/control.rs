//! The run's safe points: between batches no engine is down, and there the
//! run obeys what the swarm says of it (I5 and the operator's requests in
//! its lease: `swarm-upgrade pause|continue|abort`, from any machine), a
//! Ctrl-C, and the maintenance windows (`--window`), which gate starting a
//! node and never interrupt one.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::events::Event;
use super::lease::Control;
use super::ops::Ops;
use super::runner::Runner;
use super::state::{RunStatus, StepStatus};
use crate::plan::{Action, Step};

/// What the run does at a safe point.
pub(super) enum Go {
    /// On to the next batch.
    On,
    /// Stop here, as asked (Ctrl-C): resumable.
    Stop,
}

impl<O: Ops> Runner<'_, O> {
    /// Waits at the safe point before `batch` as long as the run is paused
    /// or outside its windows (renewing the lease meanwhile), then says
    /// whether it goes on. `Err`: it stops here (lease lost, aborted), its
    /// reason saved.
    pub(super) async fn safe_point(&self, batch: &[&Step]) -> Result<Go, RunStatus> {
        let mut paused = false;
        let mut waiting = false;
        loop {
            let control = match self.read_lease().await {
                Ok(c) => c,
                Err(reason) => {
                    self.lease_lost(reason).await;
                    None
                }
            };
            let lost = self.lease_lost.lock().expect("lease lock").clone();
            if let Some(reason) = lost {
                self.stop_with(format!(
                    "the run lease was lost ({reason}): stopped at a safe point; once no other run holds the lease, `swarm-upgrade resume` continues"
                ))
                .await;
                return Err(RunStatus::Failed);
            }
            if self.stop.load(Ordering::SeqCst) {
                return Ok(Go::Stop);
            }
            match control {
                Some(Control::Abort) => {
                    let _ = self.record(Event::Aborted).await;
                    self.stop_with(
                        "aborted with `swarm-upgrade abort`: stopped at a safe point, every engine running; `swarm-upgrade resume` continues from here"
                            .to_string(),
                    )
                    .await;
                    return Err(RunStatus::Failed);
                }
                Some(Control::Pause) => {
                    if !paused {
                        paused = true;
                        let _ = self.record(Event::Paused).await;
                    }
                    tokio::time::sleep(self.cx.opts.control_poll).await;
                    continue;
                }
                // A renewal that failed short of losing the lease says
                // nothing new: a pause stays a pause until a renewal says.
                None if paused => {
                    tokio::time::sleep(self.cx.opts.control_poll).await;
                    continue;
                }
                Some(Control::Run) | None => {}
            }
            if paused {
                paused = false;
                let _ = self.record(Event::Continued).await;
            }
            if self.starts_a_node(batch).await
                && let Some(opens) = self.window_closed(SystemTime::now())
            {
                if !waiting {
                    waiting = true;
                    let _ = self
                        .record(Event::WaitingForWindow {
                            opens_at: humantime::format_rfc3339_seconds(opens).to_string(),
                        })
                        .await;
                }
                let until = opens
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .max(std::time::Duration::from_secs(1));
                tokio::time::sleep(until.min(self.cx.opts.control_poll)).await;
                continue;
            }
            return Ok(Go::On);
        }
    }

    /// Whether `batch` takes a node down that was not already started
    /// (a resumed node, drained before the run stopped, is finished
    /// whatever the window: never left half done).
    async fn starts_a_node(&self, batch: &[&Step]) -> bool {
        let st = self.state.lock().await;
        let started = |id: &str| {
            // Staging (before the drain) does not take the node down.
            self.cx.steps_of(id).iter().any(|s| {
                s.action != Action::Stage
                    && matches!(
                        st.step(s.index).status,
                        StepStatus::Done | StepStatus::Running | StepStatus::Failed
                    )
            })
        };
        batch.iter().any(|s| {
            matches!(s.action, Action::Drain | Action::StopEngine)
                && !st.done(s.index)
                && s.node_id.as_deref().is_some_and(|id| !started(id))
        })
    }

    /// When the windows, all closed at `now`, open next.
    fn window_closed(&self, now: SystemTime) -> Option<SystemTime> {
        let windows = &self.cx.opts.windows;
        if crate::window::open(windows, now) {
            return None;
        }
        crate::window::next_open(windows, now)
    }

    async fn stop_with(&self, why: String) {
        let _ = self.save(|st| st.failure = Some(why)).await;
    }
}
