//! The notifications and the metrics text of scripted event streams on the
//! lab plan, to the byte.

use super::metrics::render;
use super::notify::notification;
use super::progress::{Milestone, NodeState, Progress};
use crate::exec::events::Event;
use crate::exec::state::{RunState, RunStatus, StepStatus};
use crate::plan::testutil::{LAB_CLUSTER_ID, lab_plan};
use crate::plan::{self, Plan};

const T0: f64 = 1_800_000_000.0;

fn state_of(plan: &Plan) -> RunState {
    RunState::new(
        "20261202T141500Z-abc123".into(),
        LAB_CLUSTER_ID.into(),
        plan.target.clone(),
        plan::file::digest(plan).unwrap(),
        plan.steps.len(),
        vec![],
    )
}

/// Feeds `events` one second apart; the notifications' JSON, in order.
fn feed(p: &mut Progress, events: &[Event]) -> Vec<serde_json::Value> {
    let mut docs = vec![];
    for (i, e) in events.iter().enumerate() {
        let t = T0 + i as f64;
        for m in p.observe(e, t) {
            let ts = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t),
            )
            .to_string();
            docs.push(serde_json::to_value(notification(p, &m, &ts)).unwrap());
        }
    }
    docs
}

fn started(plan: &Plan, done: usize) -> Event {
    Event::RunStarted {
        run_id: "20261202T141500Z-abc123".into(),
        steps: plan.steps.len(),
        done,
    }
}

/// Every step of `plan` from `from` (1-based) to `to`, started and finished.
fn steps(plan: &Plan, from: usize, to: usize) -> Vec<Event> {
    plan.steps[from - 1..to]
        .iter()
        .flat_map(|s| {
            [
                Event::step_started(s),
                Event::StepOutput {
                    index: s.index,
                    node: s.node.clone(),
                    text: "noise".into(),
                },
                Event::StepFinished {
                    index: s.index,
                    node: s.node.clone(),
                    action: s.action,
                    elapsed_ms: 1500 * s.index as u64,
                    detect_ms: None,
                    last_poll_ms: None,
                },
            ]
        })
        .collect()
}

fn texts(docs: &[serde_json::Value]) -> Vec<String> {
    docs.iter()
        .map(|d| format!("{}: {}", d["event"], d["text"].as_str().unwrap()))
        .collect()
}

#[test]
fn a_run_to_the_end_tells_each_node_once_and_the_run_twice() {
    let plan = lab_plan();
    let mut p = Progress::new(&plan, &state_of(&plan), &[]);
    let mut events = vec![started(&plan, 0)];
    events.extend(steps(&plan, 1, plan.steps.len()));
    events.push(Event::RunFinished {
        status: RunStatus::Done,
        elapsed_ms: 754_000,
    });
    let docs = feed(&mut p, &events);
    insta::assert_yaml_snapshot!("run_to_the_end_texts", texts(&docs));
    insta::assert_json_snapshot!("node_upgraded_document", docs[2]);
    insta::assert_json_snapshot!("run_finished_document", docs.last().unwrap());
    assert!(p.nodes.iter().all(|n| n.state == NodeState::Done));
    assert_eq!(p.steps_done, plan.steps.len());
    insta::assert_snapshot!("metrics_done", render(&p));
}

