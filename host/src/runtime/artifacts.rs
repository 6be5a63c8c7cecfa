//! The content-addressed artifact store under the data dir.
//!
//! Layout, all below `DATA_DIR/artifacts/`:
//!
//! * `sources/<blake3 of the wasm>.wasm` — the uploaded bytes, kept so an
//!   artifact can always be rebuilt;
//! * `compiled/<key>.cwasm` — native code from Cranelift, where the key hashes
//!   the source hash together with the engine's compatibility fingerprint, so
//!   a different wasmtime or engine configuration never loads stale code;
//! * `compiled/<key>.sum` — the blake3 of the `.cwasm`, checked before every
//!   load, so a corrupted or truncated artifact is caught, not mmapped;
//! * `tmp/` — files being written. Every file is written there, fsynced, then
//!   renamed into place (and the directory fsynced): a crash leaves either the
//!   whole file or none, plus temp files that [`ArtifactStore::open`] removes.
//!
//! Its errors name the files involved, for the host log; what a client is
//! told is a [`HostFailure`](crate::error::HostFailure), which names none.

use crate::backplane::records::FunctionRecord;
use crate::disk::crash_point::CrashPoint;
use crate::disk::write_file_atomically;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wisp_spec::source::SourceHash;

/// Why a compiled artifact could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// No compiled artifact for this engine yet.
    #[error("no compiled artifact `{0}`")]
    Missing(String),
    /// The artifact's checksum does not match its contents.
    #[error("compiled artifact `{0}` is corrupt (checksum mismatch)")]
    Corrupt(String),
    /// Reading or writing failed. Its message names host paths: log it,
    /// never send it to a client.
    #[error("artifact store i/o on `{path}`: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The artifact store. Cheap to share: it holds only paths.
#[derive(Debug)]
pub struct ArtifactStore {
    sources: PathBuf,
    compiled: PathBuf,
    tmp: PathBuf,
    fingerprint: String,
    temp_counter: AtomicU64,
}

impl ArtifactStore {
    /// Versions of `record` whose stored source is gone, one reason each
    /// naming the source by hash (blocking: it looks at the disk). A version
    /// can run from its compiled artifact, but could never be rebuilt. The
    /// reasons reach the admin API, so the file's path goes to the host log
    /// only.
    pub(crate) fn missing_sources(&self, record: &FunctionRecord) -> Vec<String> {
        record
            .versions
            .iter()
            .filter_map(|version| {
                let path = self.source_path(&version.source_hash()?);
                (!path.exists()).then(|| {
                    tracing::warn!(
                        function = %record.name,
                        version = version.number,
                        path = %path.display(),
                        "stored source is missing"
                    );
                    format!(
                        "the stored source of v{n} (`{source}`) is missing from the data dir (the host log names the file); retire v{n} with `wisp retire {name} v{n}` (after moving its traffic) or remove the function",
                        n = version.number,
                        source = version.source,
                        name = record.name,
                    )
                })
            })
            .collect()
    }

    /// Opens (creating if needed) the store under `root` for an engine with
    /// compatibility `fingerprint`, and removes temp files a crash left.
    pub fn open(root: &Path, fingerprint: String) -> Result<ArtifactStore, ArtifactError> {
        let store = ArtifactStore {
            sources: root.join("sources"),
            compiled: root.join("compiled"),
            tmp: root.join("tmp"),
            fingerprint,
            temp_counter: AtomicU64::new(0),
        };
        for dir in [&store.sources, &store.compiled, &store.tmp] {
            fs::create_dir_all(dir).map_err(io_error(dir))?;
        }
        remove_temp_files(&store.tmp)?;
        Ok(store)
    }

    /// A store with no files, for a guest worker: its code is handed to it
    /// loaded, so nothing ever reads or writes here.
    pub(crate) fn none(fingerprint: String) -> ArtifactStore {
        ArtifactStore {
            sources: PathBuf::new(),
            compiled: PathBuf::new(),
            tmp: PathBuf::new(),
            fingerprint,
            temp_counter: AtomicU64::new(0),
        }
    }

