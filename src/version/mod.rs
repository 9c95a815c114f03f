//! Engine versions and pins.
//!
//! Package versions (`5:23.0.1-1~debian.10~buster`, `26.1.5+dfsg1-9+deb13u1`,
//! `3:27.3.1-1.el9`) are not semver, and semver misreads some of them
//! (`24.0.7-1ubuntu1` parses as a pre-release). So package versions are
//! compared with `debversion` (dpkg's order), and semver is used only on the
//! upstream engine version extracted by [`engine_version_of`].

pub mod resolve;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An upstream engine version (`26.1.5`), the unit the operator pins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EngineVersion(pub semver::Version);

impl EngineVersion {
    pub fn major(&self) -> u64 {
        self.0.major
    }
    pub fn minor(&self) -> u64 {
        self.0.minor
    }
}

impl fmt::Display for EngineVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<EngineVersion> for String {
    fn from(v: EngineVersion) -> String {
        v.to_string()
    }
}

impl TryFrom<String> for EngineVersion {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// Parses a pin as given on the command line: exactly `MAJOR.MINOR.PATCH`.
impl FromStr for EngineVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not an engine version: give MAJOR.MINOR.PATCH as Docker releases it, e.g. 26.1.5"
            )
        };
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() != 3
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 9)
        {
            return Err(bad());
        }
        semver::Version::parse(s)
            .map(EngineVersion)
            .map_err(|_| bad())
    }
}

/// The upstream engine version inside an engine or package version string.
///
/// Strips an epoch (`5:`), a Debian/RPM revision (`-1~debian.10~buster`,
/// `-1.el9`), and `+dfsg1` or `~3` suffixes; accepts `X.Y` as `X.Y.0`.
/// Returns `None` when no `X.Y[.Z]` remains.
pub fn engine_version_of(raw: &str) -> Option<EngineVersion> {
    let raw = raw.trim();
    let no_epoch = raw.split_once(':').map_or(raw, |(_, rest)| rest);
    let upstream = no_epoch.split(['-', '+', '~']).next().unwrap_or("");
    let parts: Vec<&str> = upstream.split('.').collect();
    let nums: Option<Vec<u64>> = parts.iter().map(|p| p.parse::<u64>().ok()).collect();
    let nums = nums?;
    let v = match nums.as_slice() {
        [a, b] => semver::Version::new(*a, *b, 0),
        [a, b, c] => semver::Version::new(*a, *b, *c),
        _ => return None,
    };
    Some(EngineVersion(v))
}

/// Compares two package versions with dpkg's ordering; falls back to a plain
/// string comparison when one does not parse (never panics).
pub fn cmp_package_versions(a: &str, b: &str) -> std::cmp::Ordering {
    match (
        a.parse::<debversion::Version>(),
        b.parse::<debversion::Version>(),
    ) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str) -> Option<String> {
        engine_version_of(s).map(|v| v.to_string())
    }

    #[test]
    fn extracts_upstream_engine_versions() {
        assert_eq!(ev("5:23.0.1-1~debian.10~buster").as_deref(), Some("23.0.1"));
        assert_eq!(ev("26.1.5+dfsg1-9+deb13u1").as_deref(), Some("26.1.5"));
        assert_eq!(ev("20.10.24+dfsg1").as_deref(), Some("20.10.24"));
        assert_eq!(ev("24.0.7-1ubuntu1").as_deref(), Some("24.0.7"));
        assert_eq!(ev("3:27.3.1-1.el9").as_deref(), Some("27.3.1"));
        assert_eq!(
            ev("5:20.10.14~3-0~debian-bullseye").as_deref(),
            Some("20.10.14")
        );
        assert_eq!(ev("1.7").as_deref(), Some("1.7.0"));
        assert_eq!(ev("garbage"), None);
        assert_eq!(ev(""), None);
    }

    #[test]
    fn pins_must_be_exact_versions() {
        assert!("26.1.5".parse::<EngineVersion>().is_ok());
        for bad in [
            "26.1",
            "latest",
            "26.1.5; rm -rf /",
            "v26.1.5",
            "26.1.5-1",
            "",
        ] {
            let err = bad.parse::<EngineVersion>().unwrap_err();
            assert!(err.contains("MAJOR.MINOR.PATCH"), "{bad}: {err}");
        }
    }

    #[test]
    fn package_versions_compare_like_dpkg() {
        use std::cmp::Ordering::*;
        assert_eq!(
            cmp_package_versions("26.1.5+dfsg1-9+deb13u1", "20.10.24+dfsg1-1+deb12u1"),
            Greater
        );
        assert_eq!(
            cmp_package_versions("5:23.0.1-1~debian.10~buster", "26.1.5+dfsg1-9"),
            Greater
        );
        assert_eq!(cmp_package_versions("24.0.7-1ubuntu1", "24.0.7"), Greater);
    }
}
