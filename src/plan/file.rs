//! The saved plan: `plan --out FILE` writes it, `apply FILE` runs exactly it.
//!
//! The file is `{"sha256": HEX, "plan": PLAN}`, where HEX is the SHA-256 of
//! the *canonical JSON* of PLAN: no whitespace, object keys sorted by their
//! UTF-8 bytes, strings and numbers as `serde_json` writes them. Hashing the
//! canonical form (not the bytes on disk) lets the file be re-indented or
//! pretty-printed without breaking it, while any change of content (a node,
//! an order, an added or removed field) is refused on load.

use std::fs;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::usage;

use super::model::{PLAN_FORMAT, Plan};

/// The two keys of a plan file, in the order they are written.
#[derive(Serialize)]
struct PlanFile<'a> {
    sha256: String,
    plan: &'a Plan,
}

/// Lowercase hex SHA-256 of the canonical JSON of `plan`: what a plan file
/// records, and a short way to name a plan in logs.
pub fn digest(plan: &Plan) -> anyhow::Result<String> {
    let value = serde_json::to_value(plan).context("cannot serialize the plan")?;
    Ok(digest_of(&value))
}

fn digest_of(plan: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(plan, &mut canonical);
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compact JSON with object keys sorted, whatever order the map keeps them
/// in (serde_json's `preserve_order` feature may be on in the build).
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Writes `plan` to `path` with its hash, atomically: a temporary file in the
/// same directory (mode 0600), fsynced, renamed over `path`, and the
/// directory fsynced. A reader sees the old file or the new one, never a part.
pub fn save(plan: &Plan, path: &Path) -> anyhow::Result<()> {
    let what = || format!("cannot write plan file {}", path.display());
    let file = PlanFile {
        sha256: digest(plan)?,
        plan,
    };
    let mut body = serde_json::to_vec_pretty(&file).context("cannot serialize the plan")?;
    body.push(b'\n');

    crate::files::write_atomic(path, &body).with_context(what)
}

/// Reads a plan written by [`save`]. Refuses, with a usage error naming the
/// file and the problem, anything that is not such a file, a plan of another
/// format version, and a plan changed since it was written.
pub fn load(path: &Path) -> anyhow::Result<Plan> {
    let shown = path.display();
    let again = "make a new one with `swarm-upgrade plan --out`";
    let text = fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read plan file {shown}: {e}")))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        usage(format!(
            "{shown} is not a plan file: invalid JSON ({e}); {again}"
        ))
    })?;
    let Value::Object(top) = value else {
        return Err(usage(format!(
            "{shown} is not a plan file: expected a JSON object with \"sha256\" and \"plan\"; {again}"
        )));
    };
    if let Some(extra) = top.keys().find(|k| *k != "sha256" && *k != "plan") {
        return Err(usage(format!(
            "{shown} is not a plan file as swarm-upgrade writes it: unexpected key \"{extra}\" \
             next to \"sha256\" and \"plan\"; {again}"
        )));
    }
    let Some(Value::String(recorded)) = top.get("sha256") else {
        return Err(usage(format!(
            "{shown} is not a plan file: no \"sha256\" string; {again}"
        )));
    };
    let Some(plan) = top.get("plan").filter(|p| p.is_object()) else {
        return Err(usage(format!(
            "{shown} is not a plan file: no \"plan\" object; {again}"
        )));
    };
    match plan.get("format").and_then(Value::as_u64) {
        Some(f) if f == u64::from(PLAN_FORMAT) => {}
        Some(f) => {
            return Err(usage(format!(
                "{shown} has plan format {f}, this swarm-upgrade reads format {PLAN_FORMAT}: \
                 it was written by another version; {again} with this one"
            )));
        }
        None => {
            return Err(usage(format!(
                "{shown} is not a plan file: the plan has no numeric \"format\"; {again}"
            )));
        }
    }
    let actual = digest_of(plan);
    if !recorded.eq_ignore_ascii_case(&actual) {
        return Err(usage(format!(
            "{shown} was modified after it was written: the plan hashes to sha256 {actual} \
             but the file records {recorded}; a plan is applied only as it was made, so \
             review the change and {again}"
        )));
    }
    serde_json::from_value::<Plan>(plan.clone()).map_err(|e| {
        usage(format!(
            "{shown} does not hold a valid format {PLAN_FORMAT} plan: {e}; {again}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code_of;
    use crate::exit_code;
    use crate::plan::testutil::{blocked_plan, lab_plan};

    fn saved(plan: &Plan) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upgrade.plan.json");
        save(plan, &path).unwrap();
        (dir, path)
    }

    /// The load error for `path`, checked to be a usage error naming the file.
    fn refusal(path: &Path) -> String {
        let err = load(path).unwrap_err();
        assert_eq!(exit_code_of(&err), exit_code::USAGE, "{err:#}");
        let msg = format!("{err:#}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        msg
    }

    fn rewrite(path: &Path, f: impl FnOnce(&mut Value)) {
        let mut v: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        f(&mut v);
        fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }

    #[test]
    fn round_trip() {
        for plan in [lab_plan(), blocked_plan()] {
            let (_dir, path) = saved(&plan);
            assert_eq!(load(&path).unwrap(), plan);
            let v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(v["sha256"], Value::String(digest(&plan).unwrap()));
            assert_eq!(v["plan"]["format"], PLAN_FORMAT);
        }
    }

    #[test]
    fn file_starts_with_the_hash_and_is_private() {
        let (dir, path) = saved(&lab_plan());
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\n  \"sha256\": \""), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            ["upgrade.plan.json"],
            "no temporary file left behind"
        );
    }

    #[test]
    fn save_replaces_an_existing_file() {
        let (_dir, path) = saved(&lab_plan());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        }
        save(&blocked_plan(), &path).unwrap();
        assert_eq!(load(&path).unwrap(), blocked_plan());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn save_into_a_missing_directory_fails_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("plan.json");
        let err = save(&lab_plan(), &path).unwrap_err();
        assert!(format!("{err:#}").contains("nope/plan.json"), "{err:#}");
    }

    #[test]
    fn digest_ignores_layout_but_not_content() {
        let plan = lab_plan();
        let (_dir, path) = saved(&plan);
        // Re-indented (or compacted) by a tool: still the same plan.
        rewrite(&path, |_| {});
        let compact: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        fs::write(&path, serde_json::to_string(&compact).unwrap()).unwrap();
        assert_eq!(load(&path).unwrap(), plan);

        let mut other = plan.clone();
        other.max_parallel = 2;
        assert_ne!(digest(&other).unwrap(), digest(&plan).unwrap());
    }

    #[test]
    fn a_modified_plan_is_refused() {
        let (_dir, path) = saved(&lab_plan());
        // Someone moves the leader first.
        rewrite(&path, |v| {
            let steps = v["plan"]["steps"].as_array_mut().unwrap();
            for s in steps.iter_mut() {
                if s["node"] == "lab-m1" {
                    s["node"] = "lab-m2".into();
                } else if s["node"] == "lab-m2" {
                    s["node"] = "lab-m1".into();
                }
            }
        });
        let msg = refusal(&path);
        assert!(msg.contains("was modified after it was written"), "{msg}");
        assert!(msg.contains("swarm-upgrade plan --out"), "{msg}");
    }

    #[test]
    fn an_added_field_is_a_modification() {
        let (_dir, path) = saved(&lab_plan());
        rewrite(&path, |v| {
            v["plan"]["nodes"][0]["note"] = "fine".into();
        });
        assert!(refusal(&path).contains("was modified"));
    }

    #[test]
    fn a_changed_hash_is_refused() {
        let (_dir, path) = saved(&lab_plan());
        rewrite(&path, |v| {
            v["sha256"] = "0".repeat(64).into();
        });
        let msg = refusal(&path);
        assert!(msg.contains("the file records 0000"), "{msg}");
    }

    #[test]
    fn another_format_is_refused_even_with_a_valid_hash() {
        let (_dir, path) = saved(&lab_plan());
        rewrite(&path, |v| {
            v["plan"]["format"] = (PLAN_FORMAT + 1).into();
            v["sha256"] = digest_of(&v["plan"]).into();
        });
        let msg = refusal(&path);
        assert!(
            msg.contains(&format!(
                "plan format {}, this swarm-upgrade reads format {PLAN_FORMAT}",
                PLAN_FORMAT + 1
            )),
            "{msg}"
        );
    }

    #[test]
    fn a_hashed_but_malformed_plan_is_refused() {
        let (_dir, path) = saved(&lab_plan());
        rewrite(&path, |v| {
            v["plan"]["steps"][0]["action"] = "reformat-disks".into();
            v["sha256"] = digest_of(&v["plan"]).into();
        });
        let msg = refusal(&path);
        assert!(msg.contains("does not hold a valid format 1 plan"), "{msg}");
        assert!(msg.contains("reformat-disks"), "{msg}");
    }

    #[test]
    fn other_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        assert!(refusal(&path).contains("cannot read plan file"));

        let cases: [(&str, &str); 6] = [
            ("steps: []\n", "invalid JSON"),
            ("[]", "expected a JSON object"),
            (r#"{"plan": {"format": 1}}"#, "no \"sha256\" string"),
            (r#"{"sha256": "ab"}"#, "no \"plan\" object"),
            (r#"{"sha256": "ab", "plan": {}}"#, "no numeric \"format\""),
            (
                r#"{"sha256": "ab", "plan": {"format": 1}, "comment": "x"}"#,
                "unexpected key \"comment\"",
            ),
        ];
        for (text, expected) in cases {
            fs::write(&path, text).unwrap();
            let msg = refusal(&path);
            assert!(msg.contains(expected), "{text}: {msg}");
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v: Value = serde_json::from_str(
            r#"{"b": [{"z": 1, "a": "é\"x"}], "a": null, "c": {"y": true, "x": -1}}"#,
        )
        .unwrap();
        let mut s = String::new();
        write_canonical(&v, &mut s);
        assert_eq!(
            s,
            r#"{"a":null,"b":[{"a":"é\"x","z":1}],"c":{"x":-1,"y":true}}"#
        );
    }
}
