//! A source tree packed for building on the host (`wisp deploy NAME
//! --source DIR`): a gzipped tar archive of the directory, without `.git/`
//! and `target/` (a git repository's history and cargo's output belong to
//! this machine, not to the build). Links are kept as links; anything but
//! files, directories and links is left out.

use anyhow::{Context, bail};
use bytes::Bytes;
use std::path::Path;

/// Directories at any depth that are never sent.
const LEFT_OUT: &[&str] = &[".git", "target"];

/// Packs `dir` into a gzipped tar archive.
pub(crate) fn archive(dir: &Path) -> anyhow::Result<Bytes> {
    if !dir.is_dir() {
        bail!("`{}` is not a directory", dir.display());
    }
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    add(&mut tar, dir, Path::new("")).with_context(|| format!("packing `{}`", dir.display()))?;
    let encoder = tar.into_inner().context("packing the source tree")?;
    Ok(Bytes::from(
        encoder.finish().context("packing the source tree")?,
    ))
}

fn add(
    tar: &mut tar::Builder<flate2::write::GzEncoder<Vec<u8>>>,
    dir: &Path,
    inside: &Path,
) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir.join(inside))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let relative = inside.join(&name);
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if LEFT_OUT.iter().any(|skip| name == *skip) {
                continue;
            }
            tar.append_dir(&relative, entry.path())?;
            add(tar, dir, &relative)?;
        } else if kind.is_file() || kind.is_symlink() {
            tar.append_path_with_name(entry.path(), &relative)?;
        }
    }
    Ok(())
}