    /// The key of the compiled artifact for `source` on this engine.
    pub fn compiled_key(&self, source: &SourceHash) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(self.fingerprint.as_bytes());
        hasher.update(b"/");
        hasher.update(source.as_str().as_bytes());
        hasher.finalize().to_hex().to_string()
    }

    /// Path of a source file.
    pub fn source_path(&self, source: &SourceHash) -> PathBuf {
        self.sources.join(format!("{}.wasm", source.as_str()))
    }

    /// Path of a compiled artifact.
    pub fn compiled_path(&self, key: &str) -> PathBuf {
        self.compiled.join(format!("{key}.cwasm"))
    }

    fn sum_path(&self, key: &str) -> PathBuf {
        self.compiled.join(format!("{key}.sum"))
    }

    /// Stores an uploaded binary (a no-op when it is already stored).
    pub fn put_source(&self, wasm: &[u8]) -> Result<SourceHash, ArtifactError> {
        let hash = SourceHash::of(wasm);
        let path = self.source_path(&hash);
        if !path.exists() {
            self.write_atomically(&path, wasm)?;
        }
        Ok(hash)
    }

    /// Reads a stored source binary.
    pub fn read_source(&self, source: &SourceHash) -> Result<Vec<u8>, ArtifactError> {
        let path = self.source_path(source);
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        if SourceHash::of(&bytes) != *source {
            return Err(ArtifactError::Corrupt(path.display().to_string()));
        }
        Ok(bytes)
    }

    /// Stores compiled code under `key`: the code first, then its checksum, so
    /// a crash in between leaves an artifact that fails verification.
    pub fn put_compiled(&self, key: &str, cwasm: &[u8]) -> Result<PathBuf, ArtifactError> {
        let path = self.compiled_path(key);
        self.write_atomically(&path, cwasm)?;
        CrashPoint::CompiledWritten.reached();
        let sum = blake3::hash(cwasm).to_hex();
        self.write_atomically(&self.sum_path(key), sum.as_bytes())?;
        Ok(path)
    }

    /// Checks that the artifact `key` exists and matches its checksum, and
    /// returns its path, ready to be mmapped.
    pub fn verified_compiled(&self, key: &str) -> Result<PathBuf, ArtifactError> {
        let (mut file, path, expected) = self.open_compiled(key)?;
        // Read, not mmap: verifying must not leave the pages counted in RSS.
        if checksum_copying(&mut file, &mut io::sink()).map_err(io_error(&path))? != expected.trim()
        {
            return Err(ArtifactError::Corrupt(path.display().to_string()));
        }
        // Drop the file from the page cache again: when wasmtime maps it, the
        // kernel maps every neighbouring page already cached on each fault
        // ("fault-around"), so a fully cached artifact ends up mostly
        // resident in every host that merely loaded it. Uncached, only the
        // pages wasmtime touches are read (measured: 0.7 → 0.3 MiB resident
        // per idle hello function). Only advice: failure changes nothing.
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
        Ok(path)
    }

    /// The artifact `key`, checked against its checksum as it is copied
    /// into a sealed memory file (`memfd`): the code guest workers map.
    /// Sealed, it cannot change after the check; a worker handed it reopens
    /// it through `/proc/self/fd` as its unprivileged user (a memory file
    /// is readable by its holder and lies in no directory a Landlock rule
    /// covers), while the store's own files stay `0600` in their `0700`
    /// directories. Every worker of the code shares its pages.
    pub fn compiled_sealed(&self, key: &str) -> Result<OwnedFd, ArtifactError> {
        let (mut file, path, expected) = self.open_compiled(key)?;
        let sealed_failed = |e: rustix::io::Errno| io_error(&path)(io::Error::from(e));
        let memory = rustix::fs::memfd_create(
            "wisp-code",
            rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
        )
        .map_err(sealed_failed)?;
        let mut copy = File::from(memory);
        if checksum_copying(&mut file, &mut copy).map_err(io_error(&path))? != expected.trim() {
            return Err(ArtifactError::Corrupt(path.display().to_string()));
        }
        let memory = OwnedFd::from(copy);
        rustix::fs::fcntl_add_seals(
            &memory,
            rustix::fs::SealFlags::SHRINK
                | rustix::fs::SealFlags::GROW
                | rustix::fs::SealFlags::WRITE
                | rustix::fs::SealFlags::SEAL,
        )
        .map_err(sealed_failed)?;
        Ok(memory)
    }

    /// The artifact `key` opened, its path and its recorded checksum; an
    /// artifact without one is corrupt (its write was cut short).
    fn open_compiled(&self, key: &str) -> Result<(File, PathBuf, String), ArtifactError> {
        let path = self.compiled_path(key);
        let sum_path = self.sum_path(key);
        let expected = match fs::read_to_string(&sum_path) {
            Ok(sum) => sum,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(if path.exists() {
                    ArtifactError::Corrupt(path.display().to_string())
                } else {
                    ArtifactError::Missing(key.to_owned())
                });
            }
            Err(e) => return Err(io_error(&sum_path)(e)),
        };
        match File::open(&path) {
            Ok(file) => Ok((file, path, expected)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ArtifactError::Missing(key.to_owned()))
            }
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    /// Removes sources and compiled artifacts that `keep` does not name.
    pub fn retain_sources(
        &self,
        keep: &std::collections::HashSet<SourceHash>,
    ) -> Result<(), ArtifactError> {
        let compiled_keep: std::collections::HashSet<String> =
            keep.iter().map(|s| self.compiled_key(s)).collect();
        for entry in fs::read_dir(&self.sources).map_err(io_error(&self.sources))? {
            let path = entry.map_err(io_error(&self.sources))?.path();
            let hash = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(SourceHash::parse);
            if hash.is_none_or(|h| !keep.contains(&h)) {
                remove_garbage(&path)?;
            }
        }
        for entry in fs::read_dir(&self.compiled).map_err(io_error(&self.compiled))? {
            let path = entry.map_err(io_error(&self.compiled))?.path();
            let key = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            if !compiled_keep.contains(key) {
                remove_garbage(&path)?;
            }
        }
        Ok(())
    }

    /// Writes `bytes` to `path` so that readers see all of it or none.
    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = self.tmp.join(format!("{}-{n}.part", std::process::id()));
        write_file_atomically(&temp, path, bytes).map_err(io_error(path))
    }
}

