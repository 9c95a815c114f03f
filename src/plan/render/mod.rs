//! The plan for people and for programs.
//!
//! [`table`] prints it like `kubeadm upgrade plan`: the nodes, the order of
//! the steps, the findings and a verdict. [`json`] gives it a stable shape for
//! scripts (`plan --json`). Both are pure and deterministic: no colours, no
//! terminal detection, a fixed width. At scale the table groups alike nodes
//! ([`group`]); `--wide` ([`table_for`]) lists every one, JSON always does.

use comfy_table::{
    Cell, ColumnConstraint, ContentArrangement, ContentLineStyle, LineStyle, Table, TableStyle,
    Width,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::checks::{Finding, Severity};
use crate::facts::model::{Availability, Role};

use super::model::{Action, Plan, PlanNode};

pub(crate) mod group;
mod json;
mod steps;

pub use json::json;
use steps::steps_text;

/// Width of [`table`]: fixed, so the output does not depend on the terminal.
pub const TABLE_WIDTH: u16 = 120;

/// The plan as text for an operator, [`TABLE_WIDTH`] columns wide, alike
/// nodes grouped.
pub fn table(plan: &Plan) -> String {
    table_with(plan, TABLE_WIDTH, false)
}

/// [`table`], or with `wide` every node on its own row and steps (`--wide`).
pub fn table_for(plan: &Plan, wide: bool) -> String {
    table_with(plan, TABLE_WIDTH, wide)
}

/// [`table`] for a given width (at least 80 is sensible; long names and
/// messages wrap, nothing is cut).
pub fn table_with_width(plan: &Plan, width: u16) -> String {
    table_with(plan, width, false)
}

/// [`table_for`] for a given width.
pub fn table_with(plan: &Plan, width: u16, wide: bool) -> String {
    let width = width.max(40);
    let mut out = String::new();
    match &plan.reverts_run {
        Some(run) => out.push_str(&format!(
            "Rollback plan for swarm {}: reverting the nodes run {run} upgraded to Docker Engine {}, from their backups\n\n",
            plan.cluster_id, plan.target
        )),
        None if !plan.operation.is_upgrade() => out.push_str(&format!(
            "Restart plan for swarm {}: each engine restarted at the version it runs, max parallel {}\n\n",
            plan.cluster_id, plan.max_parallel
        )),
        None => out.push_str(&format!(
            "Upgrade plan for swarm {}: Docker Engine {}, max parallel {}\n\n",
            plan.cluster_id, plan.target, plan.max_parallel
        )),
    }
    if plan.steps.iter().any(|s| s.action == Action::Reboot) {
        let text = format!(
            "Reboot (--reboot): each host is rebooted once its engine is stopped{}, then waited for (SSH back with a \
             new boot identity, within --reboot-timeout) and its engine verified.",
            if plan.operation.is_upgrade() {
                " and the new one installed"
            } else {
                ""
            }
        );
        out.push_str(&wrap_words(&text, usize::from(width)));
        out.push_str("\n\n");
    }
    if !plan.selection.is_empty() {
        out.push_str(&format!(
            "Selected: {}\n\n",
            selection_text(&plan.selection)
        ));
    }
    if let Some(c) = canary_text(plan) {
        out.push_str(&wrap_words(&c, usize::from(width)));
        out.push_str("\n\n");
    }
    if !plan.hooks.is_empty() {
        out.push_str(&hooks_text(plan));
        out.push('\n');
    }
    out.push_str(&nodes_table(plan, width, wide));
    out.push_str("\n\n");
    out.push_str(&steps_text(plan, width, wide));
    out.push('\n');
    if !plan.prepull.is_empty() {
        out.push_str(&prepull_text(plan, usize::from(width)));
        out.push('\n');
    }
    out.push_str(&findings_text(&plan.findings, width));
    out.push('\n');
    out.push_str(&verdict(plan));
    out.push('\n');
    out
}

/// `--prepull`: which image goes to which node, and how.
fn prepull_text(plan: &Plan, width: usize) -> String {
    let mut out = "Pre-pull (before any drain; each verified by image ID):\n".to_string();
    for t in &plan.prepull {
        let how = match &t.from {
            Some(from) => format!("copied from {from}"),
            None => "pulled by its engine (no node holds it)".to_string(),
        };
        let line = wrap_words(&format!("{} → {}: {how}", t.image, t.node), width - 4);
        out.push_str(&format!("  {}\n", line.replace('\n', "\n    ")));
    }
    out
}

/// The operator's hooks: where each runs, for which nodes, and its command.
fn hooks_text(plan: &Plan) -> String {
    let mut out = String::from("Hooks (each step `hook POINT` runs them in this order):\n");
    for h in &plan.hooks {
        let mut scope = vec![];
        if !h.nodes.is_empty() {
            scope.push(format!("nodes {}", h.nodes.join(",")));
        }
        if let Some(r) = h.role {
            scope.push(format!("{}s", name_of(&r)));
        }
        out.push_str(&format!(
            "  {:<12} on the {:<10} timeout {:>5}s  {}{}\n",
            h.at.name(),
            name_of(&h.run),
            h.timeout_secs,
            if scope.is_empty() {
                String::new()
            } else {
                format!("({}) ", scope.join("; "))
            },
            h.command
        ));
    }
    out
}

/// `text` in lines of at most `width` characters, broken between words.
fn wrap_words(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = vec![];
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines.join("\n")
}

/// Which nodes are the canaries and what follows them (soak, pause);
/// nothing when neither is asked for (every node is verified anyway).
fn canary_text(plan: &Plan) -> Option<String> {
    if plan.reverts_run.is_some() || (plan.canary.soak_secs == 0 && !plan.canary.pause) {
        return None;
    }
    let name = |id: &str| {
        plan.nodes
            .iter()
            .find(|n| n.id == id)
            .map_or(id.to_string(), |n| n.name.clone())
    };
    // The canaries are the nodes soaked; without a soak, the first manager
    // and the first worker batch are canaries all the same.
    let mut soaked: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Soak)
        .filter_map(|s| s.node_id.as_deref().map(name))
        .collect();
    if soaked.is_empty() {
        let first = |role: Role| {
            plan.steps
                .iter()
                .find(|s| s.role == Some(role) && s.node_id.is_some())
                .map(|s| s.batch)
        };
        for role in [Role::Manager, Role::Worker] {
            if let Some(b) = first(role) {
                for s in plan.steps.iter().filter(|s| s.batch == b) {
                    if let Some(n) = s.node_id.as_deref().map(name)
                        && !soaked.contains(&n)
                    {
                        soaked.push(n);
                    }
                }
            }
        }
    }
    if soaked.is_empty() {
        return None;
    }
    let c = plan.canary;
    let soak = if c.soak_secs == 0 {
        "no soak".to_string()
    } else {
        format!(
            "soaked {} after they are verified, verify and verify-services passing {} times in a row",
            humantime::format_duration(c.soak()),
            c.soak_checks.max(1)
        )
    };
    let pause = if c.pause {
        "; then the run pauses until `swarm-upgrade continue`"
    } else {
        ""
    };
    Some(format!(
        "Canaries (the first manager and the first worker batch): {}; {soak}{pause}. A failing canary is rolled back and stops the run.",
        soaked.join(", ")
    ))
}

