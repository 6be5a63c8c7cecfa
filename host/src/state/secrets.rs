//! [`SecretStore`]: each function's secrets, which its guests read through
//! `wasi:config` and nothing ever shows.
//!
//! One JSON file per function under `DATA_DIR/secrets/` (the directory
//! `0700`, each file `0600`, replaced atomically). Secrets belong to the
//! function, not to a version: every version sees a secret from the next
//! request on, and removing the function removes them. Only names leave
//! this module through the API; values go to the guest alone.
//!
//! A file that cannot be read (truncated, edited by hand) does not stop
//! the host: that function's secrets are *damaged* — a guest reading one
//! gets an error from that call, a change is refused, the host log names
//! the file and `/healthz` lists it — and the file is read again, at most
//! every [`RETRY_EVERY`](super::db_slot::RETRY_EVERY), until the operator
//! repairs or removes it.

use super::db_slot::RETRY_EVERY;
use crate::disk::write_file_atomically;
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Longest secret name, in bytes.
pub const MAX_SECRET_NAME_BYTES: usize = 128;

/// Largest secret value, in bytes (64 KiB).
pub const MAX_SECRET_VALUE_BYTES: usize = 64 << 10;

/// The secrets of one function, read on every `wasi:config` call.
#[derive(Default)]
pub struct FunctionSecrets {
    values: ArcSwap<BTreeMap<String, String>>,
    /// Set while the function's file cannot be read (the fast path checks
    /// `damaged` alone).
    damaged: AtomicBool,
    damage: Mutex<Option<Damage>>,
}

/// A secrets file that cannot be read.
struct Damage {
    path: PathBuf,
    /// Why, naming the file under the data dir (never the host's path).
    reason: String,
    tried: Instant,
}

impl FunctionSecrets {
    /// The value of secret `name`; `Err` (why) while the file is damaged.
    pub(crate) fn get(&self, name: &str) -> Result<Option<String>, String> {
        self.check()?;
        Ok(self.values.load().get(name).cloned())
    }

    /// Every secret, by name; `Err` (why) while the file is damaged.
    pub(crate) fn all(&self) -> Result<BTreeMap<String, String>, String> {
        self.check()?;
        Ok((**self.values.load()).clone())
    }

    /// Fixed secrets: what a guest worker is handed of its own function's.
    pub(crate) fn fixed(values: BTreeMap<String, String>) -> FunctionSecrets {
        let secrets = FunctionSecrets::default();
        secrets.values.store(Arc::new(values));
        secrets
    }

    /// Every secret, as one shared map (or why the file is damaged): a
    /// worker handed it is replaced once the map is no longer the same.
    pub(crate) fn snapshot(&self) -> Result<Arc<BTreeMap<String, String>>, String> {
        self.check()?;
        Ok(self.values.load_full())
    }

    /// Secrets read from a file that could not be: none, until it can.
    fn damaged(path: PathBuf, reason: String) -> FunctionSecrets {
        let secrets = FunctionSecrets::default();
        secrets.damaged.store(true, Ordering::Release);
        *secrets.lock_damage() = Some(Damage {
            path,
            reason,
            tried: Instant::now(),
        });
        secrets
    }

    /// Why the file is damaged, after reading it again if the last try was
    /// long enough ago; `Ok` once it reads (or is gone).
    fn check(&self) -> Result<(), String> {
        if !self.damaged.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut damage = self.lock_damage();
        let Some(known) = damage.as_mut() else {
            return Ok(());
        };
        if known.tried.elapsed() < RETRY_EVERY {
            return Err(known.reason.clone());
        }
        known.tried = Instant::now();
        match read_file(&known.path) {
            Ok(values) => {
                tracing::info!(file = %known.path.display(), "secrets file is readable again");
                self.values.store(Arc::new(values));
                *damage = None;
                self.damaged.store(false, Ordering::Release);
                Ok(())
            }
            Err(_) => Err(known.reason.clone()),
        }
    }

    /// Why the file is damaged, without reading it again.
    fn damage(&self) -> Option<String> {
        if !self.damaged.load(Ordering::Acquire) {
            return None;
        }
        self.lock_damage().as_ref().map(|d| d.reason.clone())
    }