/// Removes one file garbage collection found unused.
fn remove_garbage(path: &Path) -> Result<(), ArtifactError> {
    fs::remove_file(path).map_err(io_error(path))?;
    CrashPoint::GcMidway.reached();
    Ok(())
}

fn remove_temp_files(tmp: &Path) -> Result<(), ArtifactError> {
    for entry in fs::read_dir(tmp).map_err(io_error(tmp))? {
        let path = entry.map_err(io_error(tmp))?.path();
        fs::remove_file(&path).map_err(io_error(&path))?;
    }
    Ok(())
}

/// The blake3 of what is left to read of `file`, in hex; each chunk read
/// is also written to `copy` (`io::sink()` for none).
fn checksum_copying(file: &mut File, copy: &mut impl Write) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 256 << 10];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finalize().to_hex().to_string());
        }
        hasher.update(&buffer[..n]);
        copy.write_all(&buffer[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn store(dir: &Path, fingerprint: &str) -> ArtifactStore {
        ArtifactStore::open(dir, fingerprint.to_owned()).unwrap()
    }

    #[test]
    fn sources_are_content_addressed_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "engine-a");
        let hash = s.put_source(b"\0asm\x01\0\0\0").unwrap();
        assert_eq!(hash, SourceHash::of(b"\0asm\x01\0\0\0"));
        assert_eq!(s.read_source(&hash).unwrap(), b"\0asm\x01\0\0\0");
        fs::write(s.source_path(&hash), b"tampered").unwrap();
        assert!(matches!(
            s.read_source(&hash),
            Err(ArtifactError::Corrupt(_))
        ));
    }

    #[test]
    fn compiled_keys_depend_on_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let hash = SourceHash::of(b"x");
        let a = store(dir.path(), "engine-a").compiled_key(&hash);
        let b = store(dir.path(), "engine-b").compiled_key(&hash);
        assert_ne!(a, b);
    }

    #[test]
    fn corrupt_truncated_or_unsummed_artifacts_fail_verification() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "engine-a");
        assert!(matches!(
            s.verified_compiled("k"),
            Err(ArtifactError::Missing(_))
        ));
        assert!(matches!(
            s.compiled_sealed("k"),
            Err(ArtifactError::Missing(_))
        ));
        s.put_compiled("k", b"native code").unwrap();
        assert!(s.verified_compiled("k").is_ok());
        let sealed = File::from(s.compiled_sealed("k").unwrap());
        assert_eq!(
            fs::read(format!("/proc/self/fd/{}", sealed.as_raw_fd())).unwrap(),
            b"native code"
        );
        // Sealed: what was checked is what every worker maps.
        assert!((&sealed).write_all(b"x").is_err());
        assert!(sealed.set_len(0).is_err());
        assert_eq!(sealed.metadata().unwrap().len(), 11);
        fs::write(s.compiled_path("k"), b"native").unwrap();
        assert!(matches!(
            s.verified_compiled("k"),
            Err(ArtifactError::Corrupt(_))
        ));
        assert!(matches!(
            s.compiled_sealed("k"),
            Err(ArtifactError::Corrupt(_))
        ));
        s.put_compiled("k", b"native code").unwrap();
        fs::remove_file(s.sum_path("k")).unwrap();
        assert!(matches!(
            s.verified_compiled("k"),
            Err(ArtifactError::Corrupt(_))
        ));
        assert!(matches!(
            s.compiled_sealed("k"),
            Err(ArtifactError::Corrupt(_))
        ));
    }

    #[test]
    fn a_failed_write_names_the_step_and_the_file_for_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "e");
        fs::remove_dir(&s.tmp).unwrap();
        fs::write(&s.tmp, b"not a directory").unwrap();
        let err = s.put_source(b"wasm").unwrap_err().to_string();
        let temp = s.tmp.display().to_string();
        assert!(err.contains(&format!("creating `{temp}/")), "{err}");
        assert!(err.contains(".part`"), "{err}");
    }

    #[test]
    fn opening_removes_leftover_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "e");
        fs::write(s.tmp.join("123-0.part"), b"half a file").unwrap();
        drop(s);
        let s = store(dir.path(), "e");
        assert_eq!(fs::read_dir(&s.tmp).unwrap().count(), 0);
    }

    #[test]
    fn retain_removes_only_unreferenced_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "e");
        let keep = s.put_source(b"keep").unwrap();
        let drop_me = s.put_source(b"drop").unwrap();
        s.put_compiled(&s.compiled_key(&keep), b"k").unwrap();
        s.put_compiled(&s.compiled_key(&drop_me), b"d").unwrap();
        s.retain_sources(&[keep.clone()].into_iter().collect())
            .unwrap();
        assert!(s.source_path(&keep).exists());
        assert!(!s.source_path(&drop_me).exists());
        assert!(s.verified_compiled(&s.compiled_key(&keep)).is_ok());
        assert!(!s.compiled_path(&s.compiled_key(&drop_me)).exists());
    }
}
