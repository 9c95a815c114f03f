//! `--ignore-check ID`: which ids exist to be waived.

use super::SSH_REACHABLE;
use crate::checks;
use crate::error::usage;
use crate::hazards::Catalogue;

/// Refuses an `--ignore-check` id that names no check and no hazard of the
/// catalogue: a typo would silently waive nothing.
pub fn validate_waivers(ids: &[String], hazards: &Catalogue) -> anyhow::Result<()> {
    let mut known: Vec<&str> = checks::all().iter().map(|c| c.id()).collect();
    known.push(SSH_REACHABLE);
    known.extend(hazards.iter().map(|h| h.id.as_str()));
    let unknown: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !known.contains(id))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    known.sort_unstable();
    Err(usage(format!(
        "--ignore-check {}: no check or hazard has this id; known ids: {}",
        unknown.join(", "),
        known.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waivers_must_name_a_check_or_a_hazard() {
        let hazards = Catalogue::builtin();
        let some_hazard = hazards.iter().next().unwrap().id.clone();
        let ok = [
            "quorum-budget".to_string(),
            SSH_REACHABLE.into(),
            some_hazard,
        ];
        validate_waivers(&ok, &hazards).unwrap();
        let err = validate_waivers(&["quorum-budgte".into()], &hazards).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with("--ignore-check quorum-budgte: no check or hazard"),
            "{msg}"
        );
        assert!(msg.contains("quorum-budget"), "{msg}");
        assert_eq!(crate::error::exit_code_of(&err), crate::exit_code::USAGE);
    }
}
