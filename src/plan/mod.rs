//! Planning: facts + options → an ordered plan. Pure: no I/O.

pub mod build;
pub mod model;

pub use build::{PlanOptions, build};
pub use model::{Action, Plan, PlanNode, Step};