    fn lock_damage(&self) -> std::sync::MutexGuard<'_, Option<Damage>> {
        self.damage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The names of the secrets, sorted.
    pub fn names(&self) -> Vec<String> {
        self.values.load().keys().cloned().collect()
    }
}

/// A secret name or value that cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The name is not 1 to 128 of `A-Z a-z 0-9 _ . -`.
    #[error(
        "`{0}` is not a secret name: use 1 to {MAX_SECRET_NAME_BYTES} letters, digits, `_`, `.` or `-`"
    )]
    BadName(String),
    /// The value is over [`MAX_SECRET_VALUE_BYTES`] or not UTF-8.
    #[error("the value of secret `{0}` must be UTF-8 text of at most 64 KiB")]
    BadValue(String),
    /// Writing the function's secrets file failed; nothing changed.
    #[error("storing secrets failed: {0}")]
    Io(#[from] io::Error),
}

/// Every function's secrets, on disk and in memory.
pub struct SecretStore {
    dir: PathBuf,
    functions: Mutex<HashMap<String, Arc<FunctionSecrets>>>,
    /// Serializes writes, so a file always holds the latest whole set.
    writer: Mutex<()>,
}

impl SecretStore {
    /// Opens (creating if needed) `DATA_DIR/secrets` and reads every
    /// function's file; a file that cannot be read marks that function's
    /// secrets damaged (logged) and nothing else. Blocks: call it at
    /// start-up.
    pub fn open(data_dir: &Path) -> io::Result<SecretStore> {
        let dir = data_dir.join("secrets");
        DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        let mut functions = HashMap::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let secrets = match read_file(&path) {
                Ok(values) => FunctionSecrets {
                    values: ArcSwap::from_pointee(values),
                    ..FunctionSecrets::default()
                },
                Err(error) => {
                    tracing::error!(
                        file = %path.display(),
                        "the secrets file `{}` cannot be read ({error}): function `{name}`'s guests get an error for its secrets until it is repaired or removed",
                        path.display()
                    );
                    let reason = format!(
                        "`secrets/{name}.json` cannot be read ({error}); repair or remove it"
                    );
                    FunctionSecrets::damaged(path.clone(), reason)
                }
            };
            functions.insert(name.to_owned(), Arc::new(secrets));
        }
        Ok(SecretStore {
            dir,
            functions: Mutex::new(functions),
            writer: Mutex::new(()),
        })
    }

    /// The secrets of `function` (empty if it has none yet), shared with
    /// every version of it.
    pub fn for_function(&self, function: &str) -> Arc<FunctionSecrets> {
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        functions.entry(function.to_owned()).or_default().clone()
    }

    /// Why each damaged secrets file cannot be read, naming it.
    pub fn damage(&self) -> Vec<String> {
        let functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        let mut damage: Vec<String> = functions.values().filter_map(|s| s.damage()).collect();
        damage.sort();
        damage
    }

    /// The functions that have stored secrets.
    pub fn functions(&self) -> Vec<String> {
        let functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        functions
            .iter()
            .filter(|(_, secrets)| !secrets.values.load().is_empty())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Sets secret `name` of `function` to `value`, durably (blocking).
    pub fn set(&self, function: &str, name: &str, value: &[u8]) -> Result<(), SecretError> {
        check_name(name)?;
        let value = std::str::from_utf8(value)
            .ok()
            .filter(|v| v.len() <= MAX_SECRET_VALUE_BYTES)
            .ok_or_else(|| SecretError::BadValue(name.to_owned()))?;
        self.change(function, |values| {
            values.insert(name.to_owned(), value.to_owned());
            true
        })?;
        Ok(())
    }

    /// Removes secret `name` of `function`; false if it had none (blocking).
    pub fn remove(&self, function: &str, name: &str) -> Result<bool, SecretError> {
        check_name(name)?;
        Ok(self.change(function, |values| values.remove(name).is_some())?)
    }

    /// Removes every secret of `function`, with its file (blocking).
    pub fn forget(&self, function: &str) -> io::Result<()> {
        let _writing = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        match fs::remove_file(self.file(function)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let removed = self
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(function);
        if let Some(secrets) = removed {
            secrets.values.store(Arc::default());
        }
        Ok(())
    }

    /// Applies `edit` to a copy of `function`'s secrets; if it changed
    /// something, writes the copy and then lets readers see it.
    fn change(
        &self,
        function: &str,
        edit: impl FnOnce(&mut BTreeMap<String, String>) -> bool,
    ) -> io::Result<bool> {
        let _writing = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let secrets = self.for_function(function);
        // A damaged file is never overwritten: the secrets it holds are
        // the operator's to recover.
        let mut values = secrets
            .all()
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidData, reason))?;
        if !edit(&mut values) {
            return Ok(false);
        }
        let bytes = serde_json::to_vec(&values).map_err(io::Error::other)?;
        let temp = self.dir.join(format!(".{function}.json.part"));
        write_file_atomically(&temp, &self.file(function), &bytes)?;
        secrets.values.store(Arc::new(values));
        Ok(true)
    }

    fn file(&self, function: &str) -> PathBuf {
        self.dir.join(format!("{function}.json"))
    }
}