/// No borders, a rule under the header, two spaces between columns: reads
/// like `kubectl get` output and stays readable with multi-line cells.
const STYLE: TableStyle = TableStyle::new()
    .header_lines(ContentLineStyle::none().junction(' '))
    .header_separator(LineStyle::none().fill('-').junction(' '))
    .content_lines(ContentLineStyle::none().junction(' '));

/// Left and right padding of every column; with the junction, columns are
/// two spaces apart.
const PADDING: (u16, u16) = (0, 1);

fn new_table(width: u16, header: &[&str]) -> Table {
    let mut t = Table::new();
    t.force_no_tty()
        .load_style(STYLE)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width)
        .set_header(header.to_vec());
    for c in t.column_iter_mut() {
        c.set_padding(PADDING);
    }
    t
}

/// Rendered width of a column holding `cells` (and its header).
fn column_width<'a>(cells: impl Iterator<Item = &'a str>) -> usize {
    cells
        .flat_map(str::lines)
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
}

fn nodes_table(plan: &Plan, width: u16, wide: bool) -> String {
    const HEADER: [&str; 8] = [
        "ORDER",
        "NODE",
        "ROLE",
        "AVAILABILITY",
        "CURRENT",
        "TARGET",
        "METHOD",
        "PACKAGES",
    ];
    let dash = || "-".to_string();
    let groups = group::node_rows(plan, wide);
    let rows: Vec<[String; 7]> = groups
        .iter()
        .map(|r| {
            let nodes = &plan.nodes[r.clone()];
            let n = &nodes[0];
            let upgraded = n.skip.is_none();
            let (order, name) = if nodes.len() == 1 {
                (n.order.map_or_else(dash, |o| o.to_string()), n.name.clone())
            } else {
                (group::orders(nodes), group::names(nodes))
            };
            [
                order,
                name,
                role_label(n).to_string(),
                name_of(&n.availability),
                n.current.clone(),
                if upgraded {
                    n.target.to_string()
                } else {
                    dash()
                },
                n.method.map_or_else(dash, |m| m.name().to_string()),
            ]
        })
        .collect();
    // The short columns keep their width; PACKAGES gets the rest, and a
    // package that does not fit there breaks before its arrow.
    let widths: Vec<usize> = (0..7)
        .map(|i| column_width(rows.iter().map(|r| r[i].as_str()).chain([HEADER[i]])))
        .collect();
    let mut t = new_table(width, &HEADER);
    let room = last_column_room(&mut t, &widths, width, 24);
    for (r, row) in groups.iter().zip(rows) {
        let mut cells: Vec<Cell> = row.into_iter().map(Cell::new).collect();
        cells.push(Cell::new(packages_cell(
            &plan.nodes[r.start],
            room,
            !plan.operation.is_upgrade(),
        )));
        t.add_row(cells);
    }
    let mut out = trim_lines(&t.to_string());
    let grouped: usize = groups.iter().filter(|r| r.len() > 1).map(|r| r.len()).sum();
    if grouped > 0 {
        out.push_str(&format!(
            "\n{} nodes grouped; --wide lists every node",
            group::thousands(grouped)
        ));
    }
    out
}

