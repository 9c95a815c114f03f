//! What a node serves once it runs tasks again (V7–V9): containerd and runc
//! at the expected versions and containerd running, the published ports of
//! its services answering on the node, a service name resolving from one of
//! its tasks, and an engine log free of certificate-renewal and heartbeat
//! failures since the restart.
//!
//! One script gathers it all on the node in one round trip; deciding what
//! the output means is pure ([`parse`], [`judge`], [`log_problems`]).

use std::net::IpAddr;
use std::time::Duration;

use crate::facts::model::{PublishedPort, ServiceFacts};
use crate::transport::Cmd;
use crate::version::resolve::PackageChange;

/// The probe run on the node. Its inputs come on stdin, so that the command
/// is the same for every node (and the dry run shows it exactly): a line of
/// `PORT:MODE` (TCP ports to connect to on the node itself), a line of
/// service names to resolve from a task of each, a line with another
/// node's address, where an ingress port that does not answer here is tried
/// to tell this node's routing mesh from the cluster's, and a line with the
/// node's own swarm address: ports are tried there, as clients reach them,
/// not on 127.0.0.1 (which only the userland proxy serves; many hosts turn it
/// off), and a line with the seconds a port or name may take to answer.
/// Output: one `key value...` line per finding (an open port with the
/// seconds it took to answer).
///
/// A task counts as running once its process starts, before it listens or
/// its name is served (a service without a health check): a port refused or
/// a name not found is tried again, once a second, until the grace runs out
/// (one deadline for all of them). Only a failing node waits that long.
pub const SCRIPT: &str = r#"# swarm-upgrade: verify services
read -r ports || true
read -r services || true
read -r peer || true
read -r self || true
read -r grace || true
deadline=$(( $(date +%s) + ${grace:-0} ))
again() { [ "$(date +%s)" -lt "$deadline" ] && sleep 1; }
printf 'containerd-version %s\n' "$(containerd --version 2>/dev/null | head -n 1 || true)"
printf 'runc-version %s\n' "$(runc --version 2>/dev/null | head -n 1 || true)"
if pgrep -x containerd >/dev/null 2>&1; then echo 'containerd-running yes'; else echo 'containerd-running no'; fi
# The engine answering its own CLI: when it does not, nothing below can be
# told (its tasks' ports, names), and the run stops without judging.
engine=unknown; daemon=
if command -v docker >/dev/null 2>&1; then
  if daemon=$(docker version --format '{{range .Server.Components}}{{if eq .Name "containerd"}}{{.Version}}{{end}}{{end}}' 2>/dev/null); then engine=yes; else engine=no; daemon=; fi
fi
echo "engine-answers $engine"
printf 'containerd-daemon %s\n' "$daemon"
[ "$engine" != no ] || exit 0
answers() { timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"' sh "$1" "$2" 2>/dev/null; }
for pm in $ports; do
  p=${pm%%:*}; mode=${pm#*:}
  if ! command -v bash >/dev/null 2>&1; then echo "port $p untested"; continue; fi
  t=$(date +%s)
  while :; do
    if answers "${self:-127.0.0.1}" "$p"; then echo "port $p ok $(( $(date +%s) - t ))"; break; fi
    if [ "$mode" = ingress ] && [ -n "$peer" ]; then
      # Closed on every node is the routing mesh, not this node: no wait.
      if ! answers "$peer" "$p"; then echo "port $p closed elsewhere-closed"; break; fi
      again || { echo "port $p closed elsewhere-ok"; break; }
    else
      again || { echo "port $p closed"; break; }
    fi
  done
done
for s in $services; do
  c=$(docker ps -q --filter "label=com.docker.swarm.service.name=$s" 2>/dev/null | head -n 1)
  if [ -z "$c" ]; then echo "dns $s no-task"; continue; fi
  while :; do
    rc=0
    docker exec "$c" sh -c 'if command -v getent >/dev/null 2>&1; then getent hosts "$1"; elif command -v nslookup >/dev/null 2>&1; then nslookup "$1"; else exit 3; fi' sh "$s" >/dev/null 2>&1 || rc=$?
    if [ "$rc" = 3 ] || [ "$rc" = 126 ] || [ "$rc" = 127 ]; then
      # No resolver in the image: ask the engine's DNS server in the task's
      # network namespace with the host's own resolver.
      pid=$(docker inspect -f '{{.State.Pid}}' "$c" 2>/dev/null || echo 0)
      if [ "$pid" -gt 0 ] && command -v nsenter >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1; then
        rc=0
        nsenter -n -t "$pid" unshare -m sh -c 'f=$(mktemp) && echo "nameserver 127.0.0.11" >"$f" && mount --bind "$f" /etc/resolv.conf && getent hosts "$1"; r=$?; rm -f "$f"; exit $r' sh "$s" >/dev/null 2>&1 || rc=$?
        [ "$rc" = 0 ] || rc=1
      fi
    fi
    case $rc in 0|3|126|127) break ;; esac
    again || break
  done
  case $rc in
    0) echo "dns $s ok" ;;
    3|126|127) echo "dns $s untested" ;;
    *) echo "dns $s fail" ;;
  esac