/// The secrets in the file at `path`; a missing file holds none.
fn read_file(path: &Path) -> Result<BTreeMap<String, String>, String> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e.to_string()),
    }
}

fn check_name(name: &str) -> Result<(), SecretError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SECRET_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(SecretError::BadName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_survive_a_reopen_in_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::open(dir.path()).unwrap();
        let seen = store.for_function("shop");
        store.set("shop", "API_KEY", b"s3cret").unwrap();
        assert_eq!(
            seen.get("API_KEY").unwrap().as_deref(),
            Some("s3cret"),
            "live"
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("secrets")), 0o700);
        assert_eq!(mode(&dir.path().join("secrets/shop.json")), 0o600);
        drop(store);
        let reopened = SecretStore::open(dir.path()).unwrap();
        assert_eq!(reopened.for_function("shop").names(), ["API_KEY"]);
        assert!(reopened.remove("shop", "API_KEY").unwrap());
        assert!(!reopened.remove("shop", "API_KEY").unwrap());
        assert!(reopened.for_function("shop").names().is_empty());
    }

    #[test]
    fn forgetting_a_function_clears_what_its_versions_hold() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::open(dir.path()).unwrap();
        store.set("shop", "K", b"v").unwrap();
        let held = store.for_function("shop");
        store.forget("shop").unwrap();
        assert_eq!(held.get("K"), Ok(None));
        assert!(!dir.path().join("secrets/shop.json").exists());
        assert!(
            SecretStore::open(dir.path())
                .unwrap()
                .for_function("shop")
                .names()
                .is_empty()
        );
    }

    #[test]
    fn a_truncated_file_damages_one_function_until_it_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::open(dir.path()).unwrap();
        store.set("shop", "K", b"v").unwrap();
        store.set("blog", "K", b"w").unwrap();
        drop(store);
        fs::write(dir.path().join("secrets/shop.json"), b"{\"K\": \"v").unwrap();
        let store = SecretStore::open(dir.path()).unwrap();
        let damage = store.damage();
        assert_eq!(damage.len(), 1, "{damage:?}");
        assert!(damage[0].contains("`secrets/shop.json`"), "{damage:?}");
        assert!(store.for_function("shop").get("K").is_err());
        assert!(store.set("shop", "K2", b"x").is_err(), "never overwritten");
        assert_eq!(
            store.for_function("blog").get("K").unwrap().as_deref(),
            Some("w")
        );
        fs::remove_file(dir.path().join("secrets/shop.json")).unwrap();
        std::thread::sleep(RETRY_EVERY);
        assert_eq!(store.for_function("shop").get("K"), Ok(None));
        assert!(store.damage().is_empty());
    }

    #[test]
    fn bad_names_and_values_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::open(dir.path()).unwrap();
        for name in ["", "a b", "a/b", &"x".repeat(129)] {
            assert!(
                matches!(store.set("f", name, b"v"), Err(SecretError::BadName(_))),
                "{name:?}"
            );
        }
        let big = vec![b'x'; MAX_SECRET_VALUE_BYTES + 1];
        assert!(matches!(
            store.set("f", "K", &big),
            Err(SecretError::BadValue(_))
        ));
        assert!(matches!(
            store.set("f", "K", &[0xff]),
            Err(SecretError::BadValue(_))
        ));
        assert!(store.for_function("f").names().is_empty());
        assert!(!dir.path().join("secrets/f.json").exists());
    }
}
