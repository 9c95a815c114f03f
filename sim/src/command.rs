//! Commands on simulated hosts: which playbook script the executor runs (by
//! its exact text, so the simulation follows `playbooks/*.yaml` and any
//! `--playbook` override), with which `SU_*` inputs, and what it does.

use std::collections::HashMap;
use std::time::Duration;

use swarm_upgrade::exec::{boot, services};
use swarm_upgrade::facts::model::{InitSystem, Role};
use swarm_upgrade::playbook::{Playbooks, Script};
use swarm_upgrade::transport::{Cmd, CmdOutput};
use swarm_upgrade::version::engine_version_of;
use swarm_upgrade::version::resolve::Method;

use super::SimError;
use super::record::Op;
use super::world::{Effect, Ev, World, installed_engine};

const SCRIPTS: [Script; 8] = [
    Script::Stage,
    Script::Reboot,
    Script::Stop,
    Script::Start,
    Script::Logs,
    Script::Backup,
    Script::Install,
    Script::Restore,
];

/// Script text → which script, over every method and init system.
pub(crate) struct ScriptIndex {
    by_text: HashMap<String, Script>,
}

impl ScriptIndex {
    pub fn new(playbooks: &Playbooks) -> ScriptIndex {
        let mut by_text = HashMap::new();
        for m in [Method::DebianApt, Method::RhelDnf, Method::StaticBinaries] {
            for init in [InitSystem::Systemd, InitSystem::Sysvinit] {
                for s in SCRIPTS {
                    let text = playbooks.get(m).script(s, init).to_string();
                    let prev = by_text.insert(text, s);
                    assert!(
                        prev.is_none_or(|p| p == s),
                        "two different playbook scripts have the same text: the simulation cannot tell {s:?} from {prev:?}"
                    );
                }
            }
        }
        ScriptIndex { by_text }
    }

    fn classify(&self, cmd: &Cmd) -> Kind {
        let argv: Vec<&str> = cmd.argv.iter().map(String::as_str).collect();
        match argv.as_slice() {
            ["pgrep", "-x", "dockerd"] => Kind::Pgrep,
            ["sh", "-c", script] if *script == boot::SCRIPT => Kind::BootId,
            ["docker", "swarm", "unlock", ..] => Kind::Unlock,
            ["env", rest @ ..] => {
                let mut env = Env::default();
                let mut i = 0;
                while let Some((k, v)) = rest.get(i).and_then(|a| a.split_once('=')) {
                    let words = || v.split_whitespace().map(str::to_string);
                    let pairs = || {
                        words().filter_map(|w| {
                            w.split_once('=')
                                .map(|(n, v)| (n.to_string(), v.to_string()))
                        })
                    };
                    match k {
                        "SU_PACKAGES" => env.packages = pairs().collect(),
                        "SU_NEW_PACKAGES" => env.new_packages = words().collect(),
                        "SU_BACKUP_DIR" => env.backup_dir = v.to_string(),
                        _ => {}
                    }
                    i += 1;
                }
                match &rest[i..] {
                    // The service probe runs before the `logs` script.
                    ["sh", "-euc", script] => {
                        match script.strip_prefix(services::before_logs().as_str()) {
                            Some(logs) if self.by_text.get(logs) == Some(&Script::Logs) => {
                                Kind::VerifyServices
                            }
                            _ => match self.by_text.get(*script) {
                                Some(&s) => Kind::Script(s, env),
                                None => Kind::Unknown,
                            },
                        }
                    }
                    ["timeout", "-k", _, _, "sh", "-c", _] => match hook_point(cmd) {
                        Some(p) => Kind::Hook(p),
                        None => Kind::Unknown,
                    },
                    _ => Kind::Unknown,
                }
            }
            _ => Kind::Unknown,
        }
    }
}

/// The `SU_*` inputs the simulation acts on.
#[derive(Default)]
struct Env {
    packages: Vec<(String, String)>,
    new_packages: Vec<String>,
    backup_dir: String,
}

/// The `SU_HOOK` of an operator's hook command (host or controller).
pub(crate) fn hook_point(cmd: &Cmd) -> Option<String> {
    env_var(cmd, "SU_HOOK")
}