/// Lets the leading columns (content `widths`) keep their width when the
/// last column still gets `min` characters, else lets them wrap too while
/// the last column keeps `min`. Returns the last column's room.
fn last_column_room(t: &mut Table, widths: &[usize], width: u16, min: u16) -> usize {
    let pad = usize::from(PADDING.0 + PADDING.1);
    // Every column: content, padding, and the junction after it.
    let taken: usize = widths.iter().map(|w| w + pad + 1).sum::<usize>() + pad;
    let room = usize::from(width).saturating_sub(taken);
    if room >= usize::from(min) {
        for i in 0..widths.len() {
            if let Some(c) = t.column_mut(i) {
                c.set_constraint(ColumnConstraint::ContentWidth);
            }
        }
        room
    } else {
        if let Some(c) = t.column_mut(widths.len()) {
            c.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(min)));
        }
        usize::from(min)
    }
}

fn role_label(n: &PlanNode) -> &'static str {
    match (n.role, n.leader) {
        (Role::Manager, true) => "manager (leader)",
        (Role::Manager, false) => "manager",
        (Role::Worker, _) => "worker",
    }
}

/// One line per package, `name from → to` (`name (new) → to`); when that
/// is wider than `room`, the arrow goes to an indented second line.
fn packages_cell(n: &PlanNode, room: usize, restart: bool) -> String {
    if let Some(reason) = &n.skip {
        return format!("skipped: {reason}");
    }
    if restart {
        return "engine restarted, packages unchanged".into();
    }
    if n.packages.is_empty() {
        return match &n.bundle {
            Some(bundle) => format!("static binaries from {bundle} → {}", n.target),
            None => format!("static binaries → {}", n.target),
        };
    }
    let mut lines = vec![];
    for p in &n.packages {
        let from = p.from.as_deref().unwrap_or("(new)");
        let line = format!("{} {from} → {}", p.name, p.to);
        if line.chars().count() <= room {
            lines.push(line);
        } else {
            lines.push(format!("{} {from}", p.name));
            lines.push(format!("  → {}", p.to));
        }
    }
    lines.join("\n")
}

