//! Upgrade methods as data: `playbooks/*.yaml`.
//!
//! A playbook says, per method, how to stop and start the engine (per init
//! system), back up, install the pin (and hold it) and restore the backup, as
//! short shell scripts. The scripts are the playbook author's code; the values
//! (package versions, paths) reach them only as environment variables whose
//! characters are checked here, so no value from a cluster can become shell.
//! The playbooks shipped in `playbooks/` are compiled in; `--playbook FILE`
//! replaces the one of the same name at run time.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::usage;
use crate::facts::model::{InitSystem, Role};
use crate::plan::Staged;
use crate::transport::Cmd;
use crate::version::resolve::Method;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub name: String,
    pub description: String,
    pub engine: EngineScripts,
    /// Runs before the node is drained, its engine untouched: downloads the
    /// target packages into the host's cache and secures the old ones, so
    /// that the drained window only unpacks (the `stage` step). Absent: no
    /// such step for this method.
    #[serde(default)]
    pub stage: Option<String>,
    /// `install` leaves a running engine alone (its package scripts are
    /// kept from stopping or restarting it), so a staged node installs
    /// right after its drain, while its tasks leave. Needs `stage` (which
    /// secures the old packages first). Default false: the install runs
    /// with the engine stopped, after `backup`.
    #[serde(default)]
    pub install_while_running: bool,
    pub backup: String,
    pub install: String,
    pub restore: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineScripts {
    pub systemd: InitScripts,
    pub sysvinit: InitScripts,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitScripts {
    pub stop: String,
    pub start: String,
    pub logs: String,
    /// Reboots the host (`--reboot`); absent: [`DEFAULT_REBOOT_SYSTEMD`] or
    /// [`DEFAULT_REBOOT_SYSVINIT`].
    #[serde(default)]
    pub reboot: Option<String>,
}

/// The reboot is detached and delayed: the SSH command that asks for it must
/// return before sshd goes down, or the step could not tell a reboot that
/// started from a command that was never delivered. `setsid` takes it out
/// of the SSH (and sudo) session, so closing that session does not end it.
pub const DEFAULT_REBOOT_SYSTEMD: &str =
    "setsid sh -c 'sleep 1; systemctl reboot' </dev/null >/dev/null 2>&1 &\n";
/// `reboot` talks to whatever init the host has (sysvinit, or an init that
/// provides its own `reboot`).
pub const DEFAULT_REBOOT_SYSVINIT: &str =
    "setsid sh -c 'sleep 1; reboot' </dev/null >/dev/null 2>&1 &\n";

const BUILTIN: [(&str, &str); 3] = [
    (
        "debian-apt",
        include_str!("../../playbooks/debian-apt.yaml"),
    ),
    ("rhel-dnf", include_str!("../../playbooks/rhel-dnf.yaml")),
    (
        "static-binaries",
        include_str!("../../playbooks/static-binaries.yaml"),
    ),
];

/// The playbooks in use: the built-in ones, with overrides applied.
#[derive(Debug, Clone)]
pub struct Playbooks {
    by_name: BTreeMap<String, Playbook>,
}

impl Playbooks {
    /// The built-in playbooks, then each override file replacing the one of its name.
    pub fn load(overrides: &[impl AsRef<Path>]) -> anyhow::Result<Playbooks> {
        let mut by_name = BTreeMap::new();
        for (name, text) in BUILTIN {
            let pb = parse(text, Path::new(&format!("playbooks/{name}.yaml")))?;
            by_name.insert(pb.name.clone(), pb);
        }
        for path in overrides {
            let path = path.as_ref();
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("{}: cannot read the playbook: {e}", path.display())))?;
            let pb = parse(&text, path)?;
            if !by_name.contains_key(&pb.name) {
                return Err(usage(format!(
                    "{}: playbook name `{}` is not a method swarm-upgrade knows (debian-apt, rhel-dnf, static-binaries)",
                    path.display(),
                    pb.name
                )));
            }
            by_name.insert(pb.name.clone(), pb);
        }
        Ok(Playbooks { by_name })
    }

    /// The built-in playbooks alone (`plan`, which takes no `--playbook`).
    pub fn builtin() -> Playbooks {
        Playbooks::load(&[] as &[&Path]).expect("the built-in playbooks parse")
    }

    pub fn get(&self, method: Method) -> &Playbook {
        self.by_name
            .get(method.name())
            .expect("every method has a built-in playbook")
    }

    /// The methods whose playbook has a `stage` script: the planner gives
    /// their nodes a `stage` step before the drain.
    pub fn staged(&self) -> Vec<Staged> {
        [Method::DebianApt, Method::RhelDnf, Method::StaticBinaries]
            .into_iter()
            .filter(|m| self.get(*m).has_stage())
            .map(|method| Staged {
                method,
                while_running: self.get(method).install_while_running,
            })
            .collect()
    }
}

