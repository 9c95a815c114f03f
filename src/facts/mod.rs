//! The facts about a cluster: plain data that the checks and the planner
//! read. Gathering them is [`crate::cluster`]'s job.

pub mod budget;
mod gathered;
pub mod model;

pub use gathered::Gathered;