#[test]
fn a_failed_node_is_told_failed_then_rolled_back_and_the_run_says_why() {
    let plan = lab_plan();
    let mut p = Progress::new(&plan, &state_of(&plan), &[]);
    // lab-m2 upgraded; lab-m3 fails at install and is rolled back.
    let mut events = vec![started(&plan, 0)];
    events.extend(steps(&plan, 1, 11));
    events.push(Event::step_started(&plan.steps[11]));
    events.push(Event::StepFailed {
        index: 12,
        node: Some("lab-m3".into()),
        action: plan.steps[11].action,
        error: "debian-apt Install script exited with 100:\nE: Unable to fetch some archives\nE: Failed to fetch http://deb.debian.org/pool/main/d/docker.io"
            .into(),
    });
    events.push(Event::RollbackStarted {
        node: "lab-m3".into(),
        reason: "install failed".into(),
    });
    events.push(Event::RollbackFinished {
        node: "lab-m3".into(),
        ok: true,
        detail: "20.10.24 restored from the backup, verified, availability active".into(),
    });
    events.push(Event::RunFinished {
        status: RunStatus::RolledBack,
        elapsed_ms: 95_000,
    });
    let docs = feed(&mut p, &events);
    insta::assert_yaml_snapshot!("rolled_back_texts", texts(&docs));
    insta::assert_json_snapshot!("node_failed_document", docs[4]);
    let state = |n: &str| p.nodes.iter().find(|x| x.name == n).unwrap().state;
    assert_eq!(state("lab-m2"), NodeState::Done);
    assert_eq!(state("lab-m3"), NodeState::RolledBack);
    assert_eq!(state("lab-w1"), NodeState::Pending);
    insta::assert_snapshot!("metrics_rolled_back", render(&p));
}

#[test]
fn a_resumed_run_starts_from_what_is_done_and_a_stop_halts_it() {
    let plan = lab_plan();
    let mut st = state_of(&plan);
    for i in 1..=9 {
        st.step_mut(i).status = StepStatus::Done;
    }
    let mut p = Progress::new(&plan, &st, &["lab-w2".to_string()]);
    let state = |p: &Progress, n: &str| p.nodes.iter().find(|x| x.name == n).unwrap().state;
    assert_eq!(state(&p, "lab-m2"), NodeState::Done);
    assert_eq!(state(&p, "lab-m3"), NodeState::Pending);
    assert_eq!(state(&p, "lab-w2"), NodeState::Skipped);
    let mut events = vec![started(&plan, 9)];
    events.extend(steps(&plan, 10, 10));
    events.push(Event::StopRequested);
    events.push(Event::RunFinished {
        status: RunStatus::Interrupted,
        elapsed_ms: 12_000,
    });
    let docs = feed(&mut p, &events);
    assert_eq!(
        texts(&docs),
        [
            "\"run-started\": swarm-upgrade: upgrade of swarm lab0swarm0cl to 26.1.5 resumed, 9 of 48 steps already done (run 20261202T141500Z-abc123)",
            "\"node-started\": swarm-upgrade: upgrading lab-m3 (manager) from 20.10.24+dfsg1 to 26.1.5 (run 20261202T141500Z-abc123)",
            "\"run-halted\": swarm-upgrade: upgrade of swarm lab0swarm0cl to 26.1.5 halted after 12s: stop requested (Ctrl-C); `swarm-upgrade resume` continues (run 20261202T141500Z-abc123)",
        ]
    );
    assert_eq!(
        state(&p, "lab-m3"),
        NodeState::Pending,
        "stopped in the middle: neither done nor failed"
    );
    assert_eq!(p.steps_done, 10);
}

#[test]
fn a_rollback_run_tells_nodes_reverted_to_the_old_version() {
    let up = lab_plan();
    let ids: Vec<String> = up
        .nodes
        .iter()
        .filter(|n| n.order.is_some())
        .map(|n| n.id.clone())
        .collect();
    let rb = plan::rollback::build(&up, "r1", &ids);
    let mut p = Progress::new(&rb, &state_of(&rb), &[]);
    let mut events = vec![started(&rb, 0)];
    events.extend(steps(&rb, 1, 6));
    let docs = feed(&mut p, &events);
    assert_eq!(
        texts(&docs)[..3],
        [
            format!(
                "\"run-started\": swarm-upgrade: rollback of swarm lab0swarm0cl to 20.10.24 started, {} steps (run 20261202T141500Z-abc123)",
                rb.steps.len()
            ),
            "\"node-started\": swarm-upgrade: reverting lab-w2 (worker) from 26.1.5 to 20.10.24 (run 20261202T141500Z-abc123)".into(),
            "\"node-reverted\": swarm-upgrade: lab-w2 (worker) reverted to 20.10.24 in 17s (run 20261202T141500Z-abc123)".into(),
        ]
    );
    assert_eq!(docs[2]["kind"], "rollback");
}

