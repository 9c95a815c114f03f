//! `group_vars/` and `host_vars/` next to an inventory file.
//!
//! Only for the fallback readers: `ansible-inventory` reads these itself.
//! Vault-encrypted files are skipped, as they cannot be decrypted here.

use std::path::{Path, PathBuf};

use super::model::{Model, Vars};
use super::yaml::{YVars, yaml_vars};
use crate::error::usage;

pub(super) fn read_var_dirs(m: &mut Model, base: &Path) -> anyhow::Result<()> {
    let groups: Vec<String> = m.groups.keys().cloned().collect();
    for g in groups {
        let vars = read_var_files(&base.join("group_vars"), &g)?;
        m.group(&g).dir_vars = vars;
    }
    let hosts: Vec<String> = m.hosts.keys().cloned().collect();
    for h in hosts {
        let vars = read_var_files(&base.join("host_vars"), &h)?;
        if let Some(host) = m.hosts.get_mut(&h) {
            host.dir_vars = vars;
        }
    }
    Ok(())
}

/// `DIR/NAME`, `DIR/NAME.{yml,yaml,json}`, or the files of `DIR/NAME/` (by name).
fn read_var_files(dir: &Path, name: &str) -> anyhow::Result<Vars> {
    let mut files = vec![];
    for ext in ["", ".yml", ".yaml", ".json"] {
        let p = dir.join(format!("{name}{ext}"));
        if p.is_file() {
            files.push(p);
        } else if ext.is_empty() && p.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| usage(format!("{}: cannot read: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && match f.extension().and_then(|e| e.to_str()) {
                            None => !f
                                .file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with('.')),
                            Some(e) => matches!(e, "yml" | "yaml" | "json"),
                        }
                })
                .collect();
            inner.sort();
            files.extend(inner);
        }
    }
    let mut vars = Vars::new();
    for f in files {
        let text = std::fs::read_to_string(&f)
            .map_err(|e| usage(format!("{}: cannot read: {e}", f.display())))?;
        if text.starts_with("$ANSIBLE_VAULT") {
            continue;
        }
        let v: YVars = serde_saphyr::from_str(&text).map_err(|e| {
            usage(format!(
                "{}: {}\n  expected a mapping of variables, e.g. `ansible_user: ops`",
                f.display(),
                e.to_string().trim_end()
            ))
        })?;
        vars.extend(yaml_vars(&f, v));
    }
    Ok(vars)
}
