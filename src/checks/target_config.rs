//! `target-config` (P8): the target release's dockerd must accept the
//! host's configuration, or the engine does not come back after its
//! upgrade. Two sources: the target binary itself (`dockerd --validate`,
//! 23.0 and later, run at gathering time on the host from the package cache
//! or the static bundle, see `cluster::validate`), and the flags given on
//! dockerd's command line (`DOCKER_OPTS`, systemd drop-ins), which
//! `daemon.json` checks never see, against the flags a release removed
//! (`hazards/daemon-flags/removed.yaml`).

use std::sync::OnceLock;

use serde::Deserialize;

use super::{Check, CheckContext, Finding, Severity};
use crate::facts::model::{HostFacts, InitSystem};
use crate::version::{EngineVersion, engine_version_of};

pub struct TargetConfig;

const ID: &str = "target-config";
const DEFAULT_FILE: &str = "/etc/default/docker";
const DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// One flag a release removed, as written in the data file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RemovedFlag {
    flag: String,
    #[serde(default)]
    short: Option<String>,
    removed_in: EngineVersion,
    remedy: String,
    #[allow(dead_code)] // documentation for the reader of the data file
    source: String,
}

const REMOVED_FLAGS: &str = include_str!("../../hazards/daemon-flags/removed.yaml");

fn removed_flags() -> &'static [RemovedFlag] {
    static FLAGS: OnceLock<Vec<RemovedFlag>> = OnceLock::new();
    // Compiled in and parsed by a unit test: a bad file fails the build's tests.
    FLAGS.get_or_init(|| {
        serde_saphyr::from_str(REMOVED_FLAGS)
            .expect("hazards/daemon-flags/removed.yaml parses (unit-tested)")
    })
}

/// One command-line argument dockerd gets from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DaemonArg {
    pub file: String,
    pub line: usize,
    /// The argument as dockerd sees it (`--graph=/srv/docker`, `-H`, `fd://`).
    pub arg: String,
}

impl DaemonArg {
    /// The flag's name (`--graph`) when the argument is a flag.
    fn flag(&self) -> Option<&str> {
        self.arg
            .starts_with('-')
            .then(|| self.arg.split('=').next().unwrap_or(&self.arg))
    }
}

/// The arguments dockerd is started with beyond its unit's defaults:
/// `DOCKER_OPTS` from /etc/default/docker (read by the sysvinit script, and
/// by Debian's docker.io unit; Docker CE's unit ignores it), then the last
/// `ExecStart=` of the systemd drop-ins (which replaces the unit's), without
/// its binary and without unexpanded `$VARIABLES`.
pub(crate) fn daemon_args(host: &HostFacts) -> Vec<DaemonArg> {
    let Some(files) = &host.daemon_flag_files else {
        return vec![];
    };
    let mut args = vec![];
    let reads_default =
        host.init == InitSystem::Sysvinit || host.installed.contains_key("docker.io");
    if reads_default && let Some(text) = files.get(DEFAULT_FILE) {
        // The last assignment wins, as when the shell sources the file.
        let last = text
            .lines()
            .enumerate()
            .filter_map(|(i, l)| {
                let l = l.trim_start();
                let l = l.strip_prefix("export ").unwrap_or(l);
                l.strip_prefix("DOCKER_OPTS=").map(|v| (i + 1, v))
            })
            .last();
        if let Some((line, value)) = last {
            // The assignment's value, then split on blanks as the unquoted
            // `$DOCKER_OPTS` in the init script (or the unit) splits it.
            let value = shlex::split(value).unwrap_or_default().join(" ");
            for arg in value.split_whitespace().map(str::to_string) {
                args.push(DaemonArg {
                    file: DEFAULT_FILE.into(),
                    line,
                    arg,
                });
            }
        }
    }
    let mut exec_start = None;
    for (file, text) in files.iter().filter(|(f, _)| f.ends_with(".conf")) {
        for (i, l) in text.lines().enumerate() {
            if let Some(v) = l.trim().strip_prefix("ExecStart=") {
                exec_start = Some((file, i + 1, v));
            }
        }
    }
    if let Some((file, line, value)) = exec_start {
        let words = shlex::split(value).unwrap_or_default();
        for arg in words.into_iter().skip(1).filter(|w| !w.starts_with('$')) {
            args.push(DaemonArg {
                file: file.clone(),
                line,
                arg,
            });
        }
    }
    args
}

