//! The run lease kept in the swarm, so that two operators on two machines
//! cannot upgrade the same cluster at once: a swarm config whose labels say
//! which run holds it, who runs it, and until when.

use std::time::{Duration, SystemTime};

use crate::error::Error;

/// The name of the lease object (a swarm config: names are unique, so
/// creating it is an atomic test-and-set; only its labels change after).
pub const LEASE_NAME: &str = "swarm-upgrade-lease";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub run_id: String,
    pub owner: String,
    pub started_at: String,
    /// RFC 3339, on the clock of the machine that wrote it: shown to
    /// operators, and the fallback when the swarm's clock cannot be read.
    pub expires_at: String,
    /// How long the lease lasts after its last write (0: unknown, a lease
    /// written by an older version). Expiry is judged on the swarm
    /// manager's clock: the config's `UpdatedAt` plus this, against the
    /// manager's own time ([`expired_on_swarm_clock`]).
    pub ttl_secs: u64,
    /// What an operator asked of the run through the swarm
    /// (`swarm-upgrade pause|continue|abort`, from any machine).
    pub control: Control,
}

/// An operator's request to the running process, kept in the lease's
/// `control` label: the run's renewals keep it, and the run obeys it at its
/// next safe point (no engine down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Control {
    /// No request (no label): the run goes on.
    #[default]
    Run,
    /// Wait at the next safe point, renewing the lease, until `continue`.
    Pause,
    /// Stop at the next safe point, resumable (exit 6).
    Abort,
}

impl Control {
    /// The label's value; `None` for [`Control::Run`] (no label).
    pub fn label(self) -> Option<&'static str> {
        match self {
            Control::Run => None,
            Control::Pause => Some("pause"),
            Control::Abort => Some("abort"),
        }
    }

    /// From the label (an unknown value is ignored: an older or newer
    /// swarm-upgrade wrote it, and the run goes on).
    pub fn from_label(v: Option<&str>) -> Control {
        match v {
            Some("pause") => Control::Pause,
            Some("abort") => Control::Abort,
            _ => Control::Run,
        }
    }
}

impl Lease {
    /// The lease of run `run_id`, valid for `ttl` from now.
    pub fn new(run_id: &str, owner: &str, started_at: &str, ttl: Duration) -> Lease {
        Lease {
            run_id: run_id.to_string(),
            owner: owner.to_string(),
            started_at: started_at.to_string(),
            expires_at: humantime::format_rfc3339_seconds(SystemTime::now() + ttl).to_string(),
            ttl_secs: ttl.as_secs(),
            control: Control::Run,
        }
    }

