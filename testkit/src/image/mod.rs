//! The node image: a debootstrapped bookworm with sshd, docker.io 20.10 and an offline apt
//! repository of upgrade targets, built once and cached.
//!
//! Cache key = sha256 of the recipe: `build-node.sh` + `node-init.sh` + the exact package
//! versions staged. Versions are resolved from the Debian archive at run time (trixie's
//! security updates move; Debian mirrors keep only the newest), so a new upload rebuilds the
//! image, and an unchanged archive reuses the cached tarball without building anything.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::apt::{self, PrivateApt};
use crate::cmd::{self, Cmd};
use crate::paths;

pub const BUILD_SCRIPT: &str = include_str!("build-node.sh");
pub const INIT_SCRIPT: &str = include_str!("node-init.sh");
pub const BOOT_SCRIPT: &str = include_str!("node-boot.sh");
pub const CE_SCRIPT: &str = include_str!("docker-ce-repo.sh");

/// Every script of the recipe, by file name (all of them go into the cache key).
pub const SCRIPTS: [(&str, &str); 4] = [
    ("build-node.sh", BUILD_SCRIPT),
    ("node-init.sh", INIT_SCRIPT),
    ("node-boot.sh", BOOT_SCRIPT),
    ("docker-ce-repo.sh", CE_SCRIPT),
];

/// The upgrade target the lab stages (Debian trixie's engine).
pub const TARGET_UPSTREAM: &str = "26.1.5";
/// The second hop (Debian forky's engine, containerd 2.x). Its docker.io, docker-cli,
/// containerd and tini-static install on bookworm (glibc >= 2.34); forky's runc and tini
/// need glibc 2.38, so bookworm's runc stays and tini gives way to tini-static.
pub const HOP_UPSTREAM: &str = "28.5.2";
/// Version of the deliberately broken engine (repacked 26.1.5 whose dockerd exits 1).
pub const BROKEN_VERSION: &str = "26.1.99+dfsg1-1";

const IMAGE_REPO: &str = "swarm-upgrade-testkit/node";

/// Exact Debian versions staged in every node's /srv/lab-repo (also there as versions.env).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedVersions {
    /// Upgrade target from trixie: docker.io, docker-cli (a separate package since trixie),
    /// containerd.
    pub target_docker_io: String,
    pub target_docker_cli: String,
    pub target_containerd: String,
    /// What debootstrap installs from bookworm, for downgrades and rollbacks.
    pub current_docker_io: String,
    pub current_containerd: String,
    pub current_runc: String,
    pub current_tini: String,
    /// docker.io and docker-cli repacked from the target with a dockerd that never starts.
    pub broken: String,
    /// The second hop from forky: docker.io, docker-cli, containerd 2.x, tini-static.
    pub hop_docker_io: String,
    pub hop_docker_cli: String,
    pub hop_containerd: String,
    pub hop_tini_static: String,
    /// CLI plugin binaries for the docker-ce family's docker-buildx-plugin and
    /// docker-compose-plugin: trixie's (the start) and forky's (newer).
    pub buildx_old: String,
    pub buildx_new: String,
    pub compose_old: String,
    pub compose_new: String,
}

/// One place defines the versions.env format (same order as `values`).
const ENV_FIELDS: [&str; 16] = [
    "TARGET_DOCKER_IO",
    "TARGET_DOCKER_CLI",
    "TARGET_CONTAINERD",
    "CURRENT_DOCKER_IO",
    "CURRENT_CONTAINERD",
    "CURRENT_RUNC",
    "CURRENT_TINI",
    "BROKEN_VERSION",
    "HOP_DOCKER_IO",
    "HOP_DOCKER_CLI",
    "HOP_CONTAINERD",
    "HOP_TINI_STATIC",
    "BUILDX_OLD",
    "BUILDX_NEW",
    "COMPOSE_OLD",
    "COMPOSE_NEW",
];

