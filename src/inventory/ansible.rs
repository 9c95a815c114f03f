//! Ansible inventories (placeholder; being written).

use std::path::Path;

use super::Inventory;
use crate::error::usage;

pub fn load(path: &Path) -> anyhow::Result<Inventory> {
    Err(usage(format!(
        "{}: Ansible inventories are not supported yet",
        path.display()
    )))
}