#[test]
fn label_values_are_escaped() {
    let plan = lab_plan();
    let mut st = state_of(&plan);
    st.run_id = "a\"b\\c\nd".into();
    let p = Progress::new(&plan, &st, &[]);
    let text = render(&p);
    assert!(text.contains(r#"run_id="a\"b\\c\nd""#), "{text}");
    // Nothing is told before the run starts.
    assert!(!text.contains("swarm_upgrade_run_start_timestamp_seconds "));
    assert!(text.contains("swarm_upgrade_run_state{state=\"running\"} 0"));
}

#[test]
fn milestones_are_plain_data() {
    // The reason of a halted run is the last failure, clipped to one line.
    let plan = lab_plan();
    let mut p = Progress::new(&plan, &state_of(&plan), &[]);
    p.observe(&started(&plan, 0), T0);
    p.observe(
        &Event::LeaseLost {
            reason: "taken by run X".into(),
        },
        T0,
    );
    let m = p.observe(
        &Event::RunFinished {
            status: RunStatus::Failed,
            elapsed_ms: 1,
        },
        T0,
    );
    assert_eq!(
        m,
        [Milestone::RunEnded {
            status: RunStatus::Failed,
            elapsed_ms: 1,
            reason: Some("the run lease was lost: taken by run X".into()),
        }]
    );
    let long = "x".repeat(1000);
    p.observe(&started(&plan, 0), T0);
    let m = p.observe(
        &Event::StepFailed {
            index: 1,
            node: Some("lab-m2".into()),
            action: plan.steps[0].action,
            error: long,
        },
        T0,
    );
    let doc = notification(&p, &m[0], "t");
    assert_eq!(doc.reason.as_ref().unwrap().chars().count(), 300);
}

#[test]
fn a_pause_and_a_window_wait_are_told_once_each_and_shown_in_the_metrics() {
    let plan = lab_plan();
    let mut p = Progress::new(&plan, &state_of(&plan), &[]);
    let window = || Event::WaitingForWindow {
        opens_at: "2026-12-03T01:00:00Z".into(),
    };
    let mut events = vec![started(&plan, 0)];
    // A paused run renews its lease and says so again; the window check repeats.
    events.extend([Event::Paused, Event::Paused]);
    let docs = feed(&mut p, &events);
    assert!(
        render(&p).contains("swarm_upgrade_run_waiting{for=\"continue\"} 1"),
        "{}",
        render(&p)
    );
    let mut more = feed(&mut p, &[Event::Continued, window(), window()]);
    assert!(render(&p).contains("swarm_upgrade_run_waiting{for=\"window\"} 1"));
    more.extend(feed(&mut p, &steps(&plan, 1, 1)));
    let text = render(&p);
    assert!(
        text.contains("swarm_upgrade_run_waiting{for=\"window\"} 0")
            && text.contains("swarm_upgrade_run_waiting{for=\"continue\"} 0"),
        "a started step ends the wait: {text}"
    );
    let all: Vec<_> = docs.into_iter().chain(more).collect();
    assert_eq!(
        texts(&all)[..4],
        [
            "\"run-started\": swarm-upgrade: upgrade of swarm lab0swarm0cl to 26.1.5 started, 48 steps (run 20261202T141500Z-abc123)",
            "\"run-paused\": swarm-upgrade: upgrade of swarm lab0swarm0cl to 26.1.5 paused at a safe point, every engine running; `swarm-upgrade continue` goes on, `swarm-upgrade abort` stops it (run 20261202T141500Z-abc123)",
            "\"run-continued\": swarm-upgrade: upgrade of swarm lab0swarm0cl to 26.1.5 continued (run 20261202T141500Z-abc123)",
            "\"run-waiting-for-window\": swarm-upgrade: upgrade of swarm lab0swarm0cl to 26.1.5 waits for its maintenance window: the next node starts at 2026-12-03T01:00:00Z (run 20261202T141500Z-abc123)",
        ]
    );
}
