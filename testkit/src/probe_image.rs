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

/// Where the probe binary is: `TESTKIT_PROBE_BIN`, else next to the running executable
/// (target/<profile>/probe next to target/<profile>/testkit), else one directory up (tests
/// run from target/<profile>/deps/).
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
    bail!(
        "cannot find the probe binary next to {} (build it: cargo build -p testkit --bins, \
         or set TESTKIT_PROBE_BIN)",
        exe.display()
    )
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
        tag: format!("testkit-probe:{digest}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
