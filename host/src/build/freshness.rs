//! Modification times that tell build tools what changed. An uploaded tree
//! arrives whole each time, with the times its archive carries (whole
//! seconds, or none); build tools such as cargo rebuild what is newer than
//! their last build. So after each unpack every file gets a time from its
//! content: a file whose content the previous build of the function also
//! had keeps the time it had then, and any other file gets the unpack's
//! time. The record (path → content hash and time) is the host's, beside
//! the build cache, not in it (a build may write its cache).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest record read back (a bigger one is a previous tree's problem:
/// everything counts as changed).
const MAX_RECORD_BYTES: u64 = 64 << 20;

#[derive(Default, Serialize, Deserialize)]
struct Record {
    /// Relative path → (blake3 of the content, nanoseconds since the epoch).
    files: BTreeMap<String, (String, u64)>,
}

/// Sets the times of every file under `tree` from `record` (and rewrites
/// it). Best effort: a file it cannot read or set is left as unpacked.
pub(crate) fn settle(tree: &Path, record: &Path) -> std::io::Result<()> {
    let previous: Record = std::fs::metadata(record)
        .ok()
        .filter(|m| m.len() <= MAX_RECORD_BYTES)
        .and_then(|_| std::fs::read(record).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let now = SystemTime::now();
    let mut next = Record::default();
    walk(tree, tree, &mut |relative, path| {
        let Ok(content) = std::fs::read(path) else {
            return;
        };
        let hash = blake3::hash(&content).to_hex().to_string();
        let time = match previous.files.get(relative) {
            Some((old, nanos)) if *old == hash => UNIX_EPOCH + Duration::from_nanos(*nanos),
            _ => now,
        };
        let set = std::fs::File::open(path).and_then(|file| file.set_modified(time));
        if set.is_ok() {
            let nanos = time
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            next.files.insert(relative.to_owned(), (hash, nanos));
        }
    })?;
    let bytes = serde_json::to_vec(&next).map_err(std::io::Error::other)?;
    crate::disk::write_file_atomically(&record.with_extension("json.tmp"), record, &bytes)
}

/// Calls `visit` with each regular file under `dir` (links not followed).
fn walk(root: &Path, dir: &Path, visit: &mut dyn FnMut(&str, &Path)) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            walk(root, &path, visit)?;
        } else if kind.is_file()
            && let Some(relative) = path.strip_prefix(root).ok().and_then(Path::to_str)
        {
            visit(relative, &path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modified(path: &Path) -> SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn an_unchanged_file_keeps_its_time_and_a_changed_one_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let (tree, record) = (dir.path().join("tree"), dir.path().join("state.json"));
        std::fs::create_dir_all(tree.join("src")).unwrap();
        std::fs::write(tree.join("src/a.rs"), "a").unwrap();
        std::fs::write(tree.join("b.rs"), "b").unwrap();
        settle(&tree, &record).unwrap();
        let (a, b) = (
            modified(&tree.join("src/a.rs")),
            modified(&tree.join("b.rs")),
        );

        // The next upload: the same a, a new b, both unpacked "now".
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(tree.join("src/a.rs"), "a").unwrap();
        std::fs::write(tree.join("b.rs"), "b2").unwrap();
        settle(&tree, &record).unwrap();
        assert_eq!(modified(&tree.join("src/a.rs")), a);
        assert!(modified(&tree.join("b.rs")) > b);
    }
}