done
"#;

/// The line between the probe's findings and the engine's log, when the
/// playbook's `logs` script runs after it in the same command ([`command`]).
pub const LOG_MARK: &str = "### swarm-upgrade: engine log";

/// What the probe's stdin says it checks.
pub const INPUTS: &str = "the published ports, service names and a peer address to check";

/// The command running [`SCRIPT`] (its inputs: [`stdin`]), then, in the
/// same round trip after [`LOG_MARK`], the playbook's `logs` script (the
/// command [`crate::playbook::Playbook::command_after`] makes of it).
pub fn command(logs: Cmd, stdin: Vec<u8>) -> Cmd {
    logs.stdin(INPUTS, stdin).timeout(Duration::from_secs(180))
}

/// What runs before the `logs` script: the probe, then the mark.
pub fn before_logs() -> String {
    format!("{SCRIPT}echo '{LOG_MARK}'\n")
}

/// The probe's findings and the engine's log, from the command's output.
pub fn split_log(stdout: &str) -> (&str, &str) {
    stdout
        .split_once(&format!("{LOG_MARK}\n"))
        .unwrap_or((stdout, ""))
}

/// How long a published port or a service name may take to answer once its
/// task runs. An application slower than this to listen should have a
/// health check: the swarm then reports its task running only once healthy.
pub const GRACE: Duration = Duration::from_secs(30);

/// The probe's input lines. Every value is a number, a plain word or an IP
/// address (see [`to_check`]), so the script's word splitting is safe.
pub fn stdin(
    ports: &[PortToCheck],
    services: &[String],
    peer: Option<IpAddr>,
    own: Option<IpAddr>,
    grace: Duration,
) -> Vec<u8> {
    let ports: Vec<String> = ports
        .iter()
        .map(|p| format!("{}:{}", p.port, p.mode))
        .collect();
    let addr = |a: Option<IpAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    format!(
        "{}\n{}\n{}\n{}\n{}\n",
        ports.join(" "),
        services.join(" "),
        addr(peer),
        addr(own),
        grace.as_secs()
    )
    .into_bytes()
}

/// A published port of a service that has a task on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortToCheck {
    pub port: u16,
    pub service: String,
    /// `host` (answers only where a task runs) or `ingress` (routing mesh:
    /// answers on every node).
    pub mode: String,
}

/// What to check on a node, from the services with a running task on it.
/// Only TCP ports: a UDP port gives no answer to test without the service's
/// own protocol. Service names must be plain words (they go to the script as
/// a space-separated list; the swarm allows nothing else in a name).
pub fn to_check(services: &[ServiceFacts]) -> (Vec<PortToCheck>, Vec<String>) {
    let mut ports = vec![];
    let mut names = vec![];
    for s in services {
        let plain = !s.name.is_empty()
            && s.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        // Service DNS is served on the service's own networks only.
        if plain && !s.networks.is_empty() {
            names.push(s.name.clone());
        }
        for PublishedPort {
            published,
            protocol,
            mode,
            ..
        } in &s.published_ports
        {
            let plain_mode = mode == "host" || mode == "ingress";
            if protocol == "tcp"
                && plain_mode
                && !ports.iter().any(|p: &PortToCheck| p.port == *published)
            {
                ports.push(PortToCheck {
                    port: *published,
                    service: s.name.clone(),
                    mode: mode.clone(),
                });
            }
        }
    }
    names.sort();
    names.dedup();
    (ports, names)
}

