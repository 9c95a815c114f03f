//! Facts about the cluster: the data model and how it is gathered.

pub mod gather;
pub mod host;
pub mod model;
