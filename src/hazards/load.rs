//! Reading and validating hazard files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Catalogue, Hazard};
use crate::error::usage;

/// The shipped hazards, one file per theme, compiled in.
const BUILTIN: [(&str, &str); 3] = [
    (
        "hazards/removed-options.yaml",
        include_str!("../../hazards/removed-options.yaml"),
    ),
    (
        "hazards/releases.yaml",
        include_str!("../../hazards/releases.yaml"),
    ),
    (
        "hazards/networking.yaml",
        include_str!("../../hazards/networking.yaml"),
    ),
];

/// What a hazard file holds, for error messages.
const SHAPE: &str = "a hazard file is a YAML list of hazards, each with: id, title, applies {crossing, target, current}, \
                     detect {...}, severity (block, warn, info), effect, remedy, source; see `hazards/` in the \
                     swarm-upgrade sources";

pub(super) fn load(extra: &[impl AsRef<Path>]) -> anyhow::Result<Catalogue> {
    let mut by_id = BTreeMap::new();
    for (name, text) in BUILTIN {
        for h in parse(text, Path::new(name))? {
            by_id.insert(h.id.clone(), h);
        }
    }
    for path in extra {
        for file in files(path.as_ref())? {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                usage(format!(
                    "{}: cannot read the hazard file: {e}",
                    file.display()
                ))
            })?;
            for h in parse(&text, &file)? {
                by_id.insert(h.id.clone(), h);
            }
        }
    }
    Ok(Catalogue { by_id })
}

/// A file, or the `*.yaml`/`*.yml` files of a directory, in name order.
fn files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| {
        usage(format!(
            "{}: cannot read the hazard directory: {e}",
            path.display()
        ))
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(usage(format!(
            "{}: no *.yaml hazard files in this directory",
            path.display()
        )));
    }
    Ok(files)
}

/// Parses and validates one file. Errors name the file, the line and the field.
pub(super) fn parse(text: &str, path: &Path) -> anyhow::Result<Vec<Hazard>> {
    let hazards: Vec<Hazard> = serde_saphyr::from_str(text).map_err(|e| {
        usage(format!(
            "{}: {}\n  {SHAPE}",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    let mut seen = BTreeMap::new();
    for h in &hazards {
        let nth = seen.get(&h.id).map_or(0, |_| 1);
        let line = line_of(text, &h.id, nth);
        let at = |field: &str, what: String| {
            usage(format!(
                "{}:{line}: hazard `{}`, field `{field}`: {what}",
                path.display(),
                h.id
            ))
        };
        if let Some(first) = seen.insert(h.id.clone(), line) {
            return Err(at(
                "id",
                format!("the id is also used at line {first}; give each hazard its own id"),
            ));
        }
        validate(h).map_err(|(field, what)| at(field, what))?;
    }
    Ok(hazards)
}

/// The line where the `nth` (from 0) hazard with this id starts (1-based;
/// 0 when not found).
fn line_of(text: &str, id: &str, nth: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start().trim_start_matches("- ").trim();
            l.strip_prefix("id:")
                .is_some_and(|v| v.trim().trim_matches(['"', '\'']) == id)
        })
        .nth(nth)
        .map_or(0, |(i, _)| i + 1)
}

/// The rules serde cannot express: (field, what is wrong and the fix).
fn validate(h: &Hazard) -> Result<(), (&'static str, String)> {
    let word = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    if h.id.is_empty() || !h.id.chars().all(word) {
        return Err((
            "id",
            "use lowercase letters, digits, `-` and `.` only (e.g. removed-graph-23.0)".into(),
        ));
    }
    for (field, text) in [
        ("title", &h.title),
        ("effect", &h.effect),
        ("remedy", &h.remedy),
    ] {
        if text.trim().is_empty() {
            return Err((field, "must not be empty".into()));
        }
    }
    if !h.source.starts_with("https://") {
        return Err((
            "source",
            format!(
                "`{}` is not an https URL; link the release notes or issue that confirms the hazard",
                h.source
            ),
        ));
    }
    for (field, req) in [
        ("applies.target", &h.applies.target),
        ("applies.current", &h.applies.current),
    ] {
        if let Some(req) = req
            && req.comparators.iter().any(|c| c.op == semver::Op::Caret)
        {
            return Err((
                field,
                format!(
                    "`{req}` has a comparator without an operator, which semver reads as ^ (any later \
                     minor); write it out, e.g. `=28.0.0` or `>=28.2.0, <28.3.0`"
                ),
            ));
        }
    }
    h.detect.validate()
}