/// The probe's output, read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// The engine answered the node's own CLI (`None`: no CLI on the host).
    pub engine_answers: Option<bool>,
    pub containerd: String,
    pub runc: String,
    pub containerd_running: bool,
    /// The version of the containerd daemon the engine talks to, as the engine
    /// reports it (empty when it could not say): the binary on disk is not
    /// what runs when containerd is a service of its own that was not
    /// restarted after its package changed.
    pub containerd_daemon: String,
    pub ports: Vec<PortReport>,
    /// Service → resolved (`None`: no task to ask, or no resolver in its image).
    pub dns: Vec<(String, Option<bool>)>,
}

/// What the probe found of one published port.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PortReport {
    pub port: u16,
    /// Answered on the node (`None`: could not be tested).
    pub answered: Option<bool>,
    /// For an ingress port that did not answer here: whether it answered on
    /// the peer.
    pub elsewhere: Option<bool>,
    /// Seconds it took to answer (a task that had only just started).
    pub waited_s: u64,
}

pub fn parse(stdout: &str) -> Report {
    let mut r = Report::default();
    for line in stdout.lines() {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        match key {
            "engine-answers" => r.engine_answers = outcome(rest, "yes", "no"),
            "containerd-version" => r.containerd = rest.to_string(),
            "runc-version" => r.runc = rest.to_string(),
            "containerd-running" => r.containerd_running = rest == "yes",
            "containerd-daemon" => r.containerd_daemon = rest.to_string(),
            "port" => {
                let mut w = rest.split_whitespace();
                if let (Some(p), Some(v)) = (w.next(), w.next())
                    && let Ok(p) = p.parse()
                {
                    let third = w.next();
                    r.ports.push(PortReport {
                        port: p,
                        answered: outcome(v, "ok", "closed"),
                        elsewhere: third
                            .and_then(|e| outcome(e, "elsewhere-ok", "elsewhere-closed")),
                        waited_s: third.and_then(|t| t.parse().ok()).unwrap_or(0),
                    });
                }
            }
            "dns" => {
                if let Some((s, v)) = rest.split_once(' ') {
                    r.dns.push((s.to_string(), outcome(v, "ok", "fail")));
                }
            }
            _ => {}
        }
    }
    r
}

fn outcome(v: &str, yes: &str, no: &str) -> Option<bool> {
    if v == yes {
        Some(true)
    } else if v == no {
        Some(false)
    } else {
        None
    }
}

/// The upstream version a package version carries: `5:26.1.5-1~debian.12`
/// → `26.1.5`, `1.6.20~ds1-1+b1` → `1.6.20`, `1.7.22-1` → `1.7.22`.
pub fn upstream(version: &str) -> &str {
    let v = version.split_once(':').map_or(version, |(_, v)| v);
    let end = v.find(['~', '-', '+']).unwrap_or(v.len());
    &v[..end]
}

/// The containerd and runc versions the node's packages promise, if the
/// plan changes them: the new ones, or when `reverting` (a rollback plan,
/// whose package changes are the upgrade it reverts) the old ones.
pub fn expected_runtime(
    packages: &[PackageChange],
    reverting: bool,
) -> (Option<String>, Option<String>) {
    let find = |names: &[&str]| {
        let p = packages.iter().find(|p| names.contains(&p.name.as_str()))?;
        let version = if reverting { p.from.as_deref()? } else { &p.to };
        Some(upstream(version).to_string())
    };
    (
        find(&["containerd", "containerd.io"]),
        find(&["runc", "runc.io"]),
    )
}