/// Findings as `plan --json` and `check --json` give them.
pub(crate) fn findings_json(findings: &[Finding]) -> Vec<Value> {
    findings
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "severity": name_of(&f.severity),
                "node": f.node,
                "message": f.message,
            })
        })
        .collect()
}

/// The findings table (also `swarm-upgrade check`'s output).
pub(crate) fn findings_text(findings: &[Finding], width: u16) -> String {
    if findings.is_empty() {
        return "Findings: no findings.\n".to_string();
    }
    const HEADER: [&str; 4] = ["SEVERITY", "CHECK", "NODE", "MESSAGE"];
    let rows: Vec<[&str; 4]> = findings
        .iter()
        .map(|f| {
            [
                f.severity.label(),
                f.id.as_str(),
                f.node.as_deref().unwrap_or("-"),
                f.message.as_str(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..3)
        .map(|i| column_width(rows.iter().map(|r| r[i]).chain([HEADER[i]])))
        .collect();
    let mut t = new_table(width, &HEADER);
    last_column_room(&mut t, &widths, width, 30);
    for row in rows {
        t.add_row(row.to_vec());
    }
    format!(
        "Findings ({}):\n{}\n",
        findings.len(),
        trim_lines(&t.to_string())
    )
}

fn verdict(plan: &Plan) -> String {
    let blockers: Vec<&Finding> = plan
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Block)
        .collect();
    if !blockers.is_empty() {
        let what: Vec<String> = blockers
            .iter()
            .map(|f| match &f.node {
                Some(node) => format!("{} ({node})", f.id),
                None => f.id.clone(),
            })
            .collect();
        return format!(
            "blocked by {} finding(s): {}",
            blockers.len(),
            what.join(", ")
        );
    }
    let upgraded = plan.nodes.iter().filter(|n| n.skip.is_none()).count();
    let warnings = plan
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warn)
        .count();
    let warned = if warnings > 0 {
        format!(", {warnings} warning(s)")
    } else {
        String::new()
    };
    // A rollback plan reverts nodes, each to its own old version.
    let (doing, to) = match plan.reverts_run {
        Some(_) => ("revert", "reverting"),
        None if !plan.operation.is_upgrade() => ("restart", "restarting"),
        None => ("upgrade", "upgrading"),
    };
    if upgraded == 0 {
        return match &plan.reverts_run {
            Some(run) => format!("plan ready: nothing to do, run {run} upgraded no node{warned}"),
            None if !plan.operation.is_upgrade() || !plan.selection.is_empty() => {
                format!("plan ready: nothing to do, no node in scope{warned}")
            }
            None => format!(
                "plan ready: nothing to do, no node needs {to} to {}{warned}",
                plan.target
            ),
        };
    }
    format!(
        "plan ready: {upgraded} of {} node(s) to {doing} in {} steps{warned}",
        plan.nodes.len(),
        plan.steps.len()
    )
}

/// comfy-table pads the last column; trailing blanks only make diffs noisy.
fn trim_lines(s: &str) -> String {
    s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}

/// The serde name of a unit enum variant (`drain`, `debian-apt`, ...), the
/// same spelling the plan file uses.
fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// `--nodes a,b --exclude c --selector role=worker`, as given.
fn selection_text(s: &crate::plan::Selection) -> String {
    let mut parts = vec![];
    if !s.nodes.is_empty() {
        parts.push(format!("--nodes {}", s.nodes.join(",")));
    }
    if !s.exclude.is_empty() {
        parts.push(format!("--exclude {}", s.exclude.join(",")));
    }
    for sel in &s.selectors {
        parts.push(format!("--selector {sel}"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testutil::{blocked_plan, lab_plan};

    fn fits(text: &str, width: u16) {
        for line in text.lines() {
            assert!(
                line.chars().count() <= usize::from(width),
                "wider than {width}: {line:?}"
            );
        }
    }

    #[test]
    fn a_prepull_step_and_its_transfers_are_shown_before_the_managers() {
        let facts = crate::plan::testutil::lab_facts();
        let w = |i: usize| {
            facts
                .cluster
                .nodes
                .iter()
                .filter(|n| n.role == Role::Worker)
                .nth(i)
        };
        let (w1, w2) = (w(0).unwrap(), w(1).unwrap());
        let plan = crate::plan::build(
            &facts,
            &crate::plan::testutil::all_resolved(&facts),
            vec![],
            &crate::plan::PlanOptions {
                prepull: vec![crate::plan::ImageTransfer {
                    image: "app:dev".into(),
                    node_id: w2.id.clone(),
                    node: w2.hostname.clone(),
                    from_id: Some(w1.id.clone()),
                    from: Some(w1.hostname.clone()),
                }],
                ..crate::plan::testutil::opts(1)
            },
        );
        assert_eq!(plan.steps[0].action, Action::Prepull);
        assert_eq!(plan.steps[0].node, None);
        assert!(
            plan.steps[1..]
                .iter()
                .all(|s| s.batch > plan.steps[0].batch)
        );
        let text = table_with_width(&plan, 100);
        fits(&text, 100);
        assert!(
            text.contains(&format!(
                "Pre-pull (before any drain; each verified by image ID):\n  app:dev → {}: copied from {}\n",
                w2.hostname, w1.hostname
            )),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l.contains(" 1  before any drain:")
                && l.contains("(swarm)")
                && l.ends_with("prepull")),
            "{text}"
        );
        assert!(text.contains("managers 1/3"), "{text}");
        assert_eq!(json(&plan)["prepull"][0]["from"], w1.hostname.as_str());
    }

    #[test]
    fn a_rollback_plan_says_revert() {
        let mut plan = lab_plan();
        assert!(verdict(&plan).starts_with("plan ready: 5 of 5 node(s) to upgrade in"));
        plan.reverts_run = Some("r1".into());
        assert!(
            verdict(&plan).starts_with("plan ready: 5 of 5 node(s) to revert in"),
            "{}",
            verdict(&plan)
        );
    }

    #[test]
    fn lab_table() {
        let text = table(&lab_plan());
        fits(&text, TABLE_WIDTH);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn wide_tables_keep_each_package_on_one_line() {
        let text = table_with_width(&lab_plan(), 160);
        fits(&text, 160);
        assert!(text.contains("docker.io 20.10.24+dfsg1-1+deb12u1 → 26.1.5+dfsg1-9+deb13u1\n"));
        assert!(text.contains("docker-cli (new) → 26.1.5+dfsg1-9+deb13u1\n"));
        assert!(text.contains("containerd 1.6.20~ds1-1+b1 → 1.7.24~ds1-6+deb13u1\n"));
    }

    #[test]
    fn static_binaries_show_their_bundle() {
        let mut plan = lab_plan();
        let w2 = plan.nodes.iter_mut().find(|n| n.name == "lab-w2").unwrap();
        w2.method = Some(crate::version::resolve::Method::StaticBinaries);
        w2.packages.clear();
        w2.bundle = Some("/srv/docker-26.1.5.tgz".into());
        let text = table_with_width(&plan, 160);
        assert!(
            text.contains(
                "static-binaries  static binaries from /srv/docker-26.1.5.tgz → 26.1.5\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn lab_json() {
        insta::assert_json_snapshot!(json(&lab_plan()));
    }

    #[test]
    fn blocked_table() {
        let text = table(&blocked_plan());
        fits(&text, TABLE_WIDTH);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn blocked_json() {
        insta::assert_json_snapshot!(json(&blocked_plan()));
    }
}
