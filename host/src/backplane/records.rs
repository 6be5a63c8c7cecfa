//! What is deployed, as durable records: one JSON file per function under
//! `DATA_DIR/functions/<name>.json`.
//!
//! A record names the function's route, its numbered versions (each an
//! immutable source hash plus settings) and how traffic splits between them.
//! A record is replaced atomically (temp file, fsync, rename), so after a crash
//! a function is fully its old state or fully its new one. Records reference
//! artifacts by source hash; the artifacts are written before the record.
//!
//! Each version remembers whether it ever held traffic: the public path may
//! pin a version that serves now or a preview that never served, never one
//! that lost its traffic. Every change of traffic goes through
//! [`FunctionRecord::shift_traffic`], which keeps that mark.
//!
//! Errors of [`RecordStore::save`] and [`RecordStore::remove`] name the file
//! involved: they are for the host log, never for a client.

use crate::disk::{failed_at, write_file_atomically};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use wisp_spec::inspect::Abi;
use wisp_spec::name::validate_name;
use wisp_spec::settings::RawSettings;
use wisp_spec::source::SourceHash;
use wisp_spec::traffic::TrafficShare;

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
    /// Whether it has ever taken traffic (a deploy that took it, a traffic
    /// change, a rollback). Set once, never cleared. Absent in records
    /// written before wisp kept it; see [`FunctionRecord::mark_legacy`].
    #[serde(default)]
    pub held_traffic: bool,
    /// Where the binary came from, if the deploy said (an OCI reference
    /// with its digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// How the binary was composed with middleware (the `middleware`
    /// setting); absent for a binary served as uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition: Option<Composition>,
}

/// A version composed from its function's own binary and the middleware
/// in front of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Composition {
    /// Hash of the function's own binary (`source` is the composed one).
    pub target: String,
    /// The middleware composed in, outermost first.
    pub middleware: Vec<LayerUse>,
}

/// One middleware function's version in a composition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerUse {
    /// The middleware function.
    pub function: String,
    /// Its version composed in.
    pub version: u32,
}

impl VersionRecord {
    /// The source hash, checked.
    pub fn source_hash(&self) -> Option<SourceHash> {
        SourceHash::parse(&self.source)
    }

