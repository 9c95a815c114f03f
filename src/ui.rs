//! The terminal frontend of a run: executor events as progress bars on a
//! terminal, plain lines otherwise, JSON lines with `--output json`; the
//! plan before it starts, and the confirmation prompt.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::usage;
use crate::exec::events::Event;
use crate::exec::state::now;
use crate::launch::Frontend;
use crate::plan::{self, Plan};

/// What `apply`, `resume` and `rollback` show on a terminal (or in a pipe).
pub struct Terminal {
    ui: Ui,
    json: bool,
    quiet: bool,
    /// `--wide`: the plan with every node and step, none grouped.
    wide: bool,
}

impl Terminal {
    pub fn new(json: bool, quiet: bool) -> Terminal {
        Terminal {
            ui: Ui::new(json, quiet),
            json,
            quiet,
            wide: false,
        }
    }

    pub fn wide(self, wide: bool) -> Terminal {
        Terminal { wide, ..self }
    }
}

impl Frontend for Terminal {
    fn log(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    fn plan(&self, plan: &Plan) {
        if self.json {
            if let Ok(s) = serde_json::to_string(
                &serde_json::json!({"event": "plan", "plan": plan::render::json(plan)}),
            ) {
                println!("{s}");
            }
        } else if !self.quiet {
            eprint!("{}", plan::render::table_for(plan, self.wide));
        }
    }

    fn confirm(&self, plan: &Plan) -> anyhow::Result<()> {
        if !std::io::stdin().is_terminal() {
            return Err(usage(
                "refusing to start without confirmation: stdin is not a terminal; pass --yes to confirm",
            ));
        }
        if self.quiet {
            // Quiet left the plan out; nobody confirms what they have not seen.
            eprint!("{}", plan::render::table_for(plan, self.wide));
        }
        let revert = plan.reverts_run.is_some();
        let restart = !plan.operation.is_upgrade();
        eprint!(
            "{} {} node(s) of swarm {}{}? Type `yes` to start: ",
            if revert {
                "Roll back"
            } else if restart {
                "Restart"
            } else {
                "Upgrade"
            },
            plan.nodes.iter().filter(|n| n.order.is_some()).count(),
            plan.cluster_id,
            if revert || restart {
                String::new()
            } else {
                format!(" to {}", plan.target)
            }
        );
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            return Err(usage("not confirmed: nothing was changed"));
        }
        Ok(())
    }

    fn dry_run(&self, text: &str) {
        if self.json {
            let lines: Vec<&str> = text.lines().collect();
            if let Ok(s) =
                serde_json::to_string(&serde_json::json!({"event": "dry_run", "lines": lines}))
            {
                println!("{s}");
            }
        } else {
            print!("{text}");
        }
    }

    fn event(&self, event: &Event) {
        self.ui.event(event);
    }
}

pub enum Mode {
    Bars,
    Lines,
    /// `-q`: only the lines that report a result or a failure.
    Quiet,
    Json,
}

pub struct Ui {
    mode: Mode,
    multi: MultiProgress,
    overall: ProgressBar,
    nodes: Mutex<HashMap<String, ProgressBar>>,
}

