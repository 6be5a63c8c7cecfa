//! Components a `spin.toml` names by URL (`source = { url, digest }`):
//! fetched once into the app's `.spin/wisp-downloads/`, named by digest,
//! and kept only when their SHA-256 is the one the manifest pins — so a
//! file there is always what some manifest pinned, and a bad download
//! leaves nothing behind.

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use wisp_spec::manifest::Download;

/// Largest component fetched: the host's default `--max-upload`.
const MAX_DOWNLOAD: u64 = 200 << 20;

/// Makes `path` hold the binary `download` pins: nothing to do when it
/// already does, else fetched, checked and written atomically.
pub async fn fetch(download: &Download, path: &Path) -> anyhow::Result<()> {
    if std::fs::read(path).is_ok_and(|bytes| sha256_hex(&bytes) == download.sha256) {
        return Ok(());
    }
    let url = &download.url;
    tracing::info!(url, "fetching a component");
    let mut response = reqwest::get(url.as_str())
        .await
        .with_context(|| format!("fetching {url}"))?;
    if !response.status().is_success() {
        bail!("fetching {url}: the server answered {}", response.status());
    }
    if response
        .content_length()
        .is_some_and(|length| length > MAX_DOWNLOAD)
    {
        bail!("fetching {url}: larger than {} MiB", MAX_DOWNLOAD >> 20);
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("fetching {url}"))?
    {
        if (bytes.len() + chunk.len()) as u64 > MAX_DOWNLOAD {
            bail!("fetching {url}: larger than {} MiB", MAX_DOWNLOAD >> 20);
        }
        bytes.extend_from_slice(&chunk);
    }
    let got = sha256_hex(&bytes);
    if got != download.sha256 {
        bail!(
            "fetching {url}: its digest is sha256:{got}, not the sha256:{} the manifest pins; nothing was kept",
            download.sha256
        );
    }
    write_atomically(path, &bytes).with_context(|| format!("saving {url} as {}", path.display()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(".download-{:016x}.part", fastrand::u64(..)));
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&temporary, path)) {
        Ok(()) => Ok(()),
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(error)
        }
    }
}
