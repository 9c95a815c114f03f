//! Planning: facts + options → an ordered plan. Pure: no I/O (except
//! [`file`], which saves and loads a plan).

mod build;
pub(crate) mod compare;
pub mod file;
pub mod model;
pub(crate) mod render;
pub mod rollback;
pub mod select;
mod steps;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod scope_tests;
#[cfg(test)]
pub(crate) mod testutil;

pub use build::{PlanOptions, build};
pub use file::{digest, load, save};
pub use model::{
    Action, Canary, ImageTransfer, Operation, PLAN_FORMAT, Phase, Plan, PlanNode, Staged, Step,
};
pub use render::{TABLE_WIDTH, json, table, table_with_width};
pub use select::Selection;