impl StagedVersions {
    fn values(&self) -> [&str; 16] {
        [
            &self.target_docker_io,
            &self.target_docker_cli,
            &self.target_containerd,
            &self.current_docker_io,
            &self.current_containerd,
            &self.current_runc,
            &self.current_tini,
            &self.broken,
            &self.hop_docker_io,
            &self.hop_docker_cli,
            &self.hop_containerd,
            &self.hop_tini_static,
            &self.buildx_old,
            &self.buildx_new,
            &self.compose_old,
            &self.compose_new,
        ]
    }

    /// `NAME=VERSION` lines, sourced by the build script and stored in the image.
    pub fn to_env(&self) -> String {
        let mut out = format!("TARGET_UPSTREAM={TARGET_UPSTREAM}\n");
        for (name, value) in ENV_FIELDS.iter().zip(self.values()) {
            out.push_str(&format!("{name}={value}\n"));
        }
        out
    }

    pub fn from_env(text: &str) -> Result<Self> {
        let get = |name: &str| -> Result<String> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(|v| v.trim().to_string())
                .with_context(|| format!("{name} missing from versions.env"))
        };
        Ok(StagedVersions {
            target_docker_io: get("TARGET_DOCKER_IO")?,
            target_docker_cli: get("TARGET_DOCKER_CLI")?,
            target_containerd: get("TARGET_CONTAINERD")?,
            current_docker_io: get("CURRENT_DOCKER_IO")?,
            current_containerd: get("CURRENT_CONTAINERD")?,
            current_runc: get("CURRENT_RUNC")?,
            current_tini: get("CURRENT_TINI")?,
            broken: get("BROKEN_VERSION")?,
            hop_docker_io: get("HOP_DOCKER_IO")?,
            hop_docker_cli: get("HOP_DOCKER_CLI")?,
            hop_containerd: get("HOP_CONTAINERD")?,
            hop_tini_static: get("HOP_TINI_STATIC")?,
            buildx_old: get("BUILDX_OLD")?,
            buildx_new: get("BUILDX_NEW")?,
            compose_old: get("COMPOSE_OLD")?,
            compose_new: get("COMPOSE_NEW")?,
        })
    }

    /// `name=version` pins for `apt-get download`.
    fn download_pins(&self) -> Vec<String> {
        vec![
            format!("docker.io={}", self.target_docker_io),
            format!("docker-cli={}", self.target_docker_cli),
            format!("containerd={}", self.target_containerd),
            format!("docker.io={}", self.current_docker_io),
            format!("containerd={}", self.current_containerd),
            format!("runc={}", self.current_runc),
            format!("tini={}", self.current_tini),
            format!("docker.io={}", self.hop_docker_io),
            format!("docker-cli={}", self.hop_docker_cli),
            format!("containerd={}", self.hop_containerd),
            format!("tini-static={}", self.hop_tini_static),
            format!("docker-buildx={}", self.buildx_old),
            format!("docker-buildx={}", self.buildx_new),
            format!("docker-compose={}", self.compose_old),
            format!("docker-compose={}", self.compose_new),
        ]
    }
}

/// Hash of the scripts alone: identifies cached images usable when the archive is unreachable.
pub fn scripts_hash(scripts: &[(&str, &str)]) -> String {
    let mut h = Sha256::new();
    for (name, text) in scripts {
        // Length-prefixed, so that moving text from one file to the other changes the hash.
        h.update(format!("{name} {}\n", text.len()));
        h.update(text);
    }
    hex(&h.finalize())
}

