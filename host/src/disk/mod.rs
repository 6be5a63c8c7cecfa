//! The data directory on disk: files written whole or not at all
//! ([`write_file_atomically`]), only the host's user's ([`private`]), one
//! host per directory ([`dir_lock`]), and the named steps a test may crash
//! the host at ([`crash_point`]). Nothing here knows what the files hold.

pub(crate) mod crash_point;
pub(crate) mod dir_lock;
pub(crate) mod private;

use crash_point::CrashPoint;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `bytes` to `temp`, fsyncs it, renames it to `path` and fsyncs the
/// directory. `temp` must be on the same file system as `path`. The file is
/// only the host's user's (mode `0600` from its creation on, see
/// `private.rs`). The error names the file of the step that failed: it
/// is for the host log only.
pub fn write_file_atomically(temp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let result = (|| {
        // Created exclusively (`O_EXCL`): a file already at the temp path
        // (a crash's leftover) is removed first, never written through; if
        // it cannot be, creating fails and says so.
        let _ = fs::remove_file(temp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(temp)
            .map_err(failed_at("creating", temp))?;
        file.write_all(bytes).map_err(failed_at("writing", temp))?;
        file.sync_all().map_err(failed_at("syncing", temp))?;
        CrashPoint::TempWritten.reached();
        fs::rename(temp, path).map_err(failed_at("renaming into place", path))?;
        if let Some(dir) = path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(failed_at("syncing", dir))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(temp);
    }
    result
}

/// Adds the step and the file to an i/o error (for the host log).
pub(crate) fn failed_at<'a>(
    step: &'a str,
    file: &'a Path,
) -> impl FnOnce(io::Error) -> io::Error + 'a {
    move |e| io::Error::new(e.kind(), format!("{step} `{}`: {e}", file.display()))
}
