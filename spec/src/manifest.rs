//! `wisp.toml`: one file describing an app's functions.
//!
//! A versioned schema (`version = 1`) with unknown fields refused. Each
//! `[functions.NAME]` table names its `.wasm` (relative to the manifest), an
//! optional `build` command that produces it, and every deploy setting. The
//! whole file is validated before anything is built or deployed, and an error
//! names the file, the line and the field.
//!
//! ```toml
//! version = 1
//!
//! [functions.hello]
//! wasm = "target/hello.wasm"
//! build = "cargo build --release"
//! route = "/hello"
//! memory = "64MiB"
//! env = { GREETING = "hi" }
//! ```

use crate::name::validate_name;
use crate::route::Route;
use crate::settings::RawSettings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The manifest schema version this wisp reads.
pub const MANIFEST_VERSION: u32 = 1;

/// The default manifest file name.
pub const DEFAULT_MANIFEST: &str = "wisp.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    version: u32,
    #[serde(default)]
    functions: BTreeMap<String, toml::Spanned<RawFunction>>,
}

/// A function's table: its own fields, and every deploy setting by the name
/// the settings table gives it (unknown names are refused there).
#[derive(Debug, Deserialize)]
struct RawFunction {
    wasm: String,
    build: Option<String>,
    #[serde(default)]
    watch: Vec<String>,
    route: String,
    #[serde(flatten)]
    settings: RawSettings,
}

/// A function as the manifest describes it, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestFunction {
    /// Its name.
    pub name: String,
    /// The `.wasm` to deploy (absolute).
    pub wasm: PathBuf,
    /// A shell command that produces `wasm`, run in the manifest's directory.
    pub build: Option<String>,
    /// Paths whose changes trigger a rebuild under `wisp up --watch`
    /// (absolute).
    pub watch: Vec<PathBuf>,
    /// Its route.
    pub route: String,
    /// Its settings (host directories made absolute).
    pub settings: RawSettings,
    /// Secrets to set before it is deployed (a `spin.toml`'s variables
    /// drawn from secret ones; a `wisp.toml` has none).
    pub secrets: BTreeMap<String, String>,
    /// Where `wasm` is fetched from when it is not there yet (a
    /// `spin.toml`'s `source = { url, digest }`); `wasm` then lies under
    /// the manifest's `.spin/wisp-downloads/`, named by the digest.
    pub download: Option<Download>,
    /// The line its table starts on.
    pub line: usize,
}

/// A component fetched by URL and pinned by its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// Where it is fetched from (`http://` or `https://`).
    pub url: String,
    /// Its SHA-256, 64 lowercase hex digits.
    pub sha256: String,
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it came from.
    pub path: PathBuf,
    /// Its directory, which relative paths are resolved against.
    pub dir: PathBuf,
    /// Its functions, by name.
    pub functions: Vec<ManifestFunction>,
}

/// A manifest error, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong, naming the field.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl Manifest {
    /// Reads and validates the manifest at `path`: a `wisp.toml`, or a
    /// Spin app's `spin.toml` (its variables' values from this process's
    /// `SPIN_VARIABLE_*` environment).
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            path: path.to_owned(),
            line: None,
            message: format!("cannot read the manifest: {e}"),
        })?;
        if crate::spin::manifest::is_spin_manifest(path, &text) {
            return crate::spin::manifest::parse(path, &text, &|name| std::env::var(name).ok());
        }
        Manifest::parse(path, &text)
    }

    /// Validates manifest `text`, as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let fail = |line: Option<usize>, message: String| ManifestError {
            path: path.to_owned(),
            line,
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_owned();
            // Settings are checked inside a flattened table, where toml knows
            // only the table's span: find the named setting's own line.
            let line = unknown_setting(&message)
                .and_then(|field| {
                    let start = e.span().map_or(0, |span| span.start);
                    find_line(text, start..text.len(), field)
                })
                .or_else(|| e.span().map(|span| line_of(text, span.start)));
            fail(line, message)
        })?;
        if raw.version != MANIFEST_VERSION {
            let line = find_line(text, 0..text.len(), "version");
            return Err(fail(
                line,
                format!(
                    "unsupported manifest `version = {}`: this wisp reads version {MANIFEST_VERSION}",
                    raw.version
                ),
            ));
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        let mut functions = Vec::new();
        let mut routes: BTreeMap<String, String> = BTreeMap::new();
        for (name, spanned) in raw.functions {
            let span = spanned.span();
            let table_line = line_of(text, span.start);
            let function = spanned.into_inner();
            let at = |field: &str| find_line(text, span.clone(), field).or(Some(table_line));
            validate_name(&name).map_err(|e| fail(Some(table_line), e))?;
            let mut settings = function.settings;
            let dirs = settings
                .get("dir")
                .iter()
                .map(|d| match d.rsplit_once(':') {
                    Some((host, guest)) => format!("{}:{guest}", dir.join(host).display()),
                    None => d.clone(),
                })
                .collect();
            settings
                .replace("dir", dirs)
                .map_err(|e| fail(Some(table_line), e.to_string()))?;
            settings
                .check()
                .map_err(|e| fail(at(&e.setting), format!("function `{name}`: {e}")))?;
            let route = Route::parse(&function.route).map_err(|e| {
                fail(
                    at("route"),
                    format!(
                        "function `{name}`: invalid `route` value `{}`: expected a path prefix such as `/hello` ({})",
                        function.route,
                        e.reason()
                    ),
                )
            })?;
            if let Some(other) = routes.insert(route.to_string(), name.clone()) {
                return Err(fail(
                    at("route"),
                    format!(
                        "function `{name}`: route `{route}` is also used by function `{other}`"
                    ),
                ));
            }
            functions.push(ManifestFunction {
                wasm: dir.join(&function.wasm),
                build: function.build,
                watch: function.watch.iter().map(|w| dir.join(w)).collect(),
                route: route.to_string(),
                settings,
                secrets: BTreeMap::new(),
                download: None,
                line: table_line,
                name,
            });
        }
        Ok(Manifest {
            path: path.to_owned(),
            dir,
            functions,
        })
    }
}

