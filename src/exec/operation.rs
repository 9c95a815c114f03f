//! What the executor does to a cluster, as data: the remote commands and
//! Engine API requests of each action, the lease and the guard reads.
//!
//! Actions list their operations from the same data they run with
//! ([`super::actions`]), `--dry-run` prints those lists, and a test runs
//! every action against the simulator and compares what reached the cluster
//! (through [`super::ops::Ops`]) with what the action said it would do. So
//! the dry run and the run cannot drift apart.

use std::fmt;

use super::ops::NodeUpdate;
use crate::plan::PlanNode;
use crate::transport::Cmd;

/// Whose Engine API answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum On {
    /// The engine of the node the step acts on (it may be restarting).
    Node,
    /// A manager other than the node acted on: the first one, from the end
    /// of the plan's manager order, whose engine answers as a manager.
    Manager,
    /// The engine of this node (hostname), for a cluster-wide step that
    /// acts on several nodes (`prepull`).
    Engine(String),
}

/// The filter of [`Call::TaskStops`]: containers of swarm tasks dying.
pub const TASK_STOPS: &str =
    r#"{"type":["container"],"event":["die"],"label":["com.docker.swarm.task.id"]}"#;

/// The filter of [`Call::LeaseChanges`]: the run lease's config created,
/// updated or removed (swarm events, which every manager reports).
pub const LEASE_CHANGES: &str = r#"{"type":["config"],"config":["swarm-upgrade-lease"]}"#;

/// One request, named as the Engine API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `GET /info`.
    Info,
    /// `GET /nodes/{id}` of the node acted on.
    InspectNode,
    /// `GET /nodes?filters={"role":["manager"]}`.
    ListManagers,
    /// `POST /nodes/{id}/update` of the node acted on (after a `GET` for
    /// its version index).
    UpdateNode(NodeUpdate),
    /// `GET /tasks?filters={"node":[id]}` of the node acted on.
    NodeTasks,
    /// `GET /events` filtered by [`TASK_STOPS`], on the node's own engine,
    /// held open while a wait lasts.
    TaskStops,
    /// `GET /events?filters={"type":["node"],"node":[id]}` on a manager:
    /// the node acted on as the swarm records it, held open while a wait
    /// for it lasts.
    NodeChanges,
    /// `GET /services?status=true`, of every service or of those running a
    /// task on the node acted on.
    Services { all: bool },
    /// `GET /tasks?filters={"desired-state":["running"]}`, of every service
    /// or of those running a task on the node acted on.
    Tasks { all: bool },
    /// The run lease, a swarm config: `POST /configs/create` (and, when it
    /// exists, `GET /configs/{name}`).
    AcquireLease,
    /// `GET` + `POST /configs/{name}/update`.
    RenewLease,
    /// `GET /configs/{name}`: still this run's, and the operator's request.
    ReadLease,
    /// `GET /events` filtered by [`LEASE_CHANGES`], held open from one read
    /// of the lease to the next.
    LeaseChanges,
    /// `GET` + `DELETE /configs/{name}` when it is this run's.
    ReleaseLease,
    /// `GET` + `POST /configs/{name}/update`: an operator's request
    /// written into the lease (the run pausing itself after its canaries).
    MarkLease(super::lease::Control),
    /// `GET /images/{name}/json`: whether the engine holds the image, and its ID.
    InspectImage(String),
    /// `GET /images/{name}/get` on `from`'s engine, streamed into `POST
    /// /images/load` on this one.
    CopyImage { image: String, from: String },
    /// `POST /images/create?fromImage={name}` (no registry credentials).
    PullImage(String),
}

/// One thing done to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Api {
        on: On,
        call: Call,
    },
    /// A command on the host of the node acted on, as the shell would read
    /// it (`sudo -n --` shown where the host needs it is left to the
    /// transport; secrets travel on stdin and never appear here).
    Command {
        cmd: String,
        stdin: Option<String>,
    },
    /// A command on the controller (an operator's hook), as the shell
    /// would read it.
    Local {
        cmd: String,
    },
}

impl Operation {
    pub fn api(on: On, call: Call) -> Operation {
        Operation::Api { on, call }
    }

    /// A command on the controller.
    pub fn local(cmd: &Cmd) -> Operation {
        Operation::Local { cmd: cmd.display() }
    }

    /// A command, with what goes to its stdin named, never shown.
    pub fn command(cmd: &Cmd) -> Operation {
        Operation::Command {
            cmd: cmd.display(),
            stdin: cmd.stdin_is.map(str::to_string),
        }
    }
}

/// When an operation happens during its step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    Once,
    /// Repeated (with the others marked so) until the condition holds.
    Until(String),
    /// Only if the condition arises.
    If(String),
}

/// An operation in a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub op: Operation,
    pub when: When,
}

/// The operations of one step (or of the run around the steps), in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description(pub Vec<Described>);

impl Description {
    pub fn once(&mut self, op: Operation) -> &mut Self {
        self.0.push(Described {
            op,
            when: When::Once,
        });
        self
    }

    pub fn until(&mut self, until: &str, op: Operation) -> &mut Self {
        self.0.push(Described {
            op,
            when: When::Until(until.to_string()),
        });
        self
    }

    pub fn when(&mut self, condition: &str, op: Operation) -> &mut Self {
        self.0.push(Described {
            op,
            when: When::If(condition.to_string()),
        });
        self
    }

    pub fn extend(&mut self, other: Description) -> &mut Self {
        self.0.extend(other.0);
        self
    }

    /// Every operation, conditional ones included, once, in order.
    pub fn distinct(&self) -> Vec<&Operation> {
        let mut out: Vec<&Operation> = vec![];
        for d in &self.0 {
            if !out.contains(&&d.op) {
                out.push(&d.op);
            }
        }
        out
    }

