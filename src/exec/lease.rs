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
    /// RFC 3339; a lease past its expiry is stale.
    pub expires_at: String,
}

impl Lease {
    /// The lease of run `run_id`, valid for `ttl` from now.
    pub fn new(run_id: &str, owner: &str, started_at: &str, ttl: Duration) -> Lease {
        Lease {
            run_id: run_id.to_string(),
            owner: owner.to_string(),
            started_at: started_at.to_string(),
            expires_at: humantime::format_rfc3339_seconds(SystemTime::now() + ttl).to_string(),
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

/// The lease is no longer this run's (taken by another run, or gone from
/// the swarm): the run must stop at its next safe point. Returned by
/// [`crate::exec::ops::Ops::renew_lease`]; any other renewal error (no
/// manager answers) is retried until the lease would have expired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the run lease was lost: {0}")]
pub struct LeaseLost(pub String);
