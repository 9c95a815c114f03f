//! Waiting for the swarm: one polling loop for every wait of the executor
//! (drained, converged, verified, the quorum guard, replicas elsewhere),
//! with the timing the journal reports (`detect_ms`, `last_poll_ms`).

use std::time::Duration;
use tokio::time::Instant;

/// Polls fast first (a change is usually quick to show), then every quarter
/// of a second, so that a change is seen at most 0.25 s (plus one request)
/// after it happens. A poll is one or two small requests over the host's
/// SSH connection (a few ms on the lab), so this is cheap for managers.
pub struct Backoff {
    next: Duration,
    /// The latest sleep, and when the poll after it started.
    slept: Option<Duration>,
    poll_started: Instant,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(100);
    pub const CAP: Duration = Duration::from_millis(250);

    /// Created just before the first poll.
    pub fn new() -> Backoff {
        Backoff {
            next: Self::FIRST,
            slept: None,
            poll_started: Instant::now(),
        }
    }

    /// Sleeps until the next poll; called right after a poll answered "not yet".
    pub async fn sleep(&mut self) {
        let t = Instant::now();
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Self::CAP);
        self.poll_started = Instant::now();
        self.slept = Some(self.poll_started - t);
    }

    /// Woken other than by its own sleep, after `waited`: by an event
    /// (`event`: the change is likely now, so the polls after it start fast
    /// again and the detection bound is the time since the event), or by a
    /// bound on that wait (the change may have come any time in it).
    pub fn woke(&mut self, waited: Duration, event: bool) {
        self.poll_started = Instant::now();
        if event {
            self.next = Self::FIRST;
            self.slept = Some(Duration::ZERO);
        } else {
            self.slept = Some(waited);
        }
    }

    /// Called right after the poll that saw the change.
    pub fn polled(&self) -> Polled {
        Polled {
            detection: self.slept,
            last_poll: self.poll_started.elapsed(),
        }
    }
}

/// How a wait saw the change it waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polled {
    /// The sleep before the poll that saw it: the change came after the
    /// previous poll's "not yet", so at most this (plus the last poll's
    /// answer time) before it was seen. `None` when the first poll saw it.
    pub detection: Option<Duration>,
    /// How long the poll that saw it took. Normally a request's round trip;
    /// long when a request waited for the change itself (an engine that
    /// accepts connections while it starts answers when ready; GET /nodes
    /// answers once the managers have a leader).
    pub last_poll: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// What one poll found.
pub(crate) enum Attempt<T, E> {
    /// The change happened.
    Done(T),
    /// Not yet, and why (the message of a timeout).
    NotYet(String),
    /// Give up now: waiting longer cannot help.
    Fail(E),
}

/// How a wait ended without its change.
#[derive(Debug)]
pub(crate) enum Unmet<E> {
    /// `timeout` passed; the last poll's reason.
    TimedOut(String),
    Failed(E),
}

/// Polls `attempt` (fast first, see [`Backoff`]) until it is done, fails,
/// or `timeout` has passed since the first poll.
pub(crate) async fn until<T, E>(
    timeout: Duration,
    attempt: impl AsyncFnMut() -> Attempt<T, E>,
) -> Result<(T, Polled), Unmet<E>> {
    until_woken(timeout, attempt, async |backoff: &mut Backoff, _| {
        backoff.sleep().await
    })
    .await
}

/// As [`until`], but between two polls `wait` waits, given the backoff
/// and the time left: for an event that makes the next poll worth it
/// ([`Backoff::woke`]), or else the backoff's sleep.
pub(crate) async fn until_woken<T, E>(
    timeout: Duration,
    mut attempt: impl AsyncFnMut() -> Attempt<T, E>,
    mut wait: impl AsyncFnMut(&mut Backoff, Duration),
) -> Result<(T, Polled), Unmet<E>> {
    let deadline = Instant::now() + timeout;
    let mut backoff = Backoff::new();
    loop {
        match attempt().await {
            Attempt::Done(v) => return Ok((v, backoff.polled())),
            Attempt::Fail(e) => return Err(Unmet::Failed(e)),
            Attempt::NotYet(why) => {
                if Instant::now() >= deadline {
                    return Err(Unmet::TimedOut(why));
                }
            }
        }
        wait(
            &mut backoff,
            deadline.saturating_duration_since(Instant::now()),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn detection_is_bounded_by_the_last_sleep_and_the_last_poll_is_apart() {
        let mut b = Backoff::new();
        assert_eq!(b.polled().detection, None, "the first poll saw it");
        b.sleep().await;
        let d = b.polled().detection.unwrap();
        assert!(d >= Backoff::FIRST && d < Backoff::CAP, "{d:?}");
        b.sleep().await;
        b.sleep().await;
        let d = b.polled().detection.unwrap();
        assert!(d >= Backoff::CAP && d < Backoff::CAP * 2, "{d:?}");
        // A poll that takes its time is reported apart.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(b.polled().last_poll >= Duration::from_millis(50));
        assert_eq!(b.polled().detection, Some(d));
    }

    #[tokio::test]
    async fn woken_by_an_event_the_polls_start_fast_and_detection_is_the_time_since() {
        let mut b = Backoff::new();
        b.sleep().await;
        b.sleep().await;
        b.sleep().await;
        b.woke(Duration::from_millis(1500), true);
        assert_eq!(b.polled().detection, Some(Duration::ZERO));
        let t = Instant::now();
        b.sleep().await;
        assert!(t.elapsed() < Backoff::CAP, "fast again: {:?}", t.elapsed());
        // Woken by the bound on the wait: the change may be as old as the wait.
        b.woke(Duration::from_secs(2), false);
        assert_eq!(b.polled().detection, Some(Duration::from_secs(2)));
    }

    #[tokio::test]
    async fn until_polls_until_done_and_reports_the_last_reason_on_timeout() {
        let mut n = 0;
        let (v, polled) = until(Duration::from_secs(5), async || {
            n += 1;
            if n < 3 {
                Attempt::<u32, ()>::NotYet(format!("poll {n}"))
            } else {
                Attempt::Done(n)
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
        assert!(polled.detection.is_some());
        let r = until(Duration::from_millis(150), async || {
            Attempt::<(), ()>::NotYet("still not".into())
        })
        .await;
        assert!(matches!(r, Err(Unmet::TimedOut(w)) if w == "still not"));
        let r = until(Duration::from_secs(5), async || {
            Attempt::<(), _>::Fail("gone")
        })
        .await;
        assert!(matches!(r, Err(Unmet::Failed("gone"))));
    }
}