/// The image cache key: scripts plus the exact staged versions.
pub fn recipe_hash(scripts: &[(&str, &str)], versions: &StagedVersions) -> String {
    let mut h = Sha256::new();
    h.update(scripts_hash(scripts));
    h.update("\nversions\n");
    h.update(versions.to_env());
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the cache records about a built image (next to the tarball, as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub key: String,
    pub scripts_hash: String,
    pub versions: StagedVersions,
    pub built_at: String,
    pub build_seconds: f64,
    pub tarball_bytes: u64,
}

impl Manifest {
    pub fn tag(&self) -> String {
        format!("{IMAGE_REPO}:{}", &self.key[..12])
    }
}

fn tarball_path(key: &str) -> PathBuf {
    paths::cache_root().join(format!("node-{}.tar.gz", &key[..12]))
}

fn build_log_path(key: &str) -> PathBuf {
    paths::cache_root().join(format!("node-{}.build.log", &key[..12]))
}

fn manifest_path(key: &str) -> PathBuf {
    paths::cache_root().join(format!("node-{}.json", &key[..12]))
}

/// Resolve the exact versions from the archive (private apt state, host apt untouched).
pub fn resolve_versions(apt: &PrivateApt) -> Result<StagedVersions> {
    apt.update()?;
    let madison = apt.madison(&[
        "docker.io",
        "docker-cli",
        "containerd",
        "runc",
        "tini",
        "tini-static",
        "docker-buildx",
        "docker-compose",
    ])?;
    let entries = apt::parse_madison(&madison);
    let pick = |pkg: &str, codename: &str, updates: bool, upstream: Option<&str>| {
        apt::pick_version(&entries, pkg, codename, updates, upstream).with_context(|| {
            format!(
                "the archive serves no {pkg}{} in {codename}; apt-cache madison:\n{madison}",
                upstream.map(|u| format!(" {u}")).unwrap_or_default()
            )
        })
    };
    Ok(StagedVersions {
        target_docker_io: pick("docker.io", "trixie", true, Some(TARGET_UPSTREAM))?,
        target_docker_cli: pick("docker-cli", "trixie", true, Some(TARGET_UPSTREAM))?,
        target_containerd: pick("containerd", "trixie", true, None)?,
        // debootstrap uses bookworm itself (no -updates/-security), so these are what it installs.
        current_docker_io: pick("docker.io", "bookworm", false, None)?,
        current_containerd: pick("containerd", "bookworm", false, None)?,
        current_runc: pick("runc", "bookworm", false, None)?,
        current_tini: pick("tini", "bookworm", false, None)?,
        broken: BROKEN_VERSION.to_string(),
        hop_docker_io: pick("docker.io", "forky", false, Some(HOP_UPSTREAM))?,
        hop_docker_cli: pick("docker-cli", "forky", false, Some(HOP_UPSTREAM))?,
        hop_containerd: pick("containerd", "forky", false, None)?,
        hop_tini_static: pick("tini-static", "forky", false, None)?,
        buildx_old: pick("docker-buildx", "trixie", true, None)?,
        buildx_new: pick("docker-buildx", "forky", false, None)?,
        compose_old: pick("docker-compose", "trixie", true, None)?,
        compose_new: pick("docker-compose", "forky", false, None)?,
    })
}

/// Cached manifests, newest first.
fn cached_manifests() -> Vec<Manifest> {
    let Ok(dir) = fs::read_dir(paths::cache_root()) else {
        return Vec::new();
    };
    let mut found: Vec<(SystemTime, Manifest)> = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| {
            let m: Manifest = serde_json::from_slice(&fs::read(e.path()).ok()?).ok()?;
            let mtime = e.metadata().ok()?.modified().ok()?;
            tarball_path(&m.key).exists().then_some((mtime, m))
        })
        .collect();
    found.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    found.into_iter().map(|(_, m)| m).collect()
}