    /// The operations that happen whatever the cluster answers, once, in order.
    pub fn certain(&self) -> Vec<&Operation> {
        let mut out: Vec<&Operation> = vec![];
        for d in self.0.iter().filter(|d| !matches!(d.when, When::If(_))) {
            if !out.contains(&&d.op) {
                out.push(&d.op);
            }
        }
        out
    }

    /// Of [`Description::certain`], those whose first mention is not
    /// conditional: an operation that may happen earlier (a wait's probe of
    /// a manager, before the probe that always comes) has no certain place
    /// in the order.
    pub fn ordered(&self) -> Vec<&Operation> {
        let mut out: Vec<&Operation> = vec![];
        let mut seen: Vec<&Operation> = vec![];
        for d in &self.0 {
            if seen.contains(&&d.op) {
                continue;
            }
            seen.push(&d.op);
            if !matches!(d.when, When::If(_)) {
                out.push(&d.op);
            }
        }
        out
    }

    /// As `--dry-run` prints it, each line indented by `indent`, for the
    /// node `node` (IDs and names filled in).
    pub fn render(&self, node: Option<&PlanNode>, indent: &str) -> String {
        let mut out = String::new();
        for d in &self.0 {
            let text = d.op.render(node);
            let line = match &d.when {
                When::Once => text,
                When::Until(c) => format!("{text}  (repeated until {c})"),
                When::If(c) => format!("{text}  (only if {c})"),
            };
            out.push_str(indent);
            out.push_str(&line.replace('\n', &format!("\n{indent}  ")));
            out.push('\n');
        }
        out
    }
}

impl Operation {
    fn render(&self, node: Option<&PlanNode>) -> String {
        let (id, name) = node.map_or(("?", "?"), |n| (n.id.as_str(), n.name.as_str()));
        match self {
            Operation::Command { cmd, stdin } => {
                let host = node.map_or("?", |n| n.host.as_str());
                match stdin {
                    Some(s) => format!("ssh {host}: {cmd}  (stdin: {s})"),
                    None => format!("ssh {host}: {cmd}"),
                }
            }
            Operation::Local { cmd } => format!("controller: {cmd}"),
            Operation::Api { on, call } => {
                let on = match (on, node) {
                    (On::Node, _) => format!("{name}'s engine"),
                    (On::Manager, Some(_)) => format!("a manager other than {name}"),
                    (On::Manager, None) => "a manager".to_string(),
                    (On::Engine(n), _) => format!("{n}'s engine"),
                };
                format!("{on}: {}", call.render(id))
            }
        }
    }
}

impl Call {
    fn render(&self, id: &str) -> String {
        match self {
            Call::Info => "GET /info".into(),
            Call::InspectNode => format!("GET /nodes/{id}"),
            Call::ListManagers => r#"GET /nodes?filters={"role":["manager"]}"#.into(),
            Call::UpdateNode(u) => format!("POST /nodes/{id}/update {u}"),
            Call::NodeTasks => format!(r#"GET /tasks?filters={{"node":["{id}"]}}"#),
            Call::TaskStops => format!("GET /events?filters={TASK_STOPS} (held open)"),
            Call::NodeChanges => {
                format!(r#"GET /events?filters={{"type":["node"],"node":["{id}"]}} (held open)"#)
            }
            Call::Services { all: true } => "GET /services?status=true".into(),
            Call::Services { all: false } => {
                "GET /services?status=true&filters={\"id\":[services with a task on the node]}"
                    .into()
            }
            Call::Tasks { all: true } => {
                r#"GET /tasks?filters={"desired-state":["running"]}"#.into()
            }
            Call::Tasks { all: false } => {
                r#"GET /tasks?filters={"desired-state":["running"],"service":[services with a task on the node]}"#
                    .into()
            }
            Call::AcquireLease => {
                "POST /configs/create swarm-upgrade-lease (GET /configs/swarm-upgrade-lease when it exists)".into()
            }
            Call::RenewLease => {
                "GET /configs/swarm-upgrade-lease, POST /configs/swarm-upgrade-lease/update (new expiry)".into()
            }
            Call::ReadLease => {
                "GET /configs/swarm-upgrade-lease (still this run's; pause or abort asked)".into()
            }
            Call::LeaseChanges => format!("GET /events?filters={LEASE_CHANGES} (held open)"),
            Call::ReleaseLease => {
                "GET /configs/swarm-upgrade-lease, DELETE it when it is this run's".into()
            }
            Call::MarkLease(c) => format!(
                "GET /configs/swarm-upgrade-lease, POST /configs/swarm-upgrade-lease/update (label control={})",
                c.label().unwrap_or("removed")
            ),
            Call::InspectImage(image) => format!("GET /images/{image}/json"),
            Call::CopyImage { image, from } => format!(
                "POST /images/load, streamed from {from}'s engine's GET /images/{image}/get (through this controller)"
            ),
            Call::PullImage(image) => format!("POST /images/create?fromImage={image}"),
        }
    }
}

impl fmt::Display for NodeUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![];
        if let Some(a) = self.availability {
            parts.push(format!("availability={}", a.name()));
        }
        for (k, v) in &self.add_labels {
            parts.push(format!("label {k}={v}"));
        }
        for k in &self.remove_labels {
            parts.push(format!("label {k} removed"));
        }
        write!(f, "{}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_watch_filters_on_the_lease_itself() {
        let filter: serde_json::Value = serde_json::from_str(LEASE_CHANGES).unwrap();
        assert_eq!(filter["config"][0], crate::exec::lease::LEASE_NAME);
        assert_eq!(filter["type"][0], "config");
    }
}