/// `word` is upstream version `want`, with or without a distribution suffix
/// (`1.7.24~ds1`, `2.1.9+unknown`).
fn is_version(word: &str, want: &str) -> bool {
    word == want
        || word.starts_with(&format!("{want}~"))
        || word.starts_with(&format!("{want}+"))
        || word.starts_with(&format!("{want}-"))
}

/// The verdict on a report: what was verified, or why the node fails.
/// An ingress port that answers neither here nor on the peer is the
/// cluster's routing mesh, not this node: noted, not failed.
pub fn judge(
    r: &Report,
    ports: &[PortToCheck],
    expected: &(Option<String>, Option<String>),
) -> Result<String, String> {
    let mut problems = vec![];
    let mut done = vec![];
    let version = |line: &str| {
        line.split_whitespace()
            .find(|w| {
                w.trim_start_matches('v')
                    .starts_with(|c: char| c.is_ascii_digit())
            })
            .unwrap_or(line)
            .to_string()
    };
    for (what, line, want) in [
        ("containerd", &r.containerd, &expected.0),
        ("runc", &r.runc, &expected.1),
    ] {
        if line.is_empty() {
            problems.push(format!(
                "{what} is not installed (`{what} --version` prints nothing)"
            ));
        } else if let Some(want) = want
            && !line
                .split_whitespace()
                .any(|w| is_version(w.trim_start_matches('v'), want))
        {
            problems.push(format!(
                "{what} runs as `{line}`, not the {want} the installed packages promise"
            ));
        }
    }
    if !r.containerd_running {
        problems.push("containerd is not running".into());
    } else if let Some(want) = &expected.0
        && !r.containerd_daemon.is_empty()
        && !is_version(r.containerd_daemon.trim_start_matches('v'), want)
    {
        problems.push(format!(
            "the containerd daemon still runs {}, not the {want} installed: it was not \
             restarted after its package changed",
            r.containerd_daemon
        ));
    }
    if problems.is_empty() {
        done.push(format!(
            "containerd {}, runc {} running",
            version(&r.containerd),
            version(&r.runc)
        ));
    }
    for p in ports {
        let found = (r.ports.iter().find(|f| f.port == p.port))
            .cloned()
            .unwrap_or_default();
        let what = format!("port {} ({} mode of service {})", p.port, p.mode, p.service);
        match found.answered {
            Some(true) if found.waited_s > 0 => {
                done.push(format!("{what} answers (after {} s)", found.waited_s))
            }
            Some(true) => done.push(format!("{what} answers")),
            Some(false) if p.mode == "ingress" && found.elsewhere == Some(false) => done.push(
                format!("{what} answers on no node (the routing mesh, not this node)"),
            ),
            Some(false) => problems.push(format!("published {what} does not answer on the node")),
            None => done.push(format!("{what} untested (no bash on the host)")),
        }
    }
    for (s, resolved) in &r.dns {
        match resolved {
            Some(true) => done.push(format!("{s} resolves from its task")),
            Some(false) => problems.push(format!(
                "service name {s} does not resolve from its task on the node (overlay DNS)"
            )),
            None => {}
        }
    }
    if problems.is_empty() {
        Ok(done.join("; "))
    } else {
        Err(problems.join("; "))
    }
}

