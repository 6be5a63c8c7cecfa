//! One host per data directory. [`DirLock::take`] locks `host.lock` in the
//! data directory before any store is opened and writes the process id
//! into it, so a second host on the same directory is refused with the id
//! of the process that owns it, instead of a store library's "database
//! already open" after some of the directory was touched.
//!
//! The lock is the operating system's (`flock`): it ends with the process
//! however the process ends, so a file left by a crash never blocks a
//! restart; the id in it is only for the message.

use super::private::FILE_MODE;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "host.lock";

/// Held for a host's lifetime: the data directory is this host's.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

/// Why the data directory could not be locked.
#[derive(Debug)]
pub(crate) enum DirLockError {
    /// Another host holds it; the process id written in the file, if any.
    InUse(Option<u32>),
    /// The lock file could not be opened or written.
    Io(io::Error),
}

impl DirLock {
    /// Locks data directory `dir` (which must exist) for this process.
    pub(crate) fn take(dir: &Path) -> Result<DirLock, DirLockError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(dir.join(LOCK_FILE))
            .map_err(DirLockError::Io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(DirLockError::InUse(pid));
            }
            Err(TryLockError::Error(e)) => return Err(DirLockError::Io(e)),
        }
        file.set_len(0).map_err(DirLockError::Io)?;
        file.rewind().map_err(DirLockError::Io)?;
        writeln!(file, "{}", std::process::id()).map_err(DirLockError::Io)?;
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_owners_pid_until_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::take(dir.path()).unwrap();
        match DirLock::take(dir.path()) {
            Err(DirLockError::InUse(pid)) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(first);
        DirLock::take(dir.path()).expect("free once the first lock is dropped");
    }
}
