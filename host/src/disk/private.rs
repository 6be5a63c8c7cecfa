//! The data directory is the host's user's alone: the directory and every
//! directory in it `0700`, every file `0600`, set explicitly rather than
//! left to the umask. It holds clients' stored calls, key-value data and
//! secrets, which no other local user may read.
//!
//! [`create`] makes the directory private before anything is written into
//! it; [`seal`] walks it once the stores are open and tightens whatever is
//! looser (files a store library created with the umask's mode, or a data
//! directory from an older wisp).

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Mode of every directory under the data directory.
pub const DIR_MODE: u32 = 0o700;

/// Mode of every file under the data directory.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode [`DIR_MODE`], and sets
/// that mode on it if it already existed.
pub fn create(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    tighten(dir, DIR_MODE)
}

/// Sets [`DIR_MODE`] on every directory and [`FILE_MODE`] on every regular
/// file under `dir` whose mode is looser. Symbolic links are not followed.
pub fn seal(dir: &Path) -> io::Result<()> {
    tighten(dir, DIR_MODE)?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            seal(&entry.path())?;
        } else if kind.is_file() {
            tighten(&entry.path(), FILE_MODE)?;
        }
    }
    Ok(())
}

fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    let current = fs::symlink_metadata(path)?.permissions().mode() & 0o777;
    if current != mode {
        fs::set_permissions(path, Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_loose_tree_is_sealed() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        create(&data).unwrap();
        assert_eq!(mode(&data), DIR_MODE);
        fs::create_dir(data.join("state")).unwrap();
        fs::set_permissions(data.join("state"), Permissions::from_mode(0o755)).unwrap();
        fs::write(data.join("state/kv.redb"), b"x").unwrap();
        fs::set_permissions(data.join("state/kv.redb"), Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(&data, Permissions::from_mode(0o755)).unwrap();
        seal(&data).unwrap();
        assert_eq!(mode(&data), DIR_MODE);
        assert_eq!(mode(&data.join("state")), DIR_MODE);
        assert_eq!(mode(&data.join("state/kv.redb")), FILE_MODE);
    }
}
