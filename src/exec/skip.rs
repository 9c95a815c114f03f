//! `--skip-node`: a node left out of the run by name (e.g. the one that
//! failed with exit 4). Its steps are recorded as skipped, not done (so a
//! rollback never reverts it), and if this run drained it, it gets its
//! availability back (I2).

use super::actions;
use super::context::StepError;
use super::ops::Ops;
use super::runner::Runner;
use super::state::{RunStatus, StepStatus};
use crate::plan::{Action, Step};

impl<O: Ops> Runner<'_, O> {
    pub(super) async fn skip_node(&self, node_id: &str, steps: &[&Step]) -> Result<(), RunStatus> {
        let name = &self.cx.node(node_id).name;
        let todo: Vec<&Step> = {
            let st = self.state.lock().await;
            steps
                .iter()
                .copied()
                .filter(|s| !st.done(s.index))
                .collect()
        };
        if let Some(first) = todo.first() {
            self.output(
                first,
                format!("{name} is left out of this run (--skip-node)"),
            )
            .await;
            // Drained by this run and not given back yet: give it back (I2).
            if self.drained_by_run(node_id).await {
                let n = self.cx.node(node_id);
                let restored = match self.via(Some(node_id)).await {
                    Ok(via) => {
                        self.ops
                            .update_node(&via, node_id, &actions::restore_availability::update(n))
                            .await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = restored {
                    let e = StepError::Halt(format!("giving {name} its availability back: {e:#}"));
                    self.fail_step(first, &e).await;
                    return Err(RunStatus::Failed);
                }
            }
        }
        let _ = self
            .save(|st| {
                for s in &todo {
                    st.step_mut(s.index).status = StepStatus::Skipped;
                }
            })
            .await;
        Ok(())
    }

    /// Whether the node's drain is done and its availability not yet back.
    async fn drained_by_run(&self, node_id: &str) -> bool {
        let st = self.state.lock().await;
        let done = |a: Action| {
            self.cx
                .steps_of(node_id)
                .iter()
                .any(|s| s.action == a && st.done(s.index))
        };
        done(Action::Drain) && !done(Action::RestoreAvailability)
    }
}