fn parse(text: &str, path: &Path) -> anyhow::Result<Playbook> {
    let pb: Playbook = serde_saphyr::from_str(text).map_err(|e| {
        usage(format!(
            "{}: {}\n  a playbook has: name, description, engine {{systemd, sysvinit}} {{stop, start, logs, reboot (optional)}}, stage (optional), install_while_running (optional), backup, install, restore",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    if pb.install_while_running && !pb.has_stage() {
        return Err(usage(format!(
            "{}: `install_while_running: true` needs a `stage` script, which secures the installed packages before the install runs; add one, or remove install_while_running",
            path.display()
        )));
    }
    Ok(pb)
}

/// Where swarm-upgrade keeps its state on hosts (backups); the fact script
/// measures its free space.
pub const HOST_STATE_DIR: &str = "/var/lib/swarm-upgrade";

/// The backup directory of a run on a host (`SU_BACKUP_DIR`).
pub fn backup_dir(run_id: &str) -> String {
    format!("{HOST_STATE_DIR}/backups/{run_id}")
}

/// Which script of a playbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Stop,
    Start,
    Logs,
    Backup,
    Install,
    Restore,
    /// `--reboot`: reboots the host, detached (see [`DEFAULT_REBOOT_SYSTEMD`]).
    Reboot,
    /// Before the drain: the target packages downloaded, the old ones
    /// secured (optional: [`Playbook::stage`]; empty when absent).
    Stage,
}

/// The inputs of a playbook script on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptEnv {
    /// Target set, `name=version`.
    pub packages: Vec<String>,
    /// Installed before the upgrade, `name=version`.
    pub old_packages: Vec<String>,
    /// Names in the target set that were not installed before.
    pub new_packages: Vec<String>,
    pub backup_dir: String,
    pub role: Option<Role>,
    pub bundle: Option<String>,
}

impl Playbook {
    /// Whether it stages packages before the drain (a non-blank `stage`).
    pub fn has_stage(&self) -> bool {
        self.stage.as_deref().is_some_and(|s| !s.trim().is_empty())
    }

    pub fn script(&self, which: Script, init: InitSystem) -> &str {
        // A host whose init system is not recognised is driven like sysvinit:
        // `service docker stop/start` also works through systemd's compat layer.
        let engine = match init {
            InitSystem::Systemd => &self.engine.systemd,
            _ => &self.engine.sysvinit,
        };
        match which {
            Script::Stop => &engine.stop,
            Script::Start => &engine.start,
            Script::Logs => &engine.logs,
            Script::Reboot => engine.reboot.as_deref().unwrap_or(match init {
                InitSystem::Systemd => DEFAULT_REBOOT_SYSTEMD,
                _ => DEFAULT_REBOOT_SYSVINIT,
            }),
            Script::Stage => self.stage.as_deref().unwrap_or(""),
            Script::Backup => &self.backup,
            Script::Install => &self.install,
            Script::Restore => &self.restore,
        }
    }

    /// The command running one script as root with its inputs in the environment.
    pub fn command(&self, which: Script, init: InitSystem, env: &ScriptEnv) -> anyhow::Result<Cmd> {
        self.command_after(which, init, env, "")
    }

    /// [`Playbook::command`] with `before` run first in the same shell (one
    /// round trip for two things, e.g. the service probe and the log).
    pub fn command_after(
        &self,
        which: Script,
        init: InitSystem,
        env: &ScriptEnv,
        before: &str,
    ) -> anyhow::Result<Cmd> {
        let names: Vec<String> = env
            .packages
            .iter()
            .map(|p| p.split('=').next().unwrap_or(p).to_string())
            .collect();
        let vars = [
            ("SU_PACKAGES", env.packages.join(" ")),
            ("SU_PACKAGE_NAMES", names.join(" ")),
            ("SU_OLD_PACKAGES", env.old_packages.join(" ")),
            ("SU_NEW_PACKAGES", env.new_packages.join(" ")),
            ("SU_BACKUP_DIR", env.backup_dir.clone()),
            (
                "SU_ROLE",
                match env.role {
                    Some(Role::Manager) => "manager",
                    Some(Role::Worker) => "worker",
                    None => "",
                }
                .to_string(),
            ),
            ("SU_BUNDLE", env.bundle.clone().unwrap_or_default()),
        ];
        let mut argv = vec!["env".to_string()];
        for (k, v) in vars {
            check_value(k, &v)?;
            argv.push(format!("{k}={v}"));
        }
        argv.extend([
            "sh".into(),
            "-euc".into(),
            format!("{before}{}", self.script(which, init)),
        ]);
        Ok(Cmd::new(argv).privileged())
    }
}

/// Values are package words and paths: letters, digits and `.+~:=_-/ `.
/// Anything else (quotes, `$`, `;`, globs, newlines) is refused outright.
fn check_value(name: &str, value: &str) -> anyhow::Result<()> {
    let ok = value.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, '.' | '+' | '~' | ':' | '=' | '_' | '-' | '/' | ' ')
    }) && !value
        .split(' ')
        .any(|w| w.starts_with('-') || w.starts_with('~'));
    if ok {
        Ok(())
    } else {
        Err(usage(format!(
            "refusing to pass {name}=`{value}` to a playbook script: only letters, digits and . + ~ : = _ - / are allowed"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_playbooks_parse() {
        let pbs = Playbooks::load(&[] as &[&Path]).unwrap();
        for m in [Method::DebianApt, Method::RhelDnf, Method::StaticBinaries] {
            let pb = pbs.get(m);
            assert_eq!(pb.name, m.name());
            for s in [
                Script::Stop,
                Script::Start,
                Script::Logs,
                Script::Backup,
                Script::Install,
                Script::Restore,
                Script::Reboot,
            ] {
                assert!(!pb.script(s, InitSystem::Systemd).trim().is_empty());
                assert!(!pb.script(s, InitSystem::Sysvinit).trim().is_empty());
            }
        }
        // systemd: the socket is stopped with the service (socket activation).
        let stop = pbs
            .get(Method::DebianApt)
            .script(Script::Stop, InitSystem::Systemd);
        assert!(stop.contains("docker.socket"), "{stop}");
        // The install never leaves the engine unpinned.
        assert!(pbs.get(Method::DebianApt).install.contains("apt-mark hold"));
        assert!(pbs.get(Method::RhelDnf).install.contains("versionlock add"));
        assert!(pbs.get(Method::DebianApt).install.contains("policy-rc.d"));
        // Staging downloads with install's options, so install only unpacks.
        let stage = pbs.get(Method::DebianApt).stage.as_deref().unwrap();
        assert!(stage.contains("--download-only"), "{stage}");
        assert!(stage.contains("--allow-downgrades"), "{stage}");
        assert!(stage.contains("DPkg::Lock::Timeout"), "{stage}");
        let stage = pbs.get(Method::RhelDnf).stage.as_deref().unwrap();
        assert!(stage.contains("--downloadonly"), "{stage}");
        // The bundle of static-binaries is on the host already.
        // apt's install leaves the running engine alone (policy-rc.d); RPM
        // scriptlets restart docker themselves.
        let staged = |m, while_running| Staged {
            method: m,
            while_running,
        };
        assert_eq!(
            pbs.staged(),
            vec![
                staged(Method::DebianApt, true),
                staged(Method::RhelDnf, false)
            ]
        );
        assert_eq!(
            pbs.get(Method::StaticBinaries)
                .script(Script::Stage, InitSystem::Systemd),
            ""
        );
    }

    #[test]
    fn a_playbook_without_a_stage_script_is_not_staged() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("apt.yaml");
        let text = include_str!("../../playbooks/debian-apt.yaml");
        let start = text.find("\nstage: |").unwrap();
        let end = start + text[start..].find("\n\n").unwrap();
        let unstaged = format!("{}{}", &text[..start], &text[end..]);
        // Installing with the engine running needs the old packages
        // secured first, which only `stage` does.
        std::fs::write(&p, &unstaged).unwrap();
        let e = format!("{:#}", Playbooks::load(&[&p]).unwrap_err());
        assert!(e.contains(&p.display().to_string()), "{e}");
        assert!(
            e.contains("`install_while_running: true` needs a `stage` script"),
            "{e}"
        );
        std::fs::write(&p, unstaged.replace("install_while_running: true\n", "")).unwrap();
        let pbs = Playbooks::load(&[&p]).unwrap();
        assert_eq!(pbs.get(Method::DebianApt).stage, None);
        assert_eq!(
            pbs.staged(),
            vec![Staged {
                method: Method::RhelDnf,
                while_running: false
            }]
        );
    }

    #[test]
    fn builtin_scripts_are_valid_posix_shell() {
        let pbs = Playbooks::load(&[] as &[&Path]).unwrap();
        for m in [Method::DebianApt, Method::RhelDnf, Method::StaticBinaries] {
            for init in [InitSystem::Systemd, InitSystem::Sysvinit] {
                for s in [
                    Script::Stop,
                    Script::Start,
                    Script::Logs,
                    Script::Backup,
                    Script::Install,
                    Script::Restore,
                    Script::Reboot,
                    Script::Stage,
                ] {
                    let script = pbs.get(m).script(s, init);
                    let out = std::process::Command::new("sh")
                        .args(["-n", "-c", script])
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{} {s:?}: {}",
                        m.name(),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
    }

    #[test]
    fn values_reach_scripts_only_through_the_environment() {
        let pbs = Playbooks::load(&[] as &[&Path]).unwrap();
        let env = ScriptEnv {
            packages: vec![
                "docker.io=26.1.5+dfsg1-9+deb13u1".into(),
                "docker-cli=26.1.5+dfsg1-9+deb13u1".into(),
            ],
            backup_dir: "/var/lib/swarm-upgrade/backups/r1".into(),
            role: Some(Role::Manager),
            ..Default::default()
        };
        let cmd = pbs
            .get(Method::DebianApt)
            .command(Script::Install, InitSystem::Sysvinit, &env)
            .unwrap();
        assert!(cmd.privileged);
        assert_eq!(cmd.argv[0], "env");
        assert!(
            cmd.argv
                .contains(&"SU_PACKAGE_NAMES=docker.io docker-cli".to_string())
        );
        assert!(cmd.argv.contains(&"SU_ROLE=manager".to_string()));
        assert_eq!(cmd.argv[cmd.argv.len() - 2], "-euc");

        for bad in [
            "docker.io=1;reboot",
            "x=$(id)",
            "a=1\nb",
            "x='",
            "--force-all",
            "x=*",
        ] {
            let env = ScriptEnv {
                packages: vec![bad.into()],
                ..Default::default()
            };
            let err =
                pbs.get(Method::DebianApt)
                    .command(Script::Install, InitSystem::Systemd, &env);
            assert!(err.is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn an_override_replaces_the_playbook_of_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mine.yaml");
        let text = include_str!("../../playbooks/debian-apt.yaml").replace(
            "apt-get install -y -q",
            "apt-get install -y -q -o APT::Mine=1",
        );
        std::fs::write(&p, text).unwrap();
        let pbs = Playbooks::load(&[&p]).unwrap();
        assert!(pbs.get(Method::DebianApt).install.contains("APT::Mine=1"));

        std::fs::write(&p, "name: debian-apt\n").unwrap();
        let err = Playbooks::load(&[&p]).unwrap_err().to_string();
        assert!(err.contains("mine.yaml"), "{err}");
        assert!(err.contains("stage (optional)"), "{err}");
    }
}