/// The node image, present in the private daemon. Builds it (cold) or imports it from the
/// cache (warm) as needed; verifies it in both cases.
pub fn ensure(rebuild: bool) -> Result<Manifest> {
    let cache = paths::cache_root();
    fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
    // One build at a time: a second testkit waits here and then finds the image cached.
    let lock = fs::File::create(cache.join(".lock"))?;
    lock.lock().context("cannot lock the image cache")?;

    let scripts = scripts_hash(&SCRIPTS);
    let apt = PrivateApt::new(&paths::build_dir().join("apt"), &apt::lab_sources())?;
    let t = Instant::now();
    let versions = match resolve_versions(&apt) {
        Ok(v) => {
            eprintln!(
                "testkit: resolved staged versions from the archive ({})",
                cmd::secs(t.elapsed())
            );
            v
        }
        Err(e) => {
            // Offline: any cached image built from these very scripts is still a faithful lab.
            let Some(m) = cached_manifests()
                .into_iter()
                .find(|m| m.scripts_hash == scripts)
            else {
                return Err(
                    e.context("cannot resolve package versions and no cached image matches")
                );
            };
            eprintln!(
                "testkit: warning: {e:#}\ntestkit: using the cached image {} instead",
                m.tag()
            );
            m.versions
        }
    };
    let key = recipe_hash(&SCRIPTS, &versions);
    let tarball = tarball_path(&key);

    let manifest = match fs::read(manifest_path(&key)) {
        Ok(bytes) if tarball.exists() && !rebuild => serde_json::from_slice::<Manifest>(&bytes)?,
        _ => build(&key, &scripts, &versions, &apt)?,
    };
    let tag = manifest.tag();
    if rebuild || !image_exists(&tag) {
        let t = Instant::now();
        eprintln!("testkit: importing {} as {tag}", tarball.display());
        cmd::docker()
            .arg("import")
            .args(["--change", r#"ENTRYPOINT ["/usr/local/sbin/testkit-boot"]"#])
            .args([
                "--change",
                &format!("LABEL swarm-upgrade-testkit.recipe={key}"),
            ])
            .arg(&tarball)
            .arg(&tag)
            .run()?;
        eprintln!("testkit: imported in {}", cmd::secs(t.elapsed()));
        verify(&tag, &versions)?;
    }
    let size: u64 = cmd::docker()
        .args(["image", "inspect", "--format", "{{.Size}}", &tag])
        .run()?
        .trim()
        .parse()
        .unwrap_or(0);
    eprintln!(
        "testkit: node image {tag}: {} (tarball {}, built in {:.0} s)",
        cmd::bytes(size),
        cmd::bytes(manifest.tarball_bytes),
        manifest.build_seconds
    );
    Ok(manifest)
}

pub fn image_exists(tag: &str) -> bool {
    cmd::docker().args(["image", "inspect", tag]).succeeds()
}

fn build(
    key: &str,
    scripts: &str,
    versions: &StagedVersions,
    apt: &PrivateApt,
) -> Result<Manifest> {
    let start = Instant::now();
    let work = paths::build_dir().join(&key[..12]);
    clean_dir(&work)?;
    fs::create_dir_all(&work)?;
    let log = work.join("build.log");
    eprintln!(
        "testkit: building the node image {} (cold: debootstrap, a few minutes); log: {}",
        &key[..12],
        log.display()
    );

    let debs = work.join("debs");
    apt.download(&debs, &versions.download_pins())?;
    eprintln!(
        "testkit: downloaded staged packages ({})",
        cmd::secs(start.elapsed())
    );

    let versions_file = work.join("versions.env");
    fs::write(&versions_file, versions.to_env())?;
    for (name, text) in SCRIPTS {
        fs::write(work.join(name), text)?;
    }
    let script = work.join("build-node.sh");
    let scratch = work.join("scratch");
    fs::create_dir_all(&scratch)?;
    let out_tmp = tarball_path(key).with_extension("tmp");

    let result = Cmd::new("bash")
        .arg(&script)
        .env("WORK", &scratch)
        .env("DEBS", &debs)
        .env("VERSIONS", &versions_file)
        .env("INIT", work.join("node-init.sh"))
        .env("BOOT", work.join("node-boot.sh"))
        .env("CE_SCRIPT", work.join("docker-ce-repo.sh"))
        .env("MIRROR", apt::MIRROR)
        .env("OUT", &out_tmp)
        .env("LC_ALL", "C")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .timeout(Duration::from_secs(30 * 60))
        .run_logged(&log);
    if let Err(e) = result {
        // Unmount whatever debootstrap left (proc, sys) but keep the tree for debugging.
        let _ = crate::host::unmount_below(&work);
        let _ = fs::remove_file(&out_tmp);
        return Err(e.context(format!(
            "node image build failed; work dir kept: {}",
            work.display()
        )));
    }
    // Publish atomically: a killed build never leaves a truncated tarball under the final name.
    let tarball = tarball_path(key);
    fs::rename(&out_tmp, &tarball)?;
    let manifest = Manifest {
        key: key.to_string(),
        scripts_hash: scripts.to_string(),
        versions: versions.clone(),
        built_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        build_seconds: start.elapsed().as_secs_f64(),
        tarball_bytes: fs::metadata(&tarball)?.len(),
    };
    fs::write(manifest_path(key), serde_json::to_vec_pretty(&manifest)?)?;
    // The log is the only record of what went into the image; keep it next to the tarball.
    fs::copy(&log, build_log_path(key))?;
    clean_dir(&work)?;
    prune_cache(key);
    eprintln!(
        "testkit: node image built in {} ({} tarball)",
        cmd::secs(start.elapsed()),
        cmd::bytes(manifest.tarball_bytes)
    );
    Ok(manifest)
}

/// Keep the newest two cached images (the current one and its predecessor, for offline use).
fn prune_cache(current: &str) {
    for old in cached_manifests()
        .into_iter()
        .skip(2)
        .filter(|m| m.key != current)
    {
        let _ = fs::remove_file(tarball_path(&old.key));
        let _ = fs::remove_file(manifest_path(&old.key));
        let _ = fs::remove_file(build_log_path(&old.key));
    }
}

pub(crate) fn clean_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        crate::host::unmount_below(dir)?;
        Cmd::new("rm")
            .args(["-rf", "--one-file-system"])
            .arg(dir)
            .run()?;
    }
    Ok(())
}

