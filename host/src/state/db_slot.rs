//! [`DbSlot`]: a redb database that is allowed to be broken for a while —
//! damaged at start, or latched after an I/O error — and mends itself.
//!
//! Two failures used to stop a host for good. A damaged file (`Not a redb
//! database`) made start-up fail, taking every function down for one
//! store. And after an I/O error (a full disk), redb refuses every later
//! call with `Previous I/O error … close and re-open the database`, so
//! writes kept failing after space returned, until a restart.
//!
//! A slot holds the open database, or the reason it has none. Every reader
//! and the writer take the database from the slot; without one, they get
//! the reason as a storage failure (the guest or client sees its call
//! fail, nothing else does), and the slot tries to open the file again, at
//! most every [`RETRY_EVERY`] — so a file the operator repairs or removes
//! is picked up by itself. After a failed write the writer calls
//! [`DbSlot::reopen`]: it closes the database once no reader holds it and
//! opens it anew (redb repairs it if it must).

use super::group_commit::StorageFailure;
use arc_swap::ArcSwapOption;
use redb::Database;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a slot without a database tries to open it again.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);

/// How long a reopen waits for readers to let go of the old database.
const READERS_WAIT: Duration = Duration::from_secs(2);

/// What a store does to a freshly opened database (create its tables).
pub(crate) type Prepare = fn(&Database) -> Result<(), redb::Error>;

/// A database that may be closed for a while, with why.
pub(crate) struct DbSlot {
    path: PathBuf,
    /// The file's name under the data dir, for what clients see (never the
    /// host's own path).
    name: &'static str,
    prepare: Prepare,
    current: ArcSwapOption<Database>,
    /// Why there is no database, and when opening it was last tried.
    trouble: Mutex<Option<(String, Instant)>>,
}

impl DbSlot {
    /// Opens the database `name` under `data_dir` (creating it and its
    /// directory); when that fails, the slot starts without one and says
    /// why in [`DbSlot::trouble`] (and the log, with the full path) — except
    /// when another process has the file open: that is refused, since two
    /// hosts must never share one data dir.
    pub(crate) fn open(
        data_dir: &Path,
        name: &'static str,
        prepare: Prepare,
    ) -> Result<DbSlot, redb::DatabaseError> {
        let path = data_dir.join(name);
        if let Err(error @ redb::DatabaseError::DatabaseAlreadyOpen) = Database::create(&path) {
            return Err(error);
        }
        let slot = DbSlot {
            path,
            name,
            prepare,
            current: ArcSwapOption::empty(),
            trouble: Mutex::new(None),
        };
        let mut trouble = slot.lock();
        slot.try_open(&mut trouble);
        drop(trouble);
        Ok(slot)
    }

    /// The database, or why there is none (after trying to open it again,
    /// if the last try was long enough ago).
    pub(crate) fn get(&self) -> Result<Arc<Database>, StorageFailure> {
        if let Some(db) = self.current.load_full() {
            return Ok(db);
        }
        let mut trouble = self.lock();
        if let Some(db) = self.current.load_full() {
            return Ok(db);
        }
        let due = trouble
            .as_ref()
            .is_none_or(|(_, tried)| tried.elapsed() >= RETRY_EVERY);
        if due {
            self.try_open(&mut trouble);
        }
        match (self.current.load_full(), trouble.as_ref()) {
            (Some(db), _) => Ok(db),
            (None, Some((reason, _))) => Err(failure(reason.clone())),
            (None, None) => Err(failure("the store is not open".into())),
        }
    }

    /// Why the database is not open now, if it is not.
    pub(crate) fn trouble(&self) -> Option<String> {
        if self.current.load().is_some() {
            return None;
        }
        self.lock().as_ref().map(|(reason, _)| reason.clone())
    }

    /// Closes the database after a failed write and opens it anew, so a
    /// latched I/O error does not outlive its cause.
    pub(crate) fn reopen(&self, cause: &StorageFailure) {
        let mut trouble = self.lock();
        let Some(old) = self.current.swap(None) else {
            return;
        };
        tracing::warn!(
            file = %self.path.display(),
            "storage failed ({cause}); reopening `{}`",
            self.path.display()
        );
        let waited = Instant::now();
        while Arc::strong_count(&old) > 1 && waited.elapsed() < READERS_WAIT {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(old);
        *trouble = Some((
            format!("reopening after a storage failure: {cause}"),
            waited,
        ));
        self.try_open(&mut trouble);
    }

    fn try_open(&self, trouble: &mut Option<(String, Instant)>) {
        let opened = (|| {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).map_err(redb::Error::from)?;
            }
            let db = Database::create(&self.path)?;
            (self.prepare)(&db)?;
            Ok::<_, redb::Error>(db)
        })();
        match opened {
            Ok(db) => {
                if trouble.take().is_some() {
                    tracing::info!(file = %self.path.display(), "`{}` is open again", self.path.display());
                }
                self.current.store(Some(Arc::new(db)));
            }
            Err(error) => {
                let reason = format!("`{}` cannot be opened: {error}", self.name);
                if trouble.as_ref().is_none_or(|(known, _)| *known != reason) {
                    tracing::error!(
                        file = %self.path.display(),
                        "`{}` cannot be opened: {error}; calls that need it fail until it is repaired or removed (it is retried every {} s)",
                        self.path.display(),
                        RETRY_EVERY.as_secs()
                    );
                }
                *trouble = Some((reason, Instant::now()));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(String, Instant)>> {
        self.trouble.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// True when a failed write's error means the database must be reopened
/// (an I/O error, or redb's latch after one).
pub(crate) fn needs_reopen(failure: &StorageFailure) -> bool {
    let text = failure.to_string();
    text.contains("I/O error") || text.contains("Previous I/O")
}

fn failure(reason: String) -> StorageFailure {
    Arc::new(std::io::Error::other(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing(_: &Database) -> Result<(), redb::Error> {
        Ok(())
    }

    #[test]
    fn a_damaged_file_is_reported_and_picked_up_once_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/kv.redb");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"this is not a redb database at all").unwrap();
        let slot = DbSlot::open(dir.path(), "state/kv.redb", nothing).unwrap();
        let trouble = slot.trouble().expect("damage reported");
        assert!(trouble.contains("`state/kv.redb`"), "{trouble}");
        assert!(
            !trouble.contains(&*dir.path().to_string_lossy()),
            "{trouble}"
        );
        assert!(slot.get().is_err());
        std::fs::remove_file(&path).unwrap();
        std::thread::sleep(RETRY_EVERY);
        assert!(slot.get().is_ok(), "{:?}", slot.trouble());
        assert!(slot.trouble().is_none());
    }

    #[test]
    fn reopening_waits_for_no_one_and_opens_again() {
        let dir = tempfile::tempdir().unwrap();
        let slot = DbSlot::open(dir.path(), "a.redb", nothing).unwrap();
        assert!(slot.get().is_ok());
        slot.reopen(&failure("I/O error: test".into()));
        assert!(slot.trouble().is_none());
        assert!(slot.get().is_ok());
    }
}