/// An `env NAME=value ...` variable of a command.
pub(crate) fn env_var(cmd: &Cmd, name: &str) -> Option<String> {
    let mut argv = cmd.argv.iter();
    if argv.next().map(String::as_str) != Some("env") {
        return None;
    }
    argv.map_while(|a| a.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

enum Kind {
    Hook(String),
    Script(Script, Env),
    Pgrep,
    BootId,
    Unlock,
    VerifyServices,
    Unknown,
}

fn out(status: i32, stdout: impl Into<String>, stderr: impl Into<String>) -> CmdOutput {
    CmdOutput {
        status,
        stdout: stdout.into(),
        stderr: stderr.into(),
    }
}

impl World {
    /// Runs `cmd` on node `id`'s host: the output now, the effect when the
    /// command completes (after its duration, returned).
    pub(crate) fn command(
        &mut self,
        id: &str,
        cmd: &Cmd,
        index: &ScriptIndex,
    ) -> Result<(CmdOutput, Duration), SimError> {
        let i = self.node_by_id(id)?;
        self.commands[i] += 1;
        let host = self.nodes[i].hostname.clone();
        if self.nodes[i].rebooting {
            return Err(SimError(format!(
                "host {host}: ssh: connect to host {host} port 22: No route to host (simulated reboot)"
            )));
        }
        if self.nodes[i].faults.ssh_lost {
            return Err(SimError(format!(
                "host {host}: ssh: connect to host {host} port 22: Connection timed out (simulated SSH loss)"
            )));
        }
        let kind = index.classify(cmd);
        let (op, duration) = match &kind {
            Kind::Script(s, _) => (Op::Script(*s), self.script_duration(*s)),
            Kind::Pgrep => (Op::Pgrep, self.delays.command),
            Kind::BootId => (Op::BootId, self.delays.command),
            Kind::Unlock => (Op::Unlock, self.delays.command),
            Kind::VerifyServices => (Op::VerifyServices, self.delays.command),
            Kind::Hook(p) => (
                Op::Hook {
                    point: p.clone(),
                    controller: false,
                },
                self.delays.command,
            ),
            Kind::Unknown => (Op::Unknown(cmd.display()), self.delays.command),
        };
        let (output, effect) = match self.injected_failure(i, &kind) {
            Some(o) => (o, None),
            None => self.interpret(i, kind, cmd),
        };
        self.record(i, op, Some(output.status));
        if let Some(e) = effect {
            self.schedule(duration, Ev::Effect(e));
        }
        Ok((output, duration))
    }

    /// What an operator's hook for node `i` prints and exits with.
    pub(crate) fn hook_output(&self, i: usize, point: &str) -> CmdOutput {
        if self.nodes[i].faults.hooks_fail {
            out(
                1,
                "",
                format!("sim: {point} hook refuses {}\n", self.nodes[i].hostname),
            )
        } else {
            out(0, format!("sim: {point} hook ok\n"), "")
        }
    }

    /// Runs an operator's hook on the controller: for the node it names
    /// (`SU_NODE`), like on its host, without touching the host.
    pub(crate) fn local_command(&mut self, cmd: &Cmd) -> Result<CmdOutput, SimError> {
        let (Some(node), Some(point)) = (env_var(cmd, "SU_NODE"), hook_point(cmd)) else {
            return Err(SimError(format!(
                "sim: unknown controller command: {}",
                cmd.display()
            )));
        };
        let i = self.node_by_name(&node);
        let output = self.hook_output(i, &point);
        self.record(
            i,
            Op::Hook {
                point,
                controller: true,
            },
            Some(output.status),
        );
        Ok(output)
    }

    fn script_duration(&self, s: Script) -> Duration {
        let d = &self.delays;
        match s {
            Script::Stop => d.stop,
            Script::Start => d.start,
            Script::Backup => d.backup,
            Script::Stage => d.stage,
            Script::Install => d.install,
            Script::Restore => d.restore,
            Script::Logs | Script::Reboot => d.command,
        }
    }

    fn injected_failure(&mut self, i: usize, kind: &Kind) -> Option<CmdOutput> {
        let Kind::Script(s, _) = kind else {
            return None;
        };
        let f = self.nodes[i]
            .faults
            .commands
            .iter_mut()
            .find(|f| f.script == *s && f.times != Some(0))?;
        if let Some(t) = &mut f.times {
            *t -= 1;
        }
        Some(out(f.status, "", f.stderr.clone()))
    }

    fn interpret(&mut self, i: usize, kind: Kind, cmd: &Cmd) -> (CmdOutput, Option<Effect>) {
        let n = &self.nodes[i];
        let lines = |pkgs: &[(String, String)]| -> String {
            pkgs.iter().map(|(n, v)| format!("{n}={v}\n")).collect()
        };
        match kind {
            Kind::Hook(p) => (self.hook_output(i, &p), None),
            Kind::VerifyServices => (self.probe_services(i, cmd), None),
            Kind::Pgrep => {
                if n.engine_up {
                    (out(0, "4242\n", ""), None)
                } else {
                    (out(1, "", ""), None)
                }
            }
            // boot_id, PID 1's start, btime: a new boot changes the first two.
            Kind::BootId => (
                out(
                    0,
                    format!(
                        "sim-boot-{}-{} {} 1764700000\n",
                        n.hostname,
                        n.boot,
                        100 + n.boot
                    ),
                    "",
                ),
                None,
            ),
            Kind::Unlock => {
                let given = cmd.stdin.as_deref().map(String::from_utf8_lossy);
                let key = self.autolock_key.as_deref().map(|k| format!("{k}\n"));
                if !n.engine_up {
                    (out(1, "", "Cannot connect to the Docker daemon"), None)
                } else if !n.locked {
                    (
                        out(1, "", "Error response from daemon: swarm is not locked"),
                        None,
                    )
                } else if key
                    .as_deref()
                    .is_some_and(|k| cmd.argv.iter().any(|a| a.contains(k.trim())))
                {
                    // Secrets go through stdin: one on the command line shows in `ps`.
                    (
                        out(2, "", "sim: the unlock key was passed on the command line"),
                        None,
                    )
                } else if given.as_deref() != key.as_deref() {
                    (out(1, "", "Error response from daemon: invalid key"), None)
                } else {
                    (out(0, "", ""), Some(Effect::Unlock(i)))
                }
            }
            Kind::Unknown => (
                out(127, "", format!("sim: unknown command: {}", cmd.display())),
                None,
            ),
            Kind::Script(s, env) => match s {
                Script::Stop => (out(0, "", ""), Some(Effect::EngineStop(i))),
                Script::Reboot => (out(0, "", ""), Some(Effect::Reboot(i))),
                Script::Start => {
                    if n.engine_up {
                        return (out(0, "", ""), None);
                    }
                    let version = installed_engine(&n.host.installed).unwrap_or_default();
                    if !n.faults.broken.contains(&version) {
                        return (out(0, "", ""), Some(Effect::EngineStart(i)));
                    }
                    // dockerd exits at once: systemd reports the failed unit;
                    // sysvinit's start-stop-daemon has already returned 0.
                    match n.host.init {
                        InitSystem::Systemd => (
                            out(
                                1,
                                "",
                                "Job for docker.service failed because the control process exited with error code.\nSee \"systemctl status docker.service\" and \"journalctl -xeu docker.service\" for details.\n",
                            ),
                            None,
                        ),
                        _ => (out(0, "Starting Docker: docker.\n", ""), None),
                    }
                }
                Script::Logs => (out(0, self.engine_log(i), ""), None),
                Script::Backup => {
                    let mut stdout: String = n
                        .host
                        .installed
                        .iter()
                        .map(|(p, v)| format!("{p}_{}_amd64.deb\n", v.replace(':', "%3a")))
                        .collect();
                    if n.role == Role::Manager {
                        stdout.push_str("swarm.tar.gz\n");
                    }
                    (out(0, stdout, ""), Some(Effect::Backup(i, env.backup_dir)))
                }
                Script::Stage | Script::Install => {
                    for (name, version) in &env.packages {
                        let offered = n
                            .host
                            .available
                            .get(name)
                            .is_some_and(|v| v.contains(version));
                        let cached = s == Script::Install
                            && n.cached.contains(&(name.clone(), version.clone()));
                        if n.faults.repo_down && !cached {
                            return (
                                out(
                                    100,
                                    "",
                                    format!(
                                        "E: Failed to fetch http://deb.sim/pool/{name}_{version}_amd64.deb  Could not connect to deb.sim:80 (10.0.0.1), connection timed out\nE: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?\n"
                                    ),
                                ),
                                None,
                            );
                        }
                        if !offered {
                            return (
                                out(
                                    100,
                                    "",
                                    format!("E: Version '{version}' for '{name}' was not found\n"),
                                ),
                                None,
                            );
                        }
                    }
                    if s == Script::Stage {
                        let staged: Vec<String> = env
                            .packages
                            .iter()
                            .map(|(n, v)| format!("{n}={v}"))
                            .collect();
                        return (
                            out(0, format!("staged: {}\n", staged.join(" ")), ""),
                            Some(Effect::Stage(i, env.backup_dir, env.packages)),
                        );
                    }
                    let text = lines(&env.packages);
                    (out(0, text, ""), Some(Effect::Install(i, env.packages)))
                }
                Script::Restore => match n.backups.get(&env.backup_dir) {
                    None => (
                        out(
                            100,
                            "",
                            format!(
                                "E: Unsupported file {}/packages/*.deb given on commandline\n",
                                env.backup_dir
                            ),
                        ),
                        None,
                    ),
                    Some(backup) => {
                        let text = lines(backup);
                        (
                            out(0, text, ""),
                            Some(Effect::Restore(i, env.backup_dir, env.new_packages)),
                        )
                    }
                },
            },
        }
    }
}

/// The upstream engine version of a package version (`5:26.1.5-1~debian.12` → `26.1.5`).
pub(crate) fn upstream(v: &str) -> String {
    engine_version_of(v).map_or_else(|| v.to_string(), |e| e.to_string())
}

impl World {
    /// What the service probe prints on node `i`: its runtime from its
    /// installed packages; its ports answer unless closed on it
    /// ([`super::SimCluster::close_ports`]); service names resolve.
    fn probe_services(&self, i: usize, cmd: &Cmd) -> CmdOutput {
        let n = &self.nodes[i];
        let input = cmd
            .stdin
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let mut lines = input.lines();
        let (ports, names) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
        let installed = |names: &[&str]| {
            names
                .iter()
                .find_map(|p| n.host.installed.get(*p))
                .map_or("1.7.0".to_string(), |v| services::upstream(v).to_string())
        };
        let mut text = format!(
            "engine-answers {}\ncontainerd-version containerd sim {}\nrunc-version runc version {}\ncontainerd-running {}\n",
            if n.engine_up { "yes" } else { "no" },
            installed(&["containerd", "containerd.io"]),
            installed(&["runc"]),
            if n.engine_up { "yes" } else { "no" }
        );
        let log = format!("{}\n{}", services::LOG_MARK, self.engine_log(i));
        if !n.engine_up {
            return out(0, text + &log, "");
        }
        let closed = n
            .faults
            .closed_ports
            .as_ref()
            .is_some_and(|v| upstream(&n.engine_version) == *v);
        for pm in ports.split_whitespace() {
            let p = pm.split(':').next().unwrap_or(pm);
            if closed {
                text.push_str(&format!("port {p} closed elsewhere-ok\n"));
            } else {
                text.push_str(&format!("port {p} ok\n"));
            }
        }
        for s in names.split_whitespace() {
            text.push_str(&format!("dns {s} ok\n"));
        }
        out(0, text + &log, "")
    }

    /// What the playbook's `logs` script prints on node `i`.
    fn engine_log(&self, i: usize) -> String {
        let n = &self.nodes[i];
        let version = installed_engine(&n.host.installed).unwrap_or_default();
        let mut log = format!("sim: dockerd {version} on {}\n", n.hostname);
        if n.faults.broken.contains(&version) {
            log.push_str(&format!(
                "sim: deliberately broken dockerd {version}: exit status 1\n"
            ));
        }
        log
    }
}
