//! Files swarm-upgrade writes on the operator's machine (plans, run state,
//! saved facts): private (0600 files, 0700 directories, since they hold host
//! details) and replaced atomically, so that a reader or a crash sees the
//! old content or the new one, never a part.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// Writes `bytes` to `path`: a temporary file in the same directory (0600),
/// fsynced, renamed over `path`, and the directory fsynced (the rename is
/// durable only once the directory is).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic_mode(path, bytes, 0o600)
}

/// [`write_atomic`] with another mode, for a file another program must
/// read (the `--metrics-file`, read by node_exporter as its own user).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let what = || format!("cannot write {}", path.display());
    let mut tmp = tempfile::Builder::new()
        .prefix(".swarm-upgrade.")
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_context(what)?;
    // The umask may have narrowed the mode asked for at creation.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .with_context(what)?;
    tmp.write_all(bytes).with_context(what)?;
    tmp.as_file().sync_all().with_context(what)?;
    tmp.persist(path).map_err(|e| e.error).with_context(what)?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(what)?;
    Ok(())
}

/// Creates `p` and its missing parents, private (0700).
pub fn mkdir_private(p: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .with_context(|| format!("creating {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_private_and_replace_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/f.json");
        mkdir_private(p.parent().unwrap()).unwrap();
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(p.parent().unwrap()), 0o700);
        let leftovers: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name() != "f.json")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