/// Marks of a node that restarted into trouble, in the engine log lines
/// written since its last start: a certificate renewal loop, or heartbeats
/// to the managers failing. Both also show, harmlessly, while the managers
/// elect a leader or another manager restarts; what counts is trouble that
/// goes on: at least three such lines among the last ten since the start
/// (the services have converged by the time this runs).
pub fn log_problems(log: &str) -> Vec<String> {
    const MARKERS: [(&str, &str); 3] = [
        ("failed to renew", "a certificate renewal loop"),
        ("certificate renewal", "a certificate renewal loop"),
        ("heartbeat to manager", "heartbeats to the managers failing"),
    ];
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let since = lines
        .iter()
        .rposition(|l| l.contains("Daemon has completed initialization"))
        .map_or(0, |i| i + 1);
    let recent = &lines[since.max(lines.len().saturating_sub(10))..];
    let mut found: Vec<(&str, usize)> = vec![];
    for line in recent {
        let lower = line.to_ascii_lowercase();
        let looks_bad = lower.contains("level=error")
            || lower.contains("level=warn")
            || lower.contains("failed");
        if !looks_bad {
            continue;
        }
        if let Some((_, what)) = MARKERS.iter().find(|(m, _)| lower.contains(m)) {
            match found.iter_mut().find(|(w, _)| w == what) {
                Some((_, n)) => *n += 1,
                None => found.push((what, 1)),
            }
        }
    }
    found
        .into_iter()
        .filter(|(_, n)| *n >= 3)
        .map(|(what, n)| {
            format!("{what} in the engine log, still going on ({n} of its last lines)")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "containerd-version containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1\n\
        runc-version runc version 1.1.5+ds1\n\
        containerd-running yes\n\
        port 8081 ok\n\
        port 8080 closed elsewhere-closed\n\
        dns probe ok\n\
        dns web untested\n";

    fn port(p: u16, mode: &str) -> PortToCheck {
        PortToCheck {
            port: p,
            service: "probe".into(),
            mode: mode.into(),
        }
    }

    #[test]
    fn reads_the_probe_output() {
        let r = parse(LAB);
        assert!(r.containerd_running);
        assert_eq!(r.runc, "runc version 1.1.5+ds1");
        let port = |port, answered, elsewhere, waited_s| PortReport {
            port,
            answered,
            elsewhere,
            waited_s,
        };
        assert_eq!(
            r.ports,
            vec![
                port(8081, Some(true), None, 0),
                port(8080, Some(false), Some(false), 0)
            ]
        );
        let late = parse("port 8081 ok 3\n");
        assert_eq!(late.ports, vec![port(8081, Some(true), None, 3)]);
        assert_eq!(
            r.dns,
            vec![("probe".into(), Some(true)), ("web".into(), None)]
        );
    }

    #[test]
    fn upstream_versions_of_both_package_families() {
        assert_eq!(upstream("5:26.1.5-1~debian.12~bookworm"), "26.1.5");
        assert_eq!(upstream("1.6.20~ds1-1+b1"), "1.6.20");
        assert_eq!(upstream("1.7.22-1"), "1.7.22");
        assert_eq!(upstream("1.1.5+ds1-1+deb12u1"), "1.1.5");
    }

    #[test]
    fn a_host_port_that_does_not_answer_fails_the_node_and_names_the_port() {
        let r = parse(LAB);
        let err = judge(&r, &[port(8081, "host"), port(8080, "host")], &(None, None)).unwrap_err();
        assert_eq!(
            err,
            "published port 8080 (host mode of service probe) does not answer on the node"
        );
    }

    #[test]
    fn a_port_that_answered_late_says_how_late() {
        let r = parse(
            "containerd-version containerd 1.6.20\nrunc-version runc version 1.1.5\ncontainerd-running yes\nport 8081 ok 3\n",
        );
        let ok = judge(&r, &[port(8081, "host")], &(None, None)).unwrap();
        assert!(
            ok.ends_with("port 8081 (host mode of service probe) answers (after 3 s)"),
            "{ok}"
        );
    }

    #[test]
    fn an_ingress_port_answering_nowhere_is_the_mesh_not_the_node() {
        let r = parse(LAB);
        let ok = judge(
            &r,
            &[port(8081, "host"), port(8080, "ingress")],
            &(None, None),
        )
        .unwrap();
        assert_eq!(
            ok,
            "containerd 1.6.20~ds1, runc 1.1.5+ds1 running; port 8081 (host mode of service probe) answers; \
             port 8080 (ingress mode of service probe) answers on no node (the routing mesh, not this node); \
             probe resolves from its task"
        );
        // Answering elsewhere but not here: this node's fault.
        let r = parse(&LAB.replace("elsewhere-closed", "elsewhere-ok"));
        let err = judge(&r, &[port(8080, "ingress")], &(None, None)).unwrap_err();
        assert!(err.contains("port 8080 (ingress mode"), "{err}");
    }

    #[test]
    fn the_runtime_must_be_the_one_the_packages_promise() {
        let r = parse(LAB);
        let ok = (Some("1.6.20".to_string()), Some("1.1.5".to_string()));
        assert!(judge(&r, &[], &ok).is_ok());
        let newer = (Some("1.7.22".to_string()), None);
        let err = judge(&r, &[], &newer).unwrap_err();
        assert!(
            err.contains("not the 1.7.22 the installed packages promise"),
            "{err}"
        );
        let stopped = parse(&LAB.replace("containerd-running yes", "containerd-running no"));
        assert_eq!(
            judge(&stopped, &[], &(None, None)).unwrap_err(),
            "containerd is not running"
        );
        let missing = parse(&LAB.replace("runc version 1.1.5+ds1", ""));
        assert!(
            judge(&missing, &[], &(None, None))
                .unwrap_err()
                .contains("runc is not installed")
        );
    }

    #[test]
    fn a_containerd_daemon_left_at_its_old_version_fails() {
        // containerd.io's binary is 2.1.9, but its service was not restarted: the engine
        // still talks to the 1.7.24 daemon (found on the lab's systemd docker-ce nodes).
        let lab = LAB.replace("1.6.20~ds1 1.6.20~ds1-1+b1", "2.1.9 b0c2a8a");
        let want = (Some("2.1.9".to_string()), None);
        let stale = parse(&format!("{lab}containerd-daemon 1.7.24\n"));
        assert_eq!(stale.containerd_daemon, "1.7.24");
        let err = judge(&stale, &[], &want).unwrap_err();
        assert!(
            err.contains("the containerd daemon still runs 1.7.24, not the 2.1.9 installed"),
            "{err}"
        );
        let restarted = parse(&format!("{lab}containerd-daemon 2.1.9+unknown\n"));
        assert!(judge(&restarted, &[], &want).is_ok());
        // An engine that cannot say (empty) is judged by the binary alone.
        let silent = parse(&format!("{lab}containerd-daemon \n"));
        assert!(judge(&silent, &[], &want).is_ok());
    }

    #[test]
    fn a_rollback_expects_the_runtime_it_reinstalled() {
        let change = |name: &str, from: Option<&str>, to: &str| PackageChange {
            name: name.into(),
            from: from.map(str::to_string),
            to: to.into(),
        };
        let packages = [
            change(
                "containerd",
                Some("1.6.20~ds1-1+deb12u3"),
                "1.7.24~ds1-6+deb13u1",
            ),
            change("runc", None, "1.1.15+ds1-1"),
        ];
        assert_eq!(
            expected_runtime(&packages, false),
            (Some("1.7.24".into()), Some("1.1.15".into()))
        );
        assert_eq!(
            expected_runtime(&packages, true),
            (Some("1.6.20".into()), None)
        );
    }

    #[test]
    fn a_name_that_does_not_resolve_fails() {
        let r = parse(&LAB.replace("dns probe ok", "dns probe fail"));
        let err = judge(&r, &[], &(None, None)).unwrap_err();
        assert!(err.contains("service name probe does not resolve"), "{err}");
    }

    #[test]
    fn only_tcp_ports_and_plain_names_are_checked() {
        let svc = |name: &str, ports: &[(u16, &str, &str)]| ServiceFacts {
            id: format!("id-{name}"),
            name: name.into(),
            mode: crate::facts::model::ServiceMode::Global,
            image: "probe".into(),
            constraints: vec![],
            max_replicas_per_node: 0,
            reserved_nano_cpus: 0,
            reserved_memory_bytes: 0,
            running_tasks: 1,
            desired_tasks: 1,
            update_state: None,
            virtual_ips: vec![],
            bind_mounts: vec![],
            labels: Default::default(),
            networks: vec!["probe-net".into()],
            published_ports: ports
                .iter()
                .map(|(p, proto, mode)| PublishedPort {
                    published: *p,
                    target: 80,
                    protocol: (*proto).into(),
                    mode: (*mode).into(),
                })
                .collect(),
        };
        let (ports, names) = to_check(&[
            svc("web", &[(8080, "tcp", "ingress"), (53, "udp", "host")]),
            svc("dns", &[(8080, "tcp", "ingress")]),
            svc("bad name;x", &[]),
            ServiceFacts {
                networks: vec![],
                ..svc("on-no-network", &[(9000, "tcp", "host")])
            },
        ]);
        assert_eq!(
            ports,
            vec![
                PortToCheck {
                    port: 8080,
                    service: "web".into(),
                    mode: "ingress".into()
                },
                PortToCheck {
                    port: 9000,
                    service: "on-no-network".into(),
                    mode: "host".into()
                }
            ]
        );
        // A service on no network has no service DNS to ask.
        assert_eq!(names, vec!["dns".to_string(), "web".to_string()]);
    }

    #[test]
    fn renewal_loops_and_failing_heartbeats_count_when_still_going_on_after_the_restart() {
        let before = "level=error msg=\"heartbeat to manager abc failed\"\n".repeat(5);
        let start = "level=info msg=\"Daemon has completed initialization\"\n";
        assert!(log_problems(&format!("{before}{start}")).is_empty());
        let one = "level=warning msg=\"failed to renew certificate\"\n";
        assert!(log_problems(&format!("{before}{start}{one}")).is_empty());
        let loop_ = one.repeat(3);
        assert_eq!(
            log_problems(&format!("{start}{loop_}")),
            vec![
                "a certificate renewal loop in the engine log, still going on (3 of its last lines)"
                    .to_string()
            ]
        );
        // Over once the managers settled: ten healthy lines since.
        let settled = "level=info msg=\"task started\"\n".repeat(10);
        assert!(log_problems(&format!("{start}{loop_}{settled}")).is_empty());
        let hb =
            "time=\"x\" level=error msg=\"heartbeat to manager m1 failed\" error=\"rpc error\"\n"
                .repeat(4);
        assert_eq!(
            log_problems(&format!("{start}{hb}")),
            vec![
                "heartbeats to the managers failing in the engine log, still going on (4 of its last lines)"
                    .to_string()
            ]
        );
        // A session that failed while the managers elected a leader is not trouble.
        let session = "level=error msg=\"agent: session failed\"\n".repeat(5);
        assert!(log_problems(&format!("{start}{session}")).is_empty());
    }
}

#[cfg(test)]
mod stdin_tests {
    use super::*;

    #[test]
    fn inputs_are_five_lines_of_plain_words() {
        let p = PortToCheck {
            port: 8080,
            service: "web".into(),
            mode: "ingress".into(),
        };
        let peer = "10.0.0.2".parse().ok();
        let own = "10.0.0.5".parse().ok();
        assert_eq!(
            String::from_utf8(stdin(&[p], &["web".into()], peer, own, GRACE)).unwrap(),
            "8080:ingress\nweb\n10.0.0.2\n10.0.0.5\n30\n"
        );
        assert_eq!(
            String::from_utf8(stdin(&[], &[], None, None, Duration::ZERO)).unwrap(),
            "\n\n\n\n0\n"
        );
    }
}

/// The probe script itself, run by this machine's `sh` against ports on
/// 127.0.0.1: what it waits for and what it does not.
#[cfg(test)]
mod script_tests {
    use std::io::Write;
    use std::net::TcpListener;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use super::*;

    /// A port nothing listens on (yet).
    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// The probe with `docker` a stand-in that exits `docker_exit` (this
    /// machine's engine is not the node's), then `logs` as the playbook's
    /// script: its whole output, and how long it took.
    fn run(
        ports: &[(u16, &str)],
        peer: Option<&str>,
        grace: Duration,
        docker_exit: u8,
        logs: &str,
    ) -> (String, Duration) {
        let bin = tempfile::tempdir().unwrap();
        let docker = bin.path().join("docker");
        std::fs::write(&docker, format!("#!/bin/sh\nexit {docker_exit}\n")).unwrap();
        let mut perms = std::fs::metadata(&docker).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&docker, perms).unwrap();
        let path = format!(
            "{}:{}",
            bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let ports: Vec<PortToCheck> = ports
            .iter()
            .map(|(p, mode)| PortToCheck {
                port: *p,
                service: "web".into(),
                mode: mode.to_string(),
            })
            .collect();
        let local = "127.0.0.1".parse().ok();
        let input = stdin(&ports, &[], peer.and_then(|p| p.parse().ok()), local, grace);
        let start = Instant::now();
        let mut child = Command::new("sh")
            .args(["-euc", &format!("{}{logs}", before_logs())])
            .env("PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "the probe exits 0: {out:?}");
        (String::from_utf8(out.stdout).unwrap(), start.elapsed())
    }

    /// The probe's `port` lines and how long it took.
    fn probe(
        ports: &[(u16, &str)],
        peer: Option<&str>,
        grace: Duration,
    ) -> (Vec<String>, Duration) {
        let (out, took) = run(ports, peer, grace, 0, "");
        let lines = out
            .lines()
            .filter(|l| l.starts_with("port "))
            .map(str::to_string)
            .collect();
        (lines, took)
    }

    #[test]
    fn the_engines_log_follows_the_findings_in_the_same_command() {
        let port = free_port();
        let (out, _) = run(
            &[(port, "host")],
            None,
            Duration::ZERO,
            0,
            "echo 'level=info msg=\"hello\"'\n",
        );
        let (probe, log) = split_log(&out);
        let report = parse(probe);
        assert_eq!(report.engine_answers, Some(true), "{out}");
        assert_eq!(report.ports.len(), 1, "{out}");
        assert_eq!(log, "level=info msg=\"hello\"\n");
    }

    #[test]
    fn an_engine_that_does_not_answer_its_cli_ends_the_probe_at_once() {
        let port = free_port();
        let (out, took) = run(
            &[(port, "host")],
            None,
            Duration::from_secs(20),
            1,
            "echo log\n",
        );
        let (probe, _) = split_log(&out);
        let report = parse(probe);
        assert_eq!(report.engine_answers, Some(false), "{out}");
        assert!(report.ports.is_empty(), "nothing tried: {out}");
        assert!(took < Duration::from_secs(5), "no grace waited: {took:?}");
    }

    #[test]
    fn a_port_that_starts_listening_within_the_grace_answers() {
        let port = free_port();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
            // Keep listening until the probe has connected.
            let _ = l.accept();
        });
        let (lines, took) = probe(&[(port, "host")], None, Duration::from_secs(20));
        late.join().unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let waited: u64 = (lines[0].strip_prefix(&format!("port {port} ok ")))
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("{lines:?}"));
        assert!((1..=3).contains(&waited), "{lines:?}");
        assert!(
            took >= Duration::from_secs(1),
            "it waited for the listener: {took:?}"
        );
    }

    #[test]
    fn a_port_still_closed_when_the_grace_runs_out_is_closed() {
        let port = free_port();
        let (lines, took) = probe(&[(port, "host")], None, Duration::from_secs(2));
        assert_eq!(lines, vec![format!("port {port} closed")]);
        // The deadline is counted in whole seconds of the clock.
        assert!(
            took >= Duration::from_secs(1),
            "it waited the grace: {took:?}"
        );
        assert!(took < Duration::from_secs(10), "and no longer: {took:?}");
    }

    #[test]
    fn an_ingress_port_closed_everywhere_does_not_wait() {
        let port = free_port();
        let (lines, took) = probe(
            &[(port, "ingress")],
            Some("127.0.0.1"),
            Duration::from_secs(30),
        );
        assert_eq!(lines, vec![format!("port {port} closed elsewhere-closed")]);
        assert!(
            took < Duration::from_secs(10),
            "the mesh is not waited for: {took:?}"
        );
    }

    #[test]
    fn a_listening_port_answers_at_once() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (lines, took) = probe(&[(port, "host")], None, Duration::from_secs(30));
        // The wait is counted in whole seconds of `date +%s`: an answer at
        // once reads 1 when a second ticks over meanwhile (seen on a busy CI).
        assert!(
            lines == [format!("port {port} ok 0")] || lines == [format!("port {port} ok 1")],
            "{lines:?}"
        );
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
}
