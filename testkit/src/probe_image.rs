//! The probe's container image: the `probe` binary plus the shared libraries `ldd` lists,
//! packed as a tar for `docker import` inside every node (no registry exists in the lab).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::cmd::Cmd;

/// glibc resolves names through NSS; without this file a minimal image may not consult DNS
/// (the swarm's embedded DNS at 127.0.0.11) at all.
const NSSWITCH: &str = "hosts: files dns\n";

/// The image name says "no registry" in a way the engine understands at once. Swarm's
/// executor tries to pull a task's image even when it is present locally (moby: "always try
/// to pull"); for a docker.io name in an offline node that is a 20 s DNS timeout per task
/// start, for a registry on a closed localhost port it is an immediate "connection refused".
pub const PROBE_REPOSITORY: &str = "localhost:1/testkit-probe";

/// The probe's source, std only, so that it can also be compiled without cargo (below).
const PROBE_SOURCE: &str = include_str!("bin/probe.rs");

/// Where the probe binary is: `TESTKIT_PROBE_BIN`; else cargo's build of it next to the
/// running executable (target/<profile>/probe beside target/<profile>/testkit, or one level
/// up from target/<profile>/deps/ for tests); else the embedded source compiled with rustc
/// into the image cache. The last case matters for tests of other crates that use this
/// library: a dev-dependency's binaries are not built by `cargo test`.
pub fn locate_probe_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("TESTKIT_PROBE_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("TESTKIT_PROBE_BIN={} is not a file", p.display());
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().context("cannot find the running executable")?;
    let dir = exe.parent().context("executable has no directory")?;
    for candidate in [dir.join("probe"), dir.join("../probe")] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    compile_embedded_probe(&crate::paths::cache_root()).with_context(|| {
        format!(
            "no probe binary next to {} and compiling the embedded source failed \
             (build it with `cargo build -p testkit --bins`, or set TESTKIT_PROBE_BIN)",
            exe.display()
        )
    })
}

/// Compile the embedded probe source into `dir` (once per source version).
fn compile_embedded_probe(dir: &Path) -> Result<PathBuf> {
    let digest: String = Sha256::digest(PROBE_SOURCE)
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let binary = dir.join(format!("probe-{digest}"));
    if binary.is_file() {
        return Ok(binary);
    }
    fs::create_dir_all(dir)?;
    let source = dir.join(format!("probe-{digest}.rs"));
    fs::write(&source, PROBE_SOURCE)?;
    let tmp = binary.with_extension("tmp");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    eprintln!(
        "testkit: compiling the probe from its embedded source ({})",
        binary.display()
    );
    Cmd::new(rustc)
        .args(["--edition", "2024", "-O", "--crate-name", "probe", "-o"])
        .arg(&tmp)
        .arg(&source)
        .run()?;
    fs::rename(&tmp, &binary)?;
    let _ = fs::remove_file(&source);
    Ok(binary)
}

/// Library paths from `ldd` output (skips the vDSO, which has no file).
pub fn parse_ldd(output: &str) -> Vec<PathBuf> {
    output
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// A built probe image: its tar and a tag derived from the content.
pub struct ProbeImage {
    pub tar: Vec<u8>,
    pub tag: String,
}

pub fn build(binary: &Path, scratch: &Path) -> Result<ProbeImage> {
    let ldd = Cmd::new("ldd").arg(binary).run()?;
    let libs = parse_ldd(&ldd);
    if libs.is_empty() {
        bail!("ldd lists no libraries for {}:\n{ldd}", binary.display());
    }
    if scratch.exists() {
        fs::remove_dir_all(scratch)?;
    }
    let mut hash = Sha256::new();
    let mut add = |src: &Path, dest_rel: &Path| -> Result<()> {
        let dest = scratch.join(dest_rel);
        fs::create_dir_all(dest.parent().expect("has a parent"))?;
        // fs::copy follows symlinks: the image gets the real library under the linked name.
        fs::copy(src, &dest).with_context(|| format!("copy {}", src.display()))?;
        hash.update(dest_rel.to_string_lossy().as_bytes());
        hash.update(fs::read(&dest)?);
        Ok(())
    };
    add(binary, Path::new("probe"))?;
    for lib in &libs {
        add(lib, lib.strip_prefix("/").expect("absolute"))?;
    }
    fs::create_dir_all(scratch.join("etc"))?;
    fs::create_dir_all(scratch.join("tmp"))?;
    fs::write(scratch.join("etc/nsswitch.conf"), NSSWITCH)?;
    hash.update(NSSWITCH);
    let digest: String = hash
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();

    let out = Cmd::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(scratch)
        .args(["-cf", "-", "."])
        .output()?;
    if !out.status.success() {
        bail!(
            "tar of the probe image failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fs::remove_dir_all(scratch)?;
    Ok(ProbeImage {
        tar: out.stdout,
        tag: format!("{PROBE_REPOSITORY}:{digest}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_probe_source_compiles_without_cargo() {
        let dir =
            std::env::temp_dir().join(format!("testkit-probe-compile-{}", std::process::id()));
        let binary = compile_embedded_probe(&dir).unwrap();
        let out = std::process::Command::new(&binary).output().unwrap();
        // Without arguments it prints its usage and fails.
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: probe"));
        // Compiled once per source version.
        assert_eq!(compile_embedded_probe(&dir).unwrap(), binary);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ldd_output_is_parsed() {
        let out = "\tlinux-vdso.so.1 (0x00007ffc1b9f0000)
\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0c2a7d0000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0c2a5ef000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0c2a870000)
";
        assert_eq!(
            parse_ldd(out),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }
}
