//! The target release's dockerd, asked whether it accepts a host's
//! configuration (`dockerd --validate`, Engine 23.0 and later), before the
//! upgrade. The binary is taken from the target package (`apt-get download`
//! of the resolved package, unpacked into a temporary directory) or from the
//! static bundle, and run from there: nothing is installed, and the running
//! engine is not touched. The temporary directory is removed on exit.

use std::time::Duration;

use crate::checks::validate_args;
use crate::facts::model::{HostFacts, TargetValidation};
use crate::transport::ssh::SshHost;
use crate::transport::{Cmd, Transport};
use crate::version::EngineVersion;
use crate::version::resolve::{Method, Resolution};

/// Packages that ship dockerd.
const ENGINE_PACKAGES: [&str; 2] = ["docker.io", "docker-ce"];

/// Where the target dockerd comes from on this host, if it can be had
/// without installing anything.
enum Source {
    /// `apt-get download NAME=VERSION`.
    Apt(String),
    /// A static-binaries bundle (`docker/dockerd` inside).
    Bundle(String),
}

impl Source {
    fn of(r: &Resolution) -> Option<Source> {
        match r.method {
            Method::DebianApt => r
                .packages
                .iter()
                .find(|p| ENGINE_PACKAGES.contains(&p.name.as_str()))
                .map(|p| Source::Apt(format!("{}={}", p.name, p.to))),
            Method::StaticBinaries => r.bundle.clone().map(Source::Bundle),
            // dnf can download too, but no lab covers it yet.
            Method::RhelDnf => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Apt(spec) => spec.clone(),
            Source::Bundle(path) => path.clone(),
        }
    }
}

/// Whether `--validate` exists in the target (added in 23.0).
pub fn applies(pin: &EngineVersion) -> bool {
    pin.major() >= 23
}

/// Validates the host's configuration with the target dockerd. `None` when
/// the target has no `--validate` or no binary can be had here.
pub async fn validate(
    ssh: &SshHost,
    host: &HostFacts,
    r: &Resolution,
    pin: &EngineVersion,
    timeout: Duration,
) -> Option<TargetValidation> {
    if !applies(pin) {
        return None;
    }
    let source = Source::of(r)?;
    let args = validate_args(host);
    let cmd = Cmd::script(script(&source, &args))
        .privileged()
        .timeout(timeout);
    let mut v = match ssh.run(&cmd).await {
        Ok(out) => parse(&out.stdout),
        Err(e) => TargetValidation {
            exit: None,
            output: format!("{e:#}"),
            ..Default::default()
        },
    };
    v.source = source.describe();
    v.args = args;
    Some(v)
}

fn quote(s: &str) -> String {
    shlex::try_quote(s)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| "''".into())
}

/// The validation script: fetch, unpack only dockerd, run `--validate`.
/// Sections: `### error` (could not run), or `### output` and `### exit`.
fn script(source: &Source, args: &[String]) -> String {
    let fetch = match source {
        Source::Apt(spec) => format!(
            "apt-get download -o Debug::NoLocking=1 {q} >fetch.log 2>&1 || \
             {{ echo '### error'; echo 'apt-get download {spec} failed:'; tail -n 3 fetch.log; exit 0; }}\n\
             dpkg-deb --fsys-tarfile ./*.deb | tar -x -C root --wildcards '*/dockerd' 2>/dev/null\n",
            q = quote(spec),
            spec = spec.replace('\'', ""),
        ),
        Source::Bundle(path) => format!(
            "tar -xzf {} -C root --wildcards '*/dockerd' 2>/dev/null\n",
            quote(path)
        ),
    };
    let argv: Vec<String> = args.iter().map(|a| quote(a)).collect();
    format!(
        "export LC_ALL=C\n\
         PATH=\"$PATH:/usr/local/sbin:/usr/sbin:/sbin\"; export PATH\n\
         d=$(mktemp -d /tmp/swarm-upgrade-validate.XXXXXX) || {{ echo '### error'; echo 'mktemp failed'; exit 0; }}\n\
         trap 'rm -rf \"$d\"' EXIT\n\
         cd \"$d\" && mkdir root || exit 0\n\
         {fetch}\
         bin=$(find root -type f -name dockerd | head -n 1)\n\
         [ -n \"$bin\" ] || {{ echo '### error'; echo 'no dockerd in the target package'; exit 0; }}\n\
         \"$bin\" --validate {args} >out 2>&1; rc=$?\n\
         echo '### output'; tail -n 20 out\n\
         echo '### exit'; echo $rc\n",
        args = argv.join(" ")
    )
}

fn parse(out: &str) -> TargetValidation {
    let mut section = "";
    let mut error = String::new();
    let mut output = String::new();
    let mut exit = None;
    for line in out.lines() {
        if let Some(name) = line.strip_prefix("### ") {
            section = match name.trim() {
                "error" => "error",
                "output" => "output",
                "exit" => "exit",
                _ => "",
            };
            continue;
        }
        match section {
            "error" => error.push_str(&format!("{line}\n")),
            "output" => output.push_str(&format!("{line}\n")),
            "exit" => exit = line.trim().parse().ok(),
            _ => {}
        }
    }
    if exit.is_none() && error.is_empty() {
        error = format!("the validation script printed no verdict: {}", out.trim());
    }
    TargetValidation {
        exit,
        output: if exit.is_some() { output } else { error },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_quotes_every_argument_and_cleans_up() {
        let s = script(
            &Source::Apt("docker.io=26.1.5+dfsg1-9+deb13u1".into()),
            &[
                "--config-file".into(),
                "/etc/docker/daemon.json".into(),
                "--label=a b;x".into(),
            ],
        );
        assert!(
            s.contains(
                "apt-get download -o Debug::NoLocking=1 'docker.io=26.1.5+dfsg1-9+deb13u1' "
            ),
            "{s}"
        );
        assert!(
            s.contains("--validate --config-file /etc/docker/daemon.json '--label=a b;x' >out"),
            "{s}"
        );
        assert!(s.contains("trap 'rm -rf \"$d\"' EXIT"), "{s}");
        let b = script(&Source::Bundle("/srv/docker 26.tgz".into()), &[]);
        assert!(b.contains("tar -xzf '/srv/docker 26.tgz' -C root"), "{b}");
    }

    #[test]
    fn parses_a_verdict_and_a_failure_to_run() {
        let ok = parse("### output\nconfiguration OK\n### exit\n0\n");
        assert_eq!((ok.exit, ok.output.trim()), (Some(0), "configuration OK"));
        let bad = parse("### output\nunknown flag: --graph\n### exit\n1\n");
        assert_eq!(bad.exit, Some(1));
        assert!(bad.output.contains("unknown flag: --graph"));
        let none = parse("### error\napt-get download x failed:\nE: Unable to locate package x\n");
        assert_eq!(none.exit, None);
        assert!(none.output.contains("Unable to locate"), "{}", none.output);
        assert_eq!(parse("").exit, None);
    }

    #[test]
    fn only_targets_with_validate() {
        assert!(applies(&"23.0.0".parse().unwrap()));
        assert!(!applies(&"20.10.24".parse().unwrap()));
    }
}