    /// Every binary it needs kept: its source, and for a composed version
    /// its function's own binary too (to compose again).
    pub fn kept_sources(&self) -> impl Iterator<Item = SourceHash> + '_ {
        let target = self
            .composition
            .as_ref()
            .and_then(|c| SourceHash::parse(&c.target));
        self.source_hash().into_iter().chain(target)
    }

    /// The function's own binary: the source of a composed version's
    /// target, else the source itself.
    pub fn own_source_hash(&self) -> Option<SourceHash> {
        match &self.composition {
            Some(composition) => SourceHash::parse(&composition.target),
            None => self.source_hash(),
        }
    }
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

    /// The version serving most of its traffic (the newest of equals).
    pub fn serving(&self) -> Option<&VersionRecord> {
        let share = self
            .traffic
            .iter()
            .max_by_key(|share| (share.weight, share.version))?;
        self.version(share.version)
    }

    /// The number the next deploy gets.
    pub fn next_version(&self) -> u32 {
        self.versions.iter().map(|v| v.number).max().unwrap_or(0) + 1
    }

    /// True when version `number` is named in the current traffic split.
    pub fn in_traffic(&self, number: u32) -> bool {
        self.traffic.iter().any(|s| s.version == number)
    }

    /// Gives traffic to `shares`, keeping the current split as the rollback
    /// target, and marks every version that gets a share as having held
    /// traffic. The one way traffic changes.
    pub fn shift_traffic(&mut self, shares: Vec<TrafficShare>) {
        for version in &mut self.versions {
            if shares
                .iter()
                .any(|s| s.version == version.number && s.weight > 0)
            {
                version.held_traffic = true;
            }
        }
        self.previous_traffic = std::mem::replace(&mut self.traffic, shares);
    }

    /// A record written before versions kept `held_traffic` has none
    /// marked: mark them all. Such a record cannot tell a preview from a
    /// version that lost its traffic, and the safe mistake is to hide a
    /// preview from public pinning (`wisp invoke` still reaches it) rather
    /// than expose a version that was taken out of service. A record wisp
    /// writes always has one marked: the version its traffic names.
    fn mark_legacy(mut self) -> FunctionRecord {
        if !self.versions.iter().any(|v| v.held_traffic) {
            for version in &mut self.versions {
                version.held_traffic = true;
            }
        }
        self
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

    /// The file holding the record of `name`.
    pub fn path(&self, name: &str) -> PathBuf {
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
                .and_then(|record| check_record(&path, record))
                .map(FunctionRecord::mark_legacy);
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
        let path = self.path(name);
        fs::remove_file(&path).map_err(failed_at("removing", &path))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(failed_at("syncing", &self.dir))
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

/// A record of function `f` at `/f` with `versions` (each having held
/// traffic) and the `(version, weight)` split `traffic`, for tests.
#[cfg(test)]
pub(crate) fn test_record(versions: &[u32], traffic: &[(u32, u8)]) -> FunctionRecord {
    FunctionRecord {
        name: "f".into(),
        route: "/f".into(),
        versions: versions
            .iter()
            .map(|&number| VersionRecord {
                number,
                source: "a".repeat(64),
                abi: Abi::WasiHttp,
                created_unix: 0,
                settings: RawSettings::default(),
                held_traffic: true,
                origin: None,
                composition: None,
            })
            .collect(),
        traffic: traffic
            .iter()
            .map(|&(version, weight)| TrafficShare { version, weight })
            .collect(),
        previous_traffic: vec![],
    }
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
                held_traffic: true,
                origin: None,
                composition: None,
            }],
            traffic: vec![TrafficShare {
                version: 1,
                weight: 100,
            }],
            previous_traffic: vec![],
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
    fn shifting_traffic_marks_versions_for_good_and_keeps_the_rollback_target() {
        let mut r = record("x");
        let mut v2 = r.versions[0].clone();
        v2.number = 2;
        v2.held_traffic = false;
        r.versions.push(v2);
        let to_v2 = vec![TrafficShare {
            version: 2,
            weight: 100,
        }];
        r.shift_traffic(to_v2.clone());
        assert!(r.version(2).unwrap().held_traffic);
        assert_eq!(r.traffic, to_v2);
        assert_eq!(r.previous_traffic[0].version, 1);
        r.shift_traffic(r.previous_traffic.clone());
        assert!(
            r.version(2).unwrap().held_traffic,
            "losing traffic does not clear the mark"
        );
        assert!(r.in_traffic(1) && !r.in_traffic(2));
    }

    #[test]
    fn records_from_before_the_mark_load_with_every_version_marked() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::open(dir.path().join("f"), dir.path().join("t")).unwrap();
        let legacy = r#"{"name": "old", "route": "/old", "traffic": [{"version": 2, "weight": 100}],
            "versions": [
              {"number": 1, "source": "SRC", "abi": "wasi-http", "created_unix": 1, "settings": {}},
              {"number": 2, "source": "SRC", "abi": "wasi-http", "created_unix": 2, "settings": {}}]}"#
            .replace("SRC", &"a".repeat(64));
        fs::write(dir.path().join("f/old.json"), legacy).unwrap();
        let mut current = record("new");
        let mut preview = current.versions[0].clone();
        preview.number = 2;
        preview.held_traffic = false;
        current.versions.push(preview);
        store.save(&current).unwrap();
        let loaded = store.load_all().unwrap();
        let old = loaded[1].as_ref().unwrap();
        assert!(old.versions.iter().all(|v| v.held_traffic), "{old:?}");
        let new = loaded[0].as_ref().unwrap();
        assert_eq!(new, &current, "a current record loads as written");
    }

    #[test]
    fn next_version_follows_the_highest() {
        let mut r = record("x");
        assert_eq!(r.next_version(), 2);
        r.versions[0].number = 7;
        assert_eq!(r.next_version(), 8);
    }
}