/// Check the image offline (no network) the way a node will use it: the lab repository
/// alone must offer the current, the target and the broken engine.
fn verify(tag: &str, versions: &StagedVersions) -> Result<()> {
    let out = cmd::docker()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "sh",
            tag,
            "-c",
        ])
        .arg(
            "apt-get update -qq && apt-cache madison docker.io docker-cli && \
             cat /srv/lab-static/*.sha256 /srv/docker-ce-repo/versions.env && \
             grep -h '^Version: ' /srv/docker-ce-repo/Packages /srv/docker-ce-repo-hop/Packages \
             | sort | uniq -c && grep -H '^Version: ' /srv/lab-repo-hop/Packages",
        )
        .timeout(Duration::from_secs(120))
        .run()
        .context("verifying the node image")?;
    for v in [
        &versions.current_docker_io,
        &versions.target_docker_io,
        &versions.broken,
    ] {
        if !out.contains(&format!("docker.io | {v} |")) {
            bail!("node image {tag}: offline apt does not offer docker.io {v}:\n{out}");
        }
    }
    if !out.contains(&format!(
        "/srv/lab-repo-hop/Packages:Version: {}\n",
        versions.hop_docker_io
    )) {
        bail!(
            "node image {tag}: /srv/lab-repo-hop lacks docker.io {}:\n{out}",
            versions.hop_docker_io
        );
    }
    // Each docker-ce version: docker-ce, docker-ce-cli, docker-ce-rootless-extras.
    for v in [
        "5:20.10.24~3-0~debian-bookworm",
        "5:26.1.5-1~debian.12~bookworm",
        "5:26.1.99-1~debian.12~bookworm",
        "5:28.5.2-1~debian.12~bookworm",
    ] {
        if !out.contains(&format!("3 Version: {v}\n")) {
            bail!("node image {tag}: the docker-ce repository lacks the packages of {v}:\n{out}");
        }
    }
    eprintln!(
        "testkit: verified offline apt in {tag}:\n{}",
        out.trim_end()
    );
    Ok(())
}

