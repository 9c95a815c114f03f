//! Telling the outside world how a run goes, besides the journal and the
//! terminal: webhook notifications (`--notify`) and a Prometheus metrics
//! file (`--metrics-file`). Both consume the executor's events, as the
//! journal and the UI do; the runner knows nothing of them.
//!
//! ```text
//! events ─► progress (pure: run and node states, milestones)
//!              ├─► notify (the JSON document) ─► webhook (background POSTs)
//!              └─► metrics (the text) ─► the file, replaced atomically
//! ```
//! Neither can stop or slow the upgrade: a POST runs in the background with
//! a timeout and a bounded queue, a metrics file that cannot be written is
//! reported once; either only warns.

pub mod metrics;
pub mod notify;
pub mod progress;
pub mod webhook;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::exec::events::Event;
use crate::exec::state::{RunState, now};
use crate::plan::Plan;
use metrics::MetricsFile;
use progress::Progress;
use webhook::{Endpoint, Webhooks};

/// How long one notification may take to be delivered.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// `--notify` and `--metrics-file`.
#[derive(Debug, Clone, Default)]
pub struct ObserveOptions {
    pub notify: Vec<Endpoint>,
    pub metrics_file: Option<PathBuf>,
}

impl ObserveOptions {
    pub fn is_empty(&self) -> bool {
        self.notify.is_empty() && self.metrics_file.is_none()
    }
}

/// The observers of one run.
pub struct Observers {
    inner: Mutex<Inner>,
}

struct Inner {
    progress: Progress,
    hooks: Option<Webhooks>,
    metrics: Option<MetricsFile>,
    metrics_warned: bool,
}

impl Observers {
    /// The observers `opts` asks for, of the run about to execute `plan`
    /// from `state`. Nothing is sent or written before the run starts.
    pub fn start(
        opts: &ObserveOptions,
        plan: &Plan,
        state: &RunState,
        skip_nodes: &[String],
    ) -> Observers {
        Observers::with_timeout(opts, plan, state, skip_nodes, NOTIFY_TIMEOUT)
    }

    pub fn with_timeout(
        opts: &ObserveOptions,
        plan: &Plan,
        state: &RunState,
        skip_nodes: &[String],
        timeout: Duration,
    ) -> Observers {
        Observers {
            inner: Mutex::new(Inner {
                progress: Progress::new(plan, state, skip_nodes),
                hooks: (!opts.notify.is_empty()).then(|| Webhooks::start(&opts.notify, timeout)),
                metrics: opts.metrics_file.as_deref().map(MetricsFile::new),
                metrics_warned: false,
            }),
        }
    }

    /// Takes in one executor event; `warn` is given what went wrong, once
    /// per cause. Never blocks on the network.
    pub fn event(&self, event: &Event, warn: &dyn Fn(&str)) {
        if matches!(event, Event::StepOutput { .. } | Event::Traffic { .. }) {
            return;
        }
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *guard;
        let milestones = inner.progress.observe(event, secs);
        if let Some(hooks) = &inner.hooks {
            let ts = now();
            for m in &milestones {
                let doc = notify::notification(&inner.progress, m, &ts);
                if let Ok(body) = serde_json::to_vec(&doc) {
                    hooks.send(body);
                }
            }
            for w in hooks.warnings() {
                warn(&w);
            }
        }
        if let Some(file) = &inner.metrics
            && let Err(e) = file.write(&inner.progress)
            && !inner.metrics_warned
        {
            inner.metrics_warned = true;
            warn(&format!(
                "--metrics-file: {e:#}; the upgrade goes on, and further failures are not reported"
            ));
        }
    }

    /// At the end of the run: waits a bounded time for the notifications
    /// still queued (the run is over: this delays only the exit).
    pub fn finish(self, warn: &dyn Fn(&str)) {
        let inner = self.inner.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(hooks) = inner.hooks {
            for w in hooks.finish() {
                warn(&w);
            }
        }
    }
}