/// The name in an "unknown setting `NAME`" message.
fn unknown_setting(message: &str) -> Option<&str> {
    let rest = message.split("unknown setting `").nth(1)?;
    rest.split('`').next()
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line where `field = …` is set in the table that starts at
/// `span.start` (it ends where the next table header starts).
fn find_line(text: &str, span: std::ops::Range<usize>, field: &str) -> Option<usize> {
    let from = text.get(span.start..)?;
    let header_len = from.find('\n').map_or(from.len(), |n| n + 1);
    let end = from[header_len..]
        .find("\n[")
        .map_or(text.len(), |n| span.start + header_len + n + 1);
    let region = text.get(span.start..end)?;
    let mut offset = span.start;
    for line in region.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(field)
            && rest.trim_start().starts_with('=')
        {
            return Some(line_of(text, offset));
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(Path::new("/app/wisp.toml"), text)
    }

    #[test]
    fn a_good_manifest_resolves_paths_against_its_directory() {
        let m = parse(
            r#"
version = 1

[functions.hello]
wasm = "build/hello.wasm"
build = "make"
route = "/hello"
memory = "64MiB"
env = { GREETING = "hi" }
dir = ["static:/static"]
"#,
        )
        .unwrap();
        let f = &m.functions[0];
        assert_eq!(f.name, "hello");
        assert!(f.wasm.ends_with("build/hello.wasm"));
        assert_eq!(f.build.as_deref(), Some("make"));
        assert_eq!(f.line, 4);
        assert!(f.settings.get("dir")[0].ends_with("static:/static"));
        assert_eq!(f.route, "/hello");
        assert!(f.settings.check().is_ok());
    }

    #[test]
    fn unknown_fields_are_reported_with_their_line() {
        let err = parse(
            "version = 1\n[functions.a]\nwasm = \"a.wasm\"\nroute = \"/a\"\ncolour = \"blue\"\n",
        )
        .unwrap_err();
        assert_eq!(err.line, Some(5), "{err}");
        assert!(err.to_string().contains("colour"), "{err}");
        assert!(err.to_string().starts_with("/app/wisp.toml:5:"), "{err}");
    }

    #[test]
    fn bad_settings_name_the_function_field_and_line() {
        let err = parse(
            "version = 1\n\n[functions.a]\nwasm = \"a.wasm\"\nroute = \"/a\"\nmemory = \"lots\"\n",
        )
        .unwrap_err();
        assert_eq!(err.line, Some(6), "{err}");
        assert!(err.message.contains("function `a`"), "{err}");
        assert!(err.message.contains("`memory`"), "{err}");
    }

    #[test]
    fn version_must_be_known_and_routes_unique() {
        let err = parse("version = 2\n").unwrap_err();
        assert_eq!(err.line, Some(1));
        let dup = parse(
            "version = 1\n[functions.a]\nwasm = \"a\"\nroute = \"/x\"\n[functions.b]\nwasm = \"b\"\nroute = \"/x\"\n",
        )
        .unwrap_err();
        assert!(dup.message.contains("also used by function `a`"), "{dup}");
        assert_eq!(dup.line, Some(7));
    }

    #[test]
    fn missing_required_fields_are_named() {
        let err = parse("version = 1\n[functions.a]\nroute = \"/a\"\n").unwrap_err();
        assert!(err.message.contains("wasm"), "{err}");
        let err = parse("[functions.a]\nwasm = \"a\"\nroute = \"/a\"\n").unwrap_err();
        assert!(err.message.contains("version"), "{err}");
    }
}
