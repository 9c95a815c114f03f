//! The plan for programs: `plan --output json`.

use serde_json::{Value, json};

use super::super::model::Plan;
use super::*;

/// The plan for scripts:
///
/// ```text
/// {"target", "cluster_id", "max_parallel",
///  "nodes": [{"name", "id", "host", "role", "leader", "availability", "current",
///             "target", "method", "packages": [{"name", "from", "to"}], "skip", "order"}],
///  "steps": [{"index", "node", "role", "action", "phase", "batch", "availability"?}],
///  "findings": [{"id", "severity", "node", "message"}]}
/// ```
/// `availability` is present on `restore-availability` steps only; absent
/// values (`method`, `skip`, `order`, a new package's `from`, a cluster-wide
/// step's `node` and `role`, a finding's `node`) are `null`.
pub fn json(plan: &Plan) -> Value {
    let nodes: Vec<Value> = plan
        .nodes
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "id": n.id,
                "host": n.host,
                "role": name_of(&n.role),
                "leader": n.leader,
                "availability": name_of(&n.availability),
                "current": n.current,
                "target": n.target.to_string(),
                "method": n.method.map(|m| m.name()),
                "packages": n.packages.iter().map(|p| json!({
                    "name": p.name,
                    "from": p.from,
                    "to": p.to,
                })).collect::<Vec<_>>(),
                "skip": n.skip,
                "order": n.order,
            })
        })
        .collect();
    let steps: Vec<Value> = plan
        .steps
        .iter()
        .map(|s| {
            let mut v = json!({
                "index": s.index,
                "node": s.node,
                "role": s.role.map(|r| name_of(&r)),
                "action": s.action.name(),
                "phase": name_of(&s.phase),
                "batch": s.batch,
            });
            if let (Some(a), Some(map)) = (s.availability, v.as_object_mut()) {
                map.insert("availability".into(), Value::String(name_of(&a)));
            }
            if let (Some(h), Some(map)) = (s.hook, v.as_object_mut()) {
                map.insert("hook".into(), Value::String(h.name().into()));
            }
            v
        })
        .collect();
    let findings = findings_json(&plan.findings);
    let mut doc = json!({
        "format_version": crate::report::FORMAT_VERSION,
        "target": plan.target.to_string(),
        "cluster_id": plan.cluster_id,
        "blocked": plan.is_blocked(),
        "max_parallel": plan.max_parallel,
        "canary": {
            "soak_secs": plan.canary.soak_secs,
            "soak_checks": plan.canary.soak_checks,
            "pause": plan.canary.pause,
        },
        "nodes": nodes,
        "steps": steps,
        "findings": findings,
    });
    // Only when not the defaults, so upgrade documents stay as they were.
    if let Some(map) = doc.as_object_mut() {
        if !plan.operation.is_upgrade() {
            map.insert("operation".into(), Value::String(name_of(&plan.operation)));
        }
        if !plan.selection.is_empty() {
            map.insert(
                "selection".into(),
                serde_json::to_value(&plan.selection).unwrap_or_default(),
            );
        }
        if !plan.prepull.is_empty() {
            map.insert(
                "prepull".into(),
                serde_json::to_value(&plan.prepull).unwrap_or_default(),
            );
        }
        if !plan.hooks.is_empty() {
            map.insert(
                "hooks".into(),
                serde_json::to_value(&plan.hooks).unwrap_or_default(),
            );
        }
    }
    doc
}
