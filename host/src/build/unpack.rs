//! A source upload (a tar archive, gzipped or not) unpacked into a fresh
//! directory, within bounds: its unpacked size and entry count are capped
//! (a gzip bomb stops at the cap), and only regular files, directories and
//! symbolic links that point inside the tree are accepted, at relative
//! paths without `..`. Anything else is refused with the entry's name.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// How much an upload may unpack to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Bytes of file contents.
    pub bytes: u64,
    /// Entries (files, directories, links).
    pub entries: usize,
}

/// Unpacks `archive` into the empty directory `into`.
pub(crate) fn unpack(archive: &[u8], into: &Path, bounds: Bounds) -> Result<(), String> {
    let reader: Box<dyn Read + '_> = if archive.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(archive))
    } else {
        Box::new(archive)
    };
    // Headers and padding on top of the contents; past this, a bomb.
    let stream_cap = bounds
        .bytes
        .saturating_add(1024 * (bounds.entries as u64 + 2));
    let mut tar = tar::Archive::new(reader.take(stream_cap));
    tar.set_preserve_permissions(false);
    tar.set_overwrite(false);
    let bad = |e: std::io::Error| format!("the source archive is not a valid tar archive: {e}");
    let mut total = 0u64;
    let mut count = 0usize;
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        count += 1;
        if count > bounds.entries {
            return Err(format!(
                "the source archive holds more than {} entries",
                bounds.entries
            ));
        }
        if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
            // Metadata of the whole archive (`git archive` puts the commit
            // id there), not a file.
            continue;
        }
        let path = entry.path().map_err(bad)?.into_owned();
        let shown = path.display().to_string();
        if !is_plain_relative(&path) {
            return Err(format!(
                "the source archive names `{shown}`: paths must be relative, without `..`"
            ));
        }
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(bad)?
                .map(|t| t.into_owned())
                .unwrap_or_default();
            if !stays_inside(&path, &target) {
                return Err(format!(
                    "the source archive's link `{shown}` points outside the tree (`{}`)",
                    target.display()
                ));
            }
        } else if !(kind.is_file() || kind.is_dir() || kind.is_contiguous()) {
            return Err(format!(
                "the source archive's `{shown}` is not a file, a directory or a link within the tree"
            ));
        }
        total = total.saturating_add(entry.header().size().map_err(bad)?);
        if total > bounds.bytes {
            return Err(format!(
                "the source unpacks to more than {}",
                wisp_spec::units::format_size(bounds.bytes)
            ));
        }
        let placed = entry
            .unpack_in(into)
            .map_err(|e| format!("unpacking `{shown}` failed: {e}"))?;
        if !placed {
            return Err(format!(
                "the source archive's `{shown}` would land outside the tree"
            ));
        }
    }
    if count == 0 {
        return Err("the source archive is empty".into());
    }
    Ok(())
}

/// A relative path of plain names (and `.`), none of them `..`.
fn is_plain_relative(path: &Path) -> bool {
    path.components().next().is_some()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Whether a link at `link` (relative to the tree) to `target` resolves,
/// by its names alone, inside the tree.
fn stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut at: Vec<PathBuf> = link
        .parent()
        .into_iter()
        .flat_map(|p| p.components())
        .filter(|c| matches!(c, Component::Normal(_)))
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    for component in target.components() {
        match component {
            Component::Normal(name) => at.push(PathBuf::from(name)),
            Component::CurDir => {}
            Component::ParentDir => {
                if at.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds {
        bytes: 1 << 20,
        entries: 100,
    };

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        builder.into_inner().unwrap()
    }

    fn file(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, data).unwrap();
    }

    #[test]
    fn files_and_inner_links_unpack_gzipped_or_not() {
        let plain = archive(|b| {
            file(b, "src/main.c", b"int main(){}");
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            b.append_link(&mut header, "src/link.c", "main.c").unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        unpack(&plain, dir.path(), BOUNDS).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("src/link.c")).unwrap(),
            b"int main(){}"
        );

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &plain).unwrap();
        let dir = tempfile::tempdir().unwrap();
        unpack(&gz.finish().unwrap(), dir.path(), BOUNDS).unwrap();
        assert!(dir.path().join("src/main.c").is_file());
    }

    #[test]
    fn escaping_links_devices_and_bombs_are_refused() {
        let link = archive(|b| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            b.append_link(&mut header, "a/shadow", "../../etc/shadow")
                .unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let error = unpack(&link, dir.path(), BOUNDS).unwrap_err();
        assert!(error.contains("points outside the tree"), "{error}");

        let fifo = archive(|b| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Fifo);
            header.set_size(0);
            b.append_data(&mut header, "pipe", &[][..]).unwrap();
        });
        let error = unpack(&fifo, tempfile::tempdir().unwrap().path(), BOUNDS).unwrap_err();
        assert!(error.contains("not a file, a directory"), "{error}");

        let big = archive(|b| file(b, "zeros", &vec![0; 2 << 20]));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &big).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 16 << 10, "a small upload: {}", bomb.len());
        let error = unpack(&bomb, tempfile::tempdir().unwrap().path(), BOUNDS).unwrap_err();
        assert!(error.contains("unpacks to more than"), "{error}");
    }

    #[test]
    fn links_are_judged_by_where_they_resolve() {
        assert!(stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(!stays_inside(Path::new("a/b"), Path::new("../../c")));
        assert!(!stays_inside(Path::new("b"), Path::new("/etc/passwd")));
        assert!(is_plain_relative(Path::new("./a/b")));
        assert!(!is_plain_relative(Path::new("a/../../b")));
    }
}
