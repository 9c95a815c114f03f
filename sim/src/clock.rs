//! Virtual time for the simulation, without tokio's `test-util`.
//!
//! Commands take (virtual) time on simulated hosts, and swarm changes
//! (heartbeat failure, rejoin, task start) happen some (virtual) time after
//! their cause. Nothing sleeps for real: [`SimCluster::drive`] polls the
//! future under test and, whenever it cannot make progress by itself, moves
//! the clock to the next thing the simulation has scheduled. That makes runs
//! deterministic and instant however long the simulated operations are.
//!
//! The executor's own polling (`exec::wait::Backoff`) sleeps on tokio's real
//! clock; when the driven future waits only on such a timer, the clock
//! applies every pending swarm change at once, so one real poll interval
//! sees the swarm settled (see [`World::idle`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use super::SimCluster;
use super::world::World;

/// Forwards wake-ups to the real waker and remembers that one happened, so
/// the driver can tell "something is ready" from "everyone waits".
struct Flag {
    woken: AtomicBool,
    outer: Waker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.outer.wake_by_ref();
    }
}

impl SimCluster {
    /// Virtual time since the simulation started.
    pub fn now(&self) -> Duration {
        self.with(|w| w.now)
    }

    /// Runs `fut` with the simulation's virtual clock: whenever `fut` is
    /// blocked, time jumps to the next simulated event. Every future that
    /// sleeps on the simulation (commands with a duration, [`Self::sleep`])
    /// must run under `drive`.
    pub async fn drive<F: Future>(&self, fut: F) -> F::Output {
        // Without tokio's cooperative budget: a primitive (a Mutex) out of
        // budget returns Pending and defers its wake-up to the scheduler,
        // which would look like "everyone waits" here and move time early.
        let mut fut = std::pin::pin!(tokio::task::unconstrained(fut));
        std::future::poll_fn(move |cx| {
            loop {
                let flag = Arc::new(Flag {
                    woken: AtomicBool::new(false),
                    outer: cx.waker().clone(),
                });
                let waker = Waker::from(flag.clone());
                if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
                    return Poll::Ready(v);
                }
                if flag.woken.load(Ordering::SeqCst) {
                    // Something became ready while we polled: poll again
                    // before letting time pass.
                    continue;
                }
                let wake = self.with(World::idle);
                if wake.is_empty() {
                    // Only real things (a tokio timer) can wake `fut` now.
                    return Poll::Pending;
                }
                for w in wake {
                    w.wake();
                }
            }
        })
        .await
    }

    /// Sleeps `d` of virtual time (under [`Self::drive`]).
    pub fn sleep(&self, d: Duration) -> SimSleep<'_> {
        let due = self.now() + d;
        SimSleep {
            sim: self,
            due,
            key: None,
        }
    }

    pub(crate) fn sleep_until(&self, due: Duration) -> SimSleep<'_> {
        SimSleep {
            sim: self,
            due,
            key: None,
        }
    }

    /// Lets `d` of virtual time pass at once, applying every swarm change due
    /// in it (an operator's coffee break between a crash and `resume`).
    pub fn advance(&self, d: Duration) {
        self.with(|w| {
            let until = w.now + d;
            w.run_until(until);
            w.now = w.now.max(until);
        });
    }
}

/// A virtual-time sleep; see [`SimCluster::sleep`].
pub struct SimSleep<'a> {
    sim: &'a SimCluster,
    due: Duration,
    key: Option<u64>,
}

impl Future for SimSleep<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let (due, key) = (self.due, self.key);
        let key = self.sim.with(|w| {
            if w.now >= due {
                if let Some(k) = key {
                    w.sleepers.remove(&(due, k));
                }
                return None;
            }
            let k = key.unwrap_or_else(|| w.next_seq());
            w.sleepers.insert((due, k), cx.waker().clone());
            Some(k)
        });
        match key {
            None => {
                self.key = None;
                Poll::Ready(())
            }
            Some(k) => {
                self.key = Some(k);
                Poll::Pending
            }
        }
    }
}

impl Drop for SimSleep<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            let due = self.due;
            self.sim.with(|w| {
                w.sleepers.remove(&(due, k));
            });
        }
    }
}