impl Ui {
    pub fn new(json: bool, quiet: bool) -> Ui {
        let mode = if json {
            Mode::Json
        } else if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        };
        let multi = MultiProgress::with_draw_target(match mode {
            Mode::Bars => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::hidden(),
        });
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {pos}/{len} steps  {elapsed_precise} elapsed, ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        overall.set_prefix("upgrade");
        Ui {
            mode,
            multi,
            overall,
            nodes: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, node: &str) -> ProgressBar {
        let mut nodes = self.nodes.lock().expect("ui lock");
        nodes
            .entry(node.to_string())
            .or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new_spinner());
                b.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:>12} {wide_msg} {elapsed}")
                        .expect("valid template"),
                );
                b.set_prefix(node.to_string());
                b.enable_steady_tick(Duration::from_millis(120));
                b
            })
            .clone()
    }

    pub fn event(&self, e: &Event) {
        match self.mode {
            Mode::Json => {
                #[derive(serde::Serialize)]
                struct Line<'a> {
                    ts: String,
                    #[serde(flatten)]
                    event: &'a Event,
                }
                if let Ok(s) = serde_json::to_string(&Line {
                    ts: now(),
                    event: e,
                }) {
                    println!("{s}");
                }
            }
            Mode::Lines => eprintln!("{}", line(e)),
            Mode::Quiet => {
                if matches!(
                    e,
                    Event::StepFailed { .. }
                        | Event::RollbackStarted { .. }
                        | Event::RollbackFinished { .. }
                        | Event::LeaseLost { .. }
                        | Event::RunFinished { .. }
                ) {
                    eprintln!("{}", line(e));
                }
            }
            Mode::Bars => self.draw(e),
        }
    }

    fn draw(&self, e: &Event) {
        match e {
            Event::RunStarted { steps, done, .. } => {
                self.overall.set_length(*steps as u64);
                self.overall.set_position(*done as u64);
            }
            Event::StepStarted { node, action, .. } => {
                let b = self.bar(node.as_deref().unwrap_or("swarm"));
                b.set_message(action.name().to_string());
            }
            Event::StepFinished { node, .. } => {
                self.overall.inc(1);
                let b = self.bar(node.as_deref().unwrap_or("swarm"));
                b.set_message(format!("{} done", b.message()));
            }
            Event::StepOutput { .. } => {}
            Event::RunFinished { .. } => {
                for b in self.nodes.lock().expect("ui lock").values() {
                    b.finish();
                }
                self.overall.finish();
                let _ = self.multi.println(line(e));
            }
            _ => {
                let _ = self.multi.println(line(e));
            }
        }
    }
}

/// One plain line per event.
pub fn line(e: &Event) -> String {
    let node = |n: &Option<String>| n.clone().unwrap_or_else(|| "swarm".into());
    match e {
        Event::RunStarted { run_id, steps, done } => {
            if *done > 0 {
                format!("run {run_id}: resuming, {done} of {steps} steps already done")
            } else {
                format!("run {run_id}: {steps} steps")
            }
        }
        Event::StepStarted { index, node: n, action } => {
            format!("[{index}] {} {}", node(n), action.name())
        }
        Event::StepOutput { index, node: n, text } => format!("[{index}] {}: {text}", node(n)),
        Event::StepFinished {
            index,
            node: n,
            action,
            elapsed_ms,
            ..
        } => format!(
            "[{index}] {} {} done in {:.1} s",
            node(n),
            action.name(),
            *elapsed_ms as f64 / 1000.0
        ),
        Event::StepFailed {
            index,
            node: n,
            action,
            error,
        } => format!("[{index}] {} {} FAILED: {error}", node(n), action.name()),
        Event::RollbackStarted { node, reason } => format!("rolling back {node}: {reason}"),
        Event::RollbackFinished { node, ok, detail } => {
            if *ok {
                format!("rolled back {node}: {detail}")
            } else {
                format!("ROLLBACK OF {node} FAILED: {detail}")
            }
        }
        Event::Traffic { hosts } => {
            let sum = |f: fn(&crate::exec::ops::Traffic) -> u64| hosts.values().map(f).sum::<u64>();
            let ssh = hosts
                .values()
                .filter_map(|t| t.ssh_connections)
                .max()
                .map(|m| format!(", at most {m} SSH connection(s) per host"))
                .unwrap_or_default();
            format!(
                "round trips: {} commands and {} Engine API requests over {} host(s){ssh}",
                sum(|t| t.commands),
                sum(|t| t.api_requests),
                hosts.len()
            )
        }
        Event::StopRequested => {
            "stop requested: finishing the current step, then stopping at a safe point (Ctrl-C, SIGTERM or SIGHUP again aborts now; `swarm-upgrade resume` continues)".into()
        }
        Event::LeaseLost { reason } => format!(
            "the run lease was lost ({reason}): stopping at the next safe point; once no other run holds it, `swarm-upgrade resume` continues"
        ),
        Event::Paused => "paused by `swarm-upgrade pause` at a safe point (every engine running); waiting for `swarm-upgrade continue` (or `abort`), renewing the run lease".into(),
        Event::Continued => "continued by `swarm-upgrade continue`".into(),
        Event::Aborted => "aborted by `swarm-upgrade abort`: stopping at this safe point (every engine running); `swarm-upgrade resume` continues later".into(),
        Event::WaitingForWindow { opens_at } => format!(
            "outside every maintenance window: the next node starts when one opens ({opens_at})"
        ),
        Event::RunFinished { status, elapsed_ms } => format!(
            "run finished: {} after {}",
            serde_json::to_value(status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            humantime::format_duration(Duration::from_secs(elapsed_ms / 1000))
        ),
    }
}
