//! What is deployed, as durable records: one JSON file per function under
//! `DATA_DIR/functions/<name>.json`.
//!
//! A record names the function's route, its numbered versions (each an
//! immutable source hash plus settings) and how traffic splits between them.
//! A record is replaced atomically (temp file, fsync, rename), so after a crash
//! a function is fully its old state or fully its new one. Records reference
//! artifacts by source hash; the artifacts are written before the record.

use crate::artifact::{SourceHash, write_file_atomically};
use crate::settings::RawSettings;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Longest function name, in bytes.
pub const MAX_NAME_LEN: usize = 63;

/// Checks a function name: 1–63 of `a-z`, `0-9`, `-`, `_`, starting with a
/// letter or digit. Names become file names, so nothing else is allowed.
pub fn validate_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid function name `{name}`: use 1 to {MAX_NAME_LEN} lowercase letters, digits, `-` or `_`, starting with a letter or digit"
        ))
    }
}

/// Which guest ABI a binary uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Abi {
    /// A `wasi:http/proxy` component (WASI 0.2).
    WasiHttp,
    /// A WASI preview1 core module run CGI-style.
    Cgi,
}

impl Abi {
    /// The name shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Abi::WasiHttp => "wasi-http",
            Abi::Cgi => "cgi",
        }
    }
}

/// One immutable version of a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRecord {
    /// 1, 2, 3 … in deploy order, never reused.
    pub number: u32,
    /// Hash of the uploaded binary.
    pub source: String,
    /// Its ABI.
    pub abi: Abi,
    /// When it was deployed, seconds since the Unix epoch.
    pub created_unix: u64,
    /// Its settings, canonical text, without the route (the function's).
    pub settings: RawSettings,
}

impl VersionRecord {
    /// The source hash, checked.
    pub fn source_hash(&self) -> Option<SourceHash> {
        SourceHash::parse(&self.source)
    }
}

/// A share of a function's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficShare {
    /// The version number.
    pub version: u32,
    /// Percent of requests, 1–100.
    pub weight: u8,
}

/// A deployed function, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionRecord {
    /// Its name.
    pub name: String,
    /// Its route prefix.
    pub route: String,
    /// Its versions, oldest first.
    pub versions: Vec<VersionRecord>,
    /// How traffic splits; weights sum to 100.
    pub traffic: Vec<TrafficShare>,
    /// The previous traffic split, for one-step rollback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_traffic: Vec<TrafficShare>,
}

impl FunctionRecord {
    /// The version with number `number`.
    pub fn version(&self, number: u32) -> Option<&VersionRecord> {
        self.versions.iter().find(|v| v.number == number)
    }

    /// The number the next deploy gets.
    pub fn next_version(&self) -> u32 {
        self.versions.iter().map(|v| v.number).max().unwrap_or(0) + 1
    }
}

/// The directory of records.
#[derive(Debug)]
pub struct RecordStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl RecordStore {
    /// Opens (creating) `DATA_DIR/functions`; temp files go to `tmp`, which
    /// must be on the same file system and is cleaned by the artifact store.
    pub fn open(dir: PathBuf, tmp: PathBuf) -> io::Result<RecordStore> {
        fs::create_dir_all(&dir)?;
        fs::create_dir_all(&tmp)?;
        Ok(RecordStore { dir, tmp })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Every stored record; a record that cannot be read is returned as an
    /// error with its path, so the host can report it and carry on.
    pub fn load_all(&self) -> io::Result<Vec<Result<FunctionRecord, (PathBuf, String)>>> {
        let mut records = Vec::new();
        let mut paths: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<FunctionRecord>(&bytes).map_err(|e| e.to_string())
                })
                .and_then(|record| check_record(&path, record));
            records.push(parsed.map_err(|e| (path, e)));
        }
        Ok(records)
    }

    /// Replaces the record of `record.name` atomically.
    pub fn save(&self, record: &FunctionRecord) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        let temp = self
            .tmp
            .join(format!("{}-{}.json.part", std::process::id(), record.name));
        write_file_atomically(&temp, &self.path(&record.name), &bytes)
    }

    /// Removes the record of `name` (durably).
    pub fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.path(name))?;
        fs::File::open(&self.dir)?.sync_all()
    }
}

fn check_record(path: &Path, record: FunctionRecord) -> Result<FunctionRecord, String> {
    validate_name(&record.name)?;
    let expected = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if record.name != expected {
        return Err(format!(
            "record names `{}` but is stored as `{expected}`",
            record.name
        ));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> FunctionRecord {
        FunctionRecord {
            name: name.into(),
            route: "/x".into(),
            versions: vec![VersionRecord {
                number: 1,
                source: "a".repeat(64),
                abi: Abi::WasiHttp,
                created_unix: 1,
                settings: RawSettings::default(),
            }],
            traffic: vec![TrafficShare {
                version: 1,
                weight: 100,
            }],
            previous_traffic: vec![],
        }
    }

    #[test]
    fn names_are_restricted_to_safe_file_names() {
        for ok in ["hello", "a", "my-fn_2", "9lives"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "Hello", "a/b", "..", "a.b", &"x".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_round_trip_and_bad_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::open(dir.path().join("f"), dir.path().join("t")).unwrap();
        store.save(&record("one")).unwrap();
        fs::write(dir.path().join("f/broken.json"), b"{not json").unwrap();
        let loaded = store.load_all().unwrap();
        assert_eq!(loaded.len(), 2);
        assert!(loaded[0].is_err());
        assert_eq!(loaded[1].as_ref().unwrap(), &record("one"));
        store.remove("one").unwrap();
        assert_eq!(store.load_all().unwrap().len(), 1);
    }

    #[test]
    fn next_version_follows_the_highest() {
        let mut r = record("x");
        assert_eq!(r.next_version(), 2);
        r.versions[0].number = 7;
        assert_eq!(r.next_version(), 8);
    }
}
