//! swarm-upgrade: upgrade the Docker Engine of a Docker Swarm cluster, one
//! verified node at a time.
//!
//! ```text
//! inventory ──► transport (SSH) ──► facts ──► checks ──► plan ──► (apply)
//!                    └─► engine (Engine API over an SSH-forwarded socket) ─┘
//! ```
//! Facts are plain data; checks and the planner are pure functions of them.

pub mod checks;
pub mod error;
pub mod exit_code;
pub mod facts;
pub mod inventory;
pub mod plan;
pub mod version;
