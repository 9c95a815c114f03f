//! The run's lease while it runs: looked at every batch boundary (the
//! operator's pause or abort), renewed there once a third of its TTL has
//! passed and by a background heartbeat every third of its TTL (a script may
//! take 15 minutes, a drain 5), and, once it is another run's or gone, the
//! run stops at its next safe point with the reason journaled (I5).
//!
//! Between two boundaries the lease is watched: a manager's event stream of
//! the lease's config, opened before the read it follows. While that stream
//! is open and quiet, the lease is as last read, and the boundary needs no
//! request; any event, the stream ending (that manager restarting, its SSH
//! connection lost), a manager not answering a question meanwhile (one cut
//! off from the swarm keeps its stream open and quiet) or a minute passing
//! makes the next boundary read it again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::events::Event;
use super::lease::{Control, LeaseLost};
use super::operation::{Call, Description, On, Operation};
use super::ops::{Events, Ops};
use super::runner::Runner;

/// The longest a quiet watch stands in for reading the lease. A quiet
/// stream cannot tell a manager that still hears the swarm from one cut off
/// from it; a read can, so one is made at least this often.
pub(super) const WATCH_TRUSTED: Duration = Duration::from_secs(60);

/// The lease as last read at a boundary, and its changes since.
pub(crate) struct LeaseWatch<'a> {
    changes: Events<'a>,
    control: Control,
    read: Instant,
    /// [`Runner::vias_forgotten`] when it was read.
    forgotten: u64,
}

impl LeaseWatch<'_> {
    /// The operator's request in the lease, when nothing changed it since
    /// it was read (and every manager asked since answered: `forgotten`
    /// is still as then); `None`: read it again.
    async fn unchanged(&mut self, forgotten: u64) -> Option<Control> {
        if self.read.elapsed() >= WATCH_TRUSTED || forgotten != self.forgotten {
            return None;
        }
        match self.changes.next(Duration::ZERO).await {
            Ok(false) => Some(self.control),
            Ok(true) | Err(_) => None,
        }
    }
}

impl<O: Ops> Runner<'_, O> {
    /// Renews the lease; returns the operator's request it holds (`None`
    /// when this renewal failed and is tried again later). `Err` only when
    /// it is lost: taken by another run, gone from the swarm, or not renewed
    /// for a whole TTL (no manager answered).
    pub(super) async fn renew_lease(&self) -> Result<Option<Control>, String> {
        self.lease_control(true).await
    }

    /// At a safe point: the operator's request in the lease, as its watch
    /// knows it or read now; the lease is renewed only when a third of its
    /// TTL has passed since it was (the heartbeat renews it meanwhile).
    /// `Err` as for [`Runner::renew_lease`].
    pub(super) async fn read_lease(&self) -> Result<Option<Control>, String> {
        let due = self.lease_renewed.lock().await.elapsed() >= self.cx.opts.lease_ttl / 3;
        self.lease_control(due).await
    }

    async fn lease_control(&self, renew: bool) -> Result<Option<Control>, String> {
        let mut last = self.lease_renewed.lock().await;
        let mut watch = self.lease_watch.lock().await;
        let forgotten = || self.vias_forgotten.load(Ordering::SeqCst);
        if !renew
            && let Some(w) = watch.as_mut()
            && let Some(control) = w.unchanged(forgotten()).await
        {
            return Ok(Some(control));
        }
        // Our own write would show in the stream: the next read opens a new one.
        *watch = None;
        let lease = self.lease(&*self.state.lock().await);
        let answer = self
            .ask(None, async |via| match renew {
                true => Ok((self.ops.renew_lease(via, &lease).await?, None)),
                false => {
                    // Listening first: a change after the read is in the stream.
                    // Without a stream (an engine that cannot hold one open)
                    // every boundary reads.
                    let changes = self.ops.lease_changes(via).await.ok();
                    Ok((self.ops.read_lease(via, &lease).await?, changes))
                }
            })
            .await
            .and_then(|answer| answer);
        match answer {
            Ok((control, changes)) => {
                if renew {
                    *last = Instant::now();
                }
                // Counted from here: a manager that failed this question
                // before another answered it says nothing of the stream.
                *watch = changes.map(|changes| LeaseWatch {
                    changes,
                    control,
                    read: Instant::now(),
                    forgotten: forgotten(),
                });
                Ok(Some(control))
            }
            Err(e) => match e.downcast_ref::<LeaseLost>() {
                Some(lost) => Err(lost.0.clone()),
                None if last.elapsed() >= self.cx.opts.lease_ttl => Err(format!(
                    "not renewed for {}: {e:#}",
                    humantime::format_duration(self.cx.opts.lease_ttl)
                )),
                None => Ok(None),
            },
        }
    }

    /// Renews the lease every third of its TTL, for as long as the run goes
    /// on; once it is lost, says so and waits for the run to stop at its
    /// next safe point.
    pub(super) async fn heartbeat(&self) -> std::convert::Infallible {
        let period = self.cx.opts.lease_ttl / 3;
        loop {
            tokio::time::sleep(period).await;
            if let Err(reason) = self.renew_lease().await {
                self.lease_lost(reason).await;
                return std::future::pending().await;
            }
        }
    }

    /// The run wrote its lease itself (`pause`): the next boundary reads
    /// it, not waiting for the write's event to arrive.
    pub(crate) async fn forget_lease_watch(&self) {
        *self.lease_watch.lock().await = None;
    }

    /// Records (once) that the lease is lost; the batches stop at the next
    /// boundary.
    pub(super) async fn lease_lost(&self, reason: String) {
        {
            let mut lost = self.lease_lost.lock().expect("lease lock");
            if lost.is_some() {
                return;
            }
            *lost = Some(reason.clone());
        }
        let _ = self.record(Event::LeaseLost { reason }).await;
    }
}

