//! An apt of our own: resolve and download Debian packages (also from other suites, e.g.
//! trixie) without touching the host's apt state.
//!
//! Every state/config path apt would use is redirected into a private directory; the host's
//! sources, lists, preferences (pinning) and package cache are neither read nor written.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cmd::Cmd;

pub const MIRROR: &str = "http://deb.debian.org/debian";
pub const SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";

/// Suites the lab stages packages from: the nodes' own release, the upgrade target's and
/// the second hop's (forky, Debian testing).
pub fn lab_sources() -> String {
    format!(
        "deb {MIRROR} bookworm main\n\
         deb {MIRROR} trixie main\n\
         deb {SECURITY_MIRROR} trixie-security main\n\
         deb {MIRROR} forky main\n"
    )
}

pub struct PrivateApt {
    dir: PathBuf,
}

impl PrivateApt {
    /// Set up (or reuse) a private apt state in `dir` with the given sources.list text.
    pub fn new(dir: &Path, sources: &str) -> Result<Self> {
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
        }
        fs::write(dir.join("sources.list"), sources)?;
        Ok(PrivateApt {
            dir: dir.to_path_buf(),
        })
    }

    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        vec![
            format!("-oDir::Etc::SourceList={d}/sources.list"),
            "-oDir::Etc::SourceParts=/dev/null".into(),
            "-oDir::Etc::Preferences=/dev/null".into(),
            "-oDir::Etc::PreferencesParts=/dev/null".into(),
            format!("-oDir::State::Lists={d}/lists"),
            format!("-oDir::Cache={d}/cache"),
            // Only the Packages indices: no translations, no AppStream metadata.
            "-oAcquire::Languages=none".into(),
            // Fetching index diffs is slower than the whole index for a state this small.
            "-oAcquire::PDiffs=false".into(),
            "-oAcquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
            "-oAcquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".into(),
            "-oAcquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".into(),
            // Downloads land in directories the _apt sandbox user cannot write.
            "-oAPT::Sandbox::User=root".into(),
        ]
    }

    pub fn update(&self) -> Result<()> {
        Cmd::new("apt-get")
            .args(self.options())
            .args(["update", "-q"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
            .context("private apt-get update failed (is deb.debian.org reachable?)")?;
        Ok(())
    }

    /// `apt-cache madison PKG...` output (one call: each call rebuilds apt's cache, ~1 s).
    pub fn madison(&self, packages: &[&str]) -> Result<String> {
        Cmd::new("apt-cache")
            .args(self.options())
            .arg("madison")
            .args(packages)
            .run()
    }

    /// Download exact versions (`name=version`) into `dest`.
    pub fn download(&self, dest: &Path, pins: &[String]) -> Result<()> {
        fs::create_dir_all(dest)?;
        let mut cmd = Cmd::new("sh");
        // apt-get download writes to the current directory; `sh -c 'cd'` keeps our cwd.
        cmd.arg("-c")
            .arg("cd \"$1\" && shift && exec apt-get \"$@\"")
            .arg("sh")
            .arg(dest)
            .args(self.options())
            .arg("download")
            .args(pins);
        cmd.run().context("private apt-get download failed")?;
        Ok(())
    }
}

/// One line of `apt-cache madison`: version and the suite/component it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadisonEntry {
    pub package: String,
    pub version: String,
    /// e.g. "trixie/main", "trixie-security/main", "bookworm/main", or "./" for a flat repo.
    pub suite: String,
}

/// Parse `apt-cache madison` output. apt lists candidates from the highest version down.
pub fn parse_madison(output: &str) -> Vec<MadisonEntry> {
    output
        .lines()
        .filter_map(|line| {
            let mut cols = line.split('|').map(str::trim);
            let package = cols.next()?.to_string();
            let version = cols.next()?.to_string();
            let source = cols.next()?;
            // "http://deb.debian.org/debian trixie/main amd64 Packages"
            let suite = source.split_whitespace().nth(1)?.to_string();
            Some(MadisonEntry {
                package,
                version,
                suite,
            })
        })
        .collect()
}

/// The upstream part of a Debian version: without epoch and without anything from the first
/// '+', '~' or the Debian revision on. "26.1.5+dfsg1-9+deb13u1" -> "26.1.5".
pub fn upstream_version(version: &str) -> &str {
    let no_epoch = version.split_once(':').map_or(version, |(_, v)| v);
    let end = no_epoch.find(['+', '~', '-']).unwrap_or(no_epoch.len());
    &no_epoch[..end]
}

/// The highest version of a package from a suite (exact codename, also matching "<codename>-security" etc.
/// when `with_updates`), optionally restricted to one upstream version.
pub fn pick_version(
    entries: &[MadisonEntry],
    package: &str,
    codename: &str,
    with_updates: bool,
    upstream: Option<&str>,
) -> Option<String> {
    entries
        .iter()
        .filter(|e| e.package == package)
        .filter(|e| {
            let suite = e.suite.split('/').next().unwrap_or("");
            suite == codename || (with_updates && suite.starts_with(&format!("{codename}-")))
        })
        .find(|e| upstream.is_none_or(|u| upstream_version(&e.version) == u))
        .map(|e| e.version.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MADISON: &str = " docker.io | 26.1.5+dfsg1-9+deb13u1 | http://deb.debian.org/debian trixie/main amd64 Packages
 docker.io | 26.1.5+dfsg1-9+deb13u1 | http://deb.debian.org/debian-security trixie-security/main amd64 Packages
 docker.io | 20.10.24+dfsg1-1+deb12u1+b6 | http://deb.debian.org/debian bookworm/main amd64 Packages
";

    #[test]
    fn madison_is_parsed() {
        let e = parse_madison(MADISON);
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].suite, "trixie-security/main");
        assert_eq!(e[2].version, "20.10.24+dfsg1-1+deb12u1+b6");
        assert_eq!(e[2].package, "docker.io");
    }

    #[test]
    fn versions_are_picked_by_suite_and_upstream() {
        let e = parse_madison(MADISON);
        assert_eq!(
            pick_version(&e, "docker.io", "trixie", true, Some("26.1.5")).as_deref(),
            Some("26.1.5+dfsg1-9+deb13u1")
        );
        assert_eq!(
            pick_version(&e, "docker.io", "bookworm", false, None).as_deref(),
            Some("20.10.24+dfsg1-1+deb12u1+b6")
        );
        assert_eq!(
            pick_version(&e, "docker.io", "trixie", true, Some("27.0.0")),
            None
        );
        // "trixie" must not match "trixie-backports" unless updates are wanted.
        let bp = parse_madison(" x | 2.0 | http://m trixie-backports/main amd64 Packages\n");
        assert_eq!(pick_version(&bp, "x", "trixie", false, None), None);
    }

    #[test]
    fn upstream_versions() {
        assert_eq!(upstream_version("26.1.5+dfsg1-9+deb13u1"), "26.1.5");
        assert_eq!(upstream_version("1.7.24~ds1-6+deb13u1"), "1.7.24");
        assert_eq!(upstream_version("1:2.3-1"), "2.3");
        assert_eq!(upstream_version("0.19.0-1+b3"), "0.19.0");
    }
}
