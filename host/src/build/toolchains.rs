//! Which builders this host has, found once at start: each language's
//! toolchain, where it lives (the build jail lets a build read and execute
//! exactly those directories beside the system's), and, for one that is
//! missing, why.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A language the host can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// cargo, for `wasm32-wasip2` (or `wasm32-wasip1`).
    Rust,
    /// clang with wasi-libc.
    C,
    /// componentize-py.
    Python,
    /// componentize-js, from the project's own `node_modules`.
    #[serde(rename = "javascript")]
    JavaScript,
}

impl Language {
    /// Every language, in the order they are reported.
    pub const ALL: [Language; 4] = [
        Language::Rust,
        Language::C,
        Language::Python,
        Language::JavaScript,
    ];

    /// Its name in messages and in `wisp.toml`'s `builder`.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::C => "c",
            Language::Python => "python",
            Language::JavaScript => "javascript",
        }
    }
}

/// One builder as the host reports it (`/healthz`, `wisp ls`).
#[derive(Debug, Clone, Serialize)]
pub struct Builder {
    /// The language.
    pub language: Language,
    /// Whether this host can build it.
    pub available: bool,
    /// The toolchain's version, or why it is missing.
    pub detail: String,
    /// Directories the build reads and executes from (beyond the system's).
    #[serde(skip)]
    pub(crate) tools: Vec<PathBuf>,
    /// Directories put first on the build's `PATH`.
    #[serde(skip)]
    pub(crate) path: Vec<PathBuf>,
}

impl Builder {
    fn found(language: Language, detail: String, tools: Vec<PathBuf>) -> Builder {
        let path = tools.iter().map(|t| t.join("bin")).collect();
        Builder {
            language,
            available: true,
            detail,
            tools,
            path,
        }
    }

    fn missing(language: Language, why: impl Into<String>) -> Builder {
        Builder {
            language,
            available: false,
            detail: why.into(),
            tools: Vec::new(),
            path: Vec::new(),
        }
    }
}

/// Finds every builder (runs each toolchain's `--version`: blocking, ~0.1 s).
pub(crate) fn detect() -> Vec<Builder> {
    vec![rust(), c(), python(), javascript()]
}

/// The first line a command prints, if it runs and succeeds.
fn first_line(program: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Some(text.lines().next().unwrap_or("").trim().to_owned())
}

/// `program` on the host's `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn rust() -> Builder {
    let Some(rustc) = on_path("rustc") else {
        return Builder::missing(Language::Rust, "rustc is not on the host's PATH");
    };
    let Some(sysroot) = first_line(&rustc, &["--print", "sysroot"]).map(PathBuf::from) else {
        return Builder::missing(Language::Rust, "`rustc --print sysroot` failed");
    };
    if !sysroot.join("bin/cargo").is_file() {
        return Builder::missing(
            Language::Rust,
            format!("no cargo in the toolchain at {}", sysroot.display()),
        );
    }
    let targets: Vec<&str> = ["wasm32-wasip2", "wasm32-wasip1"]
        .into_iter()
        .filter(|t| sysroot.join("lib/rustlib").join(t).is_dir())
        .collect();
    if targets.is_empty() {
        return Builder::missing(
            Language::Rust,
            "the toolchain has no wasm32-wasip2 or wasm32-wasip1 target (`rustup target add wasm32-wasip2`)",
        );
    }
    let version = first_line(&sysroot.join("bin/rustc"), &["--version"]).unwrap_or_default();
    Builder::found(
        Language::Rust,
        format!("{version}; targets {}", targets.join(", ")),
        vec![sysroot],
    )
}

/// Where Debian's wasi-libc is.
const WASI_LIBC: &str = "/usr/lib/wasm32-wasi/libc.a";

fn c() -> Builder {
    let Some(clang) = on_path("clang") else {
        return Builder::missing(Language::C, "clang is not on the host's PATH");
    };
    if !Path::new(WASI_LIBC).is_file() {
        return Builder::missing(
            Language::C,
            "wasi-libc is missing (Debian: `apt-get install wasi-libc lld libclang-rt-dev-wasm32`)",
        );
    }
    let version = first_line(&clang, &["--version"]).unwrap_or_default();
    Builder::found(Language::C, version, Vec::new())
}

fn python() -> Builder {
    let Some(found) = on_path("componentize-py") else {
        return Builder::missing(
            Language::Python,
            "componentize-py is not on the host's PATH",
        );
    };
    // A pyenv shim runs pyenv itself; the build gets the real script and
    // its Python installation.
    let script = if found.parent().is_some_and(|d| d.ends_with("shims")) {
        let which = on_path("pyenv")
            .and_then(|pyenv| first_line(&pyenv, &["which", "componentize-py"]))
            .map(PathBuf::from);
        match which {
            Some(script) => script,
            None => {
                return Builder::missing(
                    Language::Python,
                    "componentize-py is a pyenv shim, and `pyenv which componentize-py` failed",
                );
            }
        }
    } else {
        std::fs::canonicalize(&found).unwrap_or(found)
    };
    let Some(install) = script
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
    else {
        return Builder::missing(
            Language::Python,
            "componentize-py has no installation directory",
        );
    };
    match first_line(&script, &["--version"]) {
        Some(version) => Builder::found(Language::Python, version, vec![install]),
        None => Builder::missing(Language::Python, "`componentize-py --version` failed"),
    }
}

fn javascript() -> Builder {
    let Some(node) = on_path("node") else {
        return Builder::missing(Language::JavaScript, "node is not on the host's PATH");
    };
    let node = std::fs::canonicalize(&node).unwrap_or(node);
    let Some(install) = node.parent().and_then(Path::parent).map(Path::to_path_buf) else {
        return Builder::missing(Language::JavaScript, "node has no installation directory");
    };
    match first_line(&node, &["--version"]) {
        Some(version) => {
            let tools = if install == Path::new("/usr") {
                Vec::new()
            } else {
                vec![install]
            };
            Builder::found(
                Language::JavaScript,
                format!("node {version} (componentize-js from the project's node_modules)"),
                tools,
            )
        }
        None => Builder::missing(Language::JavaScript, "`node --version` failed"),
    }
}

/// Every builder, available, as tests of plans need them.
#[cfg(test)]
pub(crate) fn test_builders() -> Vec<Builder> {
    Language::ALL
        .into_iter()
        .map(|language| {
            Builder::found(
                language,
                "test; targets wasm32-wasip2, wasm32-wasip1".into(),
                Vec::new(),
            )
        })
        .collect()
}