/// What the target dockerd is asked to validate: the config file (when the
/// host has one) and the command-line arguments.
pub(crate) fn validate_args(host: &HostFacts) -> Vec<String> {
    let mut args = vec![];
    if host.daemon_json.is_some() {
        args.extend(["--config-file".to_string(), DAEMON_JSON.to_string()]);
    }
    args.extend(daemon_args(host).into_iter().map(|a| a.arg));
    args
}

impl Check for TargetConfig {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "the target dockerd accepts the host's configuration (dockerd --validate with the target binary; \
         flags in DOCKER_OPTS and systemd drop-ins that the target removed)"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Warn, Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let mut out = vec![];
        for (node, host) in ctx.hosts_to_upgrade() {
            let name = Some(node.hostname.as_str());
            let current = engine_version_of(&node.engine_version);
            for a in daemon_args(host) {
                let Some(flag) = a.flag() else { continue };
                let Some(removed) = removed_flags().iter().find(|r| {
                    (r.flag == flag || r.short.as_deref() == Some(flag))
                        && r.removed_in <= *ctx.pin
                        && current.as_ref().is_none_or(|c| *c < r.removed_in)
                }) else {
                    continue;
                };
                out.push(Finding::block(
                    ID,
                    name,
                    format!(
                        "host {}: {} line {} passes {flag} to dockerd, which Engine {} removed: \
                         the target {} refuses to start with it; {}",
                        host.host, a.file, a.line, removed.removed_in, ctx.pin, removed.remedy
                    ),
                ));
            }
            let Some(v) = &host.target_validation else {
                continue;
            };
            match v.exit {
                Some(0) => {}
                Some(code) => out.push(Finding::block(
                    ID,
                    name,
                    format!(
                        "host {}: the target dockerd ({}) rejects this host's configuration \
                         (dockerd --validate{} exited {code}): {}; fix the file or flag it names \
                         before the upgrade, or dockerd {} will not start",
                        host.host,
                        v.source,
                        v.args.iter().map(|a| format!(" {a}")).collect::<String>(),
                        one_line(&v.output),
                        ctx.pin
                    ),
                )),
                None => out.push(Finding::warn(
                    ID,
                    name,
                    format!(
                        "host {}: the configuration could not be validated with the target dockerd \
                         ({}): {}; run `dockerd --validate --config-file {DAEMON_JSON}` with the \
                         {} binary by hand",
                        host.host,
                        v.source,
                        one_line(&v.output),
                        ctx.pin
                    ),
                )),
            }
        }
        out
    }
}

