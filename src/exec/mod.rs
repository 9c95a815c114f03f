//! Executing a plan: steps, checkpoints, rollback, resume.

pub mod events;
pub mod live;
pub mod ops;
pub mod rundir;
pub mod runner;
pub mod state;
pub mod wait;