/// What the run does around its steps: the lease taken at the start (after
/// finding a manager to ask), read between batches and renewed when due,
/// released at the end.
pub(crate) fn describe_lease() -> [(&'static str, Description); 3] {
    let probe = |d: &mut Description| {
        d.when(
            super::context::VIA_STALE,
            Operation::api(On::Manager, Call::Info),
        );
    };
    let mut start = Description::default();
    start.once(Operation::api(On::Manager, Call::Info));
    start.once(Operation::api(On::Manager, Call::AcquireLease));
    let mut between = Description::default();
    probe(&mut between);
    let changed = "the lease changed, its watch ended, or a minute passed since it was read";
    between.when(changed, Operation::api(On::Manager, Call::LeaseChanges));
    between.when(changed, Operation::api(On::Manager, Call::ReadLease));
    between.when(
        "a third of the lease TTL passed since its renewal (instead of the read)",
        Operation::api(On::Manager, Call::RenewLease),
    );
    let mut end = Description::default();
    probe(&mut end);
    end.once(Operation::api(On::Manager, Call::ReleaseLease));
    [("start", start), ("between batches", between), ("end", end)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch<'a>(
        events: impl futures_util::Stream<Item = anyhow::Result<()>> + Send + 'a,
    ) -> LeaseWatch<'a> {
        LeaseWatch {
            changes: Events::new(events),
            control: Control::Pause,
            read: Instant::now(),
            forgotten: 7,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_watch_stands_in_for_a_read_for_a_minute_at_most() {
        let mut w = watch(futures_util::stream::pending());
        assert_eq!(w.unchanged(7).await, Some(Control::Pause));
        tokio::time::advance(WATCH_TRUSTED - Duration::from_secs(1)).await;
        assert_eq!(w.unchanged(7).await, Some(Control::Pause));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(w.unchanged(7).await, None, "read again after a minute");
    }

    #[tokio::test]
    async fn an_event_an_ended_stream_or_a_manager_not_answering_means_read_again() {
        use futures_util::StreamExt;
        let event = futures_util::stream::iter([anyhow::Ok(())]);
        let mut changed = watch(event.chain(futures_util::stream::pending()));
        assert_eq!(changed.unchanged(7).await, None, "an event came");
        let mut ended = watch(futures_util::stream::empty());
        assert_eq!(ended.unchanged(7).await, None, "the stream ended");
        let mut quiet = watch(futures_util::stream::pending());
        assert_eq!(
            quiet.unchanged(8).await,
            None,
            "a manager did not answer since the read: its stream may be quiet because it is cut off"
        );
    }
}
