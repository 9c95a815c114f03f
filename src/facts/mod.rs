//! The facts about a cluster: plain data that the checks and the planner
//! read. Gathering them is [`crate::cluster`]'s job.

mod gathered;
pub mod model;

pub use gathered::Gathered;