/// dockerd's output, one line (its last lines carry the reason).
fn one_line(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::checks::fixtures::{Fixture, the};
    use crate::facts::model::TargetValidation;

    fn with_files(fx: &mut Fixture, host: &str, files: &[(&str, &str)]) {
        fx.host(host).daemon_flag_files = Some(
            files
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect::<BTreeMap<_, _>>(),
        );
    }

    #[test]
    fn the_removed_flags_file_parses() {
        assert!(removed_flags().iter().any(|f| f.flag == "--graph"));
        for f in removed_flags() {
            assert!(f.flag.starts_with("--"), "{f:?}");
        }
    }

    #[test]
    fn passes_on_flags_the_target_keeps_and_a_valid_config() {
        let mut fx = Fixture::healthy();
        fx.host("w1").init = InitSystem::Sysvinit;
        with_files(
            &mut fx,
            "w1",
            &[(
                DEFAULT_FILE,
                "#DOCKER_OPTS=\"--graph /x\"\nDOCKER_OPTS=\"--data-root /srv/docker\"\n",
            )],
        );
        fx.host("w1").target_validation = Some(TargetValidation {
            source: "docker-ce=5:26.1.5-1~debian.12~bookworm".into(),
            args: vec!["--data-root".into(), "/srv/docker".into()],
            exit: Some(0),
            output: "configuration OK".into(),
        });
        assert!(fx.run(&TargetConfig).is_empty());
    }

    #[test]
    fn blocks_a_removed_flag_in_docker_opts_with_file_line_and_target() {
        let mut fx = Fixture::healthy();
        fx.host("w1").init = InitSystem::Sysvinit;
        with_files(
            &mut fx,
            "w1",
            &[(
                DEFAULT_FILE,
                "# options\nDOCKER_OPTS='-H unix:// --oom-score-adjust=-500'\n",
            )],
        );
        let f = fx.run(&TargetConfig);
        let f = the(&f, Severity::Block);
        assert_eq!(f.node.as_deref(), Some("w1"));
        assert_eq!(
            f.message,
            "host w1: /etc/default/docker line 2 passes --oom-score-adjust to dockerd, which Engine 26.0.0 \
             removed: the target 26.1.5 refuses to start with it; delete it (set OOMScoreAdjust= in a \
             systemd drop-in for docker.service instead)"
        );
        // Already past the release that removed it: the flag is someone else's news.
        fx.node("w1").engine_version = "26.0.0".into();
        assert!(fx.run(&TargetConfig).is_empty());
    }

    #[test]
    fn blocks_a_removed_short_flag_in_a_drop_in_and_ignores_docker_opts_for_docker_ce_units() {
        let mut fx = Fixture::healthy();
        fx.node("w2").engine_version = "20.10.24".into();
        with_files(
            &mut fx,
            "w2",
            &[
                (DEFAULT_FILE, "DOCKER_OPTS=\"--cluster-store=consul://x\"\n"),
                (
                    "/etc/systemd/system/docker.service.d/override.conf",
                    "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// -g /srv/docker $OPTS\n",
                ),
            ],
        );
        let args: Vec<String> = daemon_args(fx.host("w2"))
            .into_iter()
            .map(|a| a.arg)
            .collect();
        assert_eq!(args, ["-H", "fd://", "-g", "/srv/docker"]);
        let f = fx.run(&TargetConfig);
        let f = the(&f, Severity::Block);
        assert!(
            f.message.starts_with(
                "host w2: /etc/systemd/system/docker.service.d/override.conf line 3 passes -g to dockerd, \
                 which Engine 23.0.0 removed"
            ),
            "{}",
            f.message
        );
        assert_eq!(
            validate_args(fx.host("w2")),
            [
                "--config-file",
                DAEMON_JSON,
                "-H",
                "fd://",
                "-g",
                "/srv/docker"
            ]
        );
    }

    #[test]
    fn blocks_what_the_target_binary_rejects_and_warns_when_it_could_not_run() {
        let mut fx = Fixture::healthy();
        fx.host("m2").target_validation = Some(TargetValidation {
            source: "docker-ce=5:26.1.5-1~debian.12~bookworm".into(),
            args: vec!["--config-file".into(), DAEMON_JSON.into()],
            exit: Some(1),
            output: "unable to configure the Docker daemon with file /etc/docker/daemon.json: \
                     the following directives don't match any configuration option: foo\n"
                .into(),
        });
        fx.host("w1").target_validation = Some(TargetValidation {
            source: "docker-ce=5:26.1.5-1~debian.12~bookworm".into(),
            args: vec![],
            exit: None,
            output: "apt-get download failed: E: Unable to locate package".into(),
        });
        let f = fx.run(&TargetConfig);
        let b = the(&f, Severity::Block);
        assert_eq!(b.node.as_deref(), Some("m2"));
        assert!(
            b.message.contains("(dockerd --validate --config-file /etc/docker/daemon.json exited 1): unable to configure")
                && b.message.contains("don't match any configuration option: foo"),
            "{}",
            b.message
        );
        let w = the(&f, Severity::Warn);
        assert_eq!(w.node.as_deref(), Some("w1"));
        assert!(
            w.message.contains("could not be validated"),
            "{}",
            w.message
        );
    }
}