/// The staged versions recorded in a cached manifest for an image tag (no network).
pub fn manifest_for_tag(tag: &str) -> Option<Manifest> {
    cached_manifests().into_iter().find(|m| m.tag() == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions() -> StagedVersions {
        StagedVersions {
            target_docker_io: "26.1.5+dfsg1-9+deb13u1".into(),
            target_docker_cli: "26.1.5+dfsg1-9+deb13u1".into(),
            target_containerd: "1.7.24~ds1-6+deb13u1".into(),
            current_docker_io: "20.10.24+dfsg1-1+deb12u1+b6".into(),
            current_containerd: "1.6.20~ds1-1+deb12u3".into(),
            current_runc: "1.1.5+ds1-1+deb12u1".into(),
            current_tini: "0.19.0-1+b3".into(),
            broken: BROKEN_VERSION.into(),
            hop_docker_io: "28.5.2+dfsg4-5".into(),
            hop_docker_cli: "28.5.2+dfsg4-5".into(),
            hop_containerd: "2.1.9+ds1-5".into(),
            hop_tini_static: "0.19.0-6+b2".into(),
            buildx_old: "0.13.1+ds1-3".into(),
            buildx_new: "0.29.1+ds1-4".into(),
            compose_old: "2.26.1-4".into(),
            compose_new: "2.40.3-3".into(),
        }
    }

    #[test]
    fn versions_env_round_trips() {
        let v = versions();
        let env = v.to_env();
        assert!(env.contains("TARGET_DOCKER_CLI=26.1.5+dfsg1-9+deb13u1\n"));
        assert!(env.starts_with("TARGET_UPSTREAM=26.1.5\n"));
        assert_eq!(StagedVersions::from_env(&env).unwrap(), v);
        assert!(StagedVersions::from_env("TARGET_DOCKER_IO=1\n").is_err());
    }

    #[test]
    fn recipe_hash_is_stable_and_covers_every_input() {
        let v = versions();
        let two = |a, b| [("build-node.sh", a), ("node-init.sh", b)];
        let base = recipe_hash(&two("script", "init"), &v);
        assert_eq!(base, recipe_hash(&two("script", "init"), &v));
        assert_eq!(base.len(), 64);
        assert_ne!(base, recipe_hash(&two("script ", "init"), &v));
        assert_ne!(base, recipe_hash(&two("script", "init\n"), &v));
        // Moving text between the two scripts is a different recipe.
        assert_ne!(
            recipe_hash(&two("ab", "c"), &v),
            recipe_hash(&two("a", "bc"), &v)
        );
        let mut newer = v.clone();
        newer.target_docker_io = "26.1.5+dfsg1-9+deb13u2".into();
        assert_ne!(base, recipe_hash(&two("script", "init"), &newer));
        newer = v.clone();
        newer.hop_containerd = "2.1.10+ds1-1".into();
        assert_ne!(base, recipe_hash(&two("script", "init"), &newer));
        // Every script of the recipe counts.
        assert_eq!(SCRIPTS.len(), 4);
        let mut other = SCRIPTS;
        other[3].1 = "";
        assert_ne!(recipe_hash(&SCRIPTS, &v), recipe_hash(&other, &v));
    }

    #[test]
    fn the_embedded_recipe_has_the_essentials() {
        // Cheap guards against an edit that silently drops a requirement of the lab.
        for needle in [
            "--variant=minbase",
            "tini",
            "dpkg-scanpackages --multiversion",
            "deb [trusted=yes] file:/srv/lab-repo ./",
            "rm -f \"$ROOTFS/usr/sbin/policy-rc.d\"",
            "rm -f \"$ROOTFS\"/etc/ssh/ssh_host_*",
            "testkit: deliberately broken dockerd 26.1.99",
        ] {
            assert!(
                BUILD_SCRIPT.contains(needle),
                "build-node.sh lacks {needle}"
            );
        }
        assert!(INIT_SCRIPT.contains("ssh-keygen -A"));
        for needle in [
            "Conflicts: docker (<< 1.5~), docker-engine, docker.io",
            "containerd.io (>= $min)",
            "Provides: containerd, runc",
            "deb-systemd-invoke",
            "NOT Docker's package",
            "CE_SUFFIX_OLD=\"~3-0~debian-bookworm\"",
            "CE_SUFFIX=\"-1~debian.12~bookworm\"",
        ] {
            assert!(
                CE_SCRIPT.contains(needle),
                "docker-ce-repo.sh lacks {needle}"
            );
        }
        for flavour in crate::Flavour::NODE_FLAVOURS {
            assert!(
                BOOT_SCRIPT.contains(flavour.as_str()),
                "node-boot.sh does not know {flavour:?}"
            );
        }
        assert!(BROKEN_VERSION.starts_with("26.1.99"));
    }
}