    /// Exit 75, naming who holds the lease and, when it is stale, how to break it.
    pub fn held_error(&self) -> anyhow::Error {
        let stale = expired(&self.expires_at);
        Error::Locked(format!(
            "the swarm is being upgraded by run {} of {} (started {}, lease {} {}){}",
            self.run_id,
            self.owner,
            self.started_at,
            if stale { "expired" } else { "expires" },
            self.expires_at,
            if stale {
                "; that run is gone: pass --break-lock to take over"
            } else {
                "; wait for it to finish, or for its lease to expire if it died"
            }
        ))
        .into()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    Acquired,
    /// Someone else's lease (or ours from an earlier process: same run id).
    Held(Lease),
}

/// Whether an RFC 3339 expiry lies in the past (an unreadable one counts as past).
pub fn expired(expires_at: &str) -> bool {
    humantime::parse_rfc3339_weak(expires_at).map_or(true, |t| t < SystemTime::now())
}

/// Whether `lease`, last written at `updated_at` (the swarm config's
/// `UpdatedAt`), has expired at `swarm_now` (the manager's `SystemTime`):
/// both times come from the swarm's managers, so a breaker whose own clock
/// runs ahead cannot take a live run's lease. Without them (or without a
/// TTL in the lease), the written expiry on the local clock decides.
pub fn expired_on_swarm_clock(
    lease: &Lease,
    updated_at: Option<&str>,
    swarm_now: Option<&str>,
) -> bool {
    match (
        lease.ttl_secs,
        updated_at.and_then(parse_time),
        swarm_now.and_then(parse_time),
    ) {
        (ttl, Some(written), Some(now)) if ttl > 0 => now > written + Duration::from_secs(ttl),
        _ => expired(&lease.expires_at),
    }
}

/// RFC 3339 with a `Z` or a `±HH:MM` offset (the engine writes its local
/// time), to a point in time.
fn parse_time(t: &str) -> Option<SystemTime> {
    let t = t.trim();
    if let Some(naive) = t.strip_suffix('Z') {
        return humantime::parse_rfc3339_weak(&format!("{naive}Z")).ok();
    }
    let (naive, sign, offset) = match t.len().checked_sub(6).map(|i| t.split_at(i)) {
        Some((naive, off)) if off.starts_with('+') => (naive, 1i64, &off[1..]),
        Some((naive, off)) if off.starts_with('-') && naive.contains('T') => (naive, -1, &off[1..]),
        _ => return None,
    };
    let (h, m) = offset.split_once(':')?;
    let secs = (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60) * sign;
    let local = humantime::parse_rfc3339_weak(&format!("{naive}Z")).ok()?;
    // Local time = UTC + offset, so UTC = local - offset.
    if secs >= 0 {
        local.checked_sub(Duration::from_secs(secs as u64))
    } else {
        local.checked_add(Duration::from_secs((-secs) as u64))
    }
}

/// The lease is no longer this run's (taken by another run, or gone from
/// the swarm): the run must stop at its next safe point. Returned by
/// [`crate::exec::ops::Ops::renew_lease`]; any other renewal error (no
/// manager answers) is retried until the lease would have expired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the run lease was lost: {0}")]
pub struct LeaseLost(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ttl_secs: u64, expires_at: &str) -> Lease {
        Lease {
            run_id: "r1".into(),
            owner: "ops@a".into(),
            started_at: "2026-12-02T10:00:00Z".into(),
            expires_at: expires_at.into(),
            ttl_secs,
            control: Control::Run,
        }
    }

    #[test]
    fn expiry_is_judged_on_the_swarms_clock_not_the_breakers() {
        // Written at 10:00:00 on the swarm's clock with a 15 min TTL; its
        // writer's clock said it expires in 2100 (skewed), the breaker's
        // clock is irrelevant: only the manager's time counts.
        let l = lease(900, "2100-01-01T00:00:00Z");
        let written = Some("2026-12-02T10:00:00.123456789Z");
        assert!(!expired_on_swarm_clock(
            &l,
            written,
            Some("2026-12-02T10:14:59Z")
        ));
        assert!(expired_on_swarm_clock(
            &l,
            written,
            Some("2026-12-02T10:15:01Z")
        ));
        // The manager reports local time with an offset: 11:14 at +01:00 is 10:14 UTC.
        assert!(!expired_on_swarm_clock(
            &l,
            written,
            Some("2026-12-02T11:14:00.5+01:00")
        ));
        assert!(expired_on_swarm_clock(
            &l,
            written,
            Some("2026-12-02T05:16:00-05:00")
        ));
    }

    #[test]
    fn without_the_swarms_times_or_a_ttl_the_written_expiry_decides() {
        let past = lease(0, "2000-01-01T00:00:00Z");
        assert!(expired_on_swarm_clock(
            &past,
            Some("2026-12-02T10:00:00Z"),
            Some("2026-12-02T10:00:01Z")
        ));
        let future = lease(900, "2100-01-01T00:00:00Z");
        assert!(!expired_on_swarm_clock(
            &future,
            None,
            Some("2026-12-02T10:00:00Z")
        ));
        assert!(!expired_on_swarm_clock(
            &future,
            Some("garbage"),
            Some("2026-12-02T10:00:00Z")
        ));
    }
}
