//! `wisp new NAME --lang …`: scaffolds a buildable function from the
//! templates in the repo's `templates/`, embedded in the binary so an
//! installed `wisp` needs no checkout.
//!
//! A Rust function gets `wisp-sdk`'s sources beside it (so it builds without
//! this repository); JavaScript and Python functions get the WASI WIT their
//! toolchains generate bindings from. `{{name}}` in a template becomes the
//! function's name.

use std::fmt;
use std::path::{Path, PathBuf};

mod wit {
    include!(concat!(env!("OUT_DIR"), "/wit_files.rs"));
}

/// A template file: path inside the new directory, contents, executable.
type TemplateFile = (&'static str, &'static str, bool);

/// A language a function can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// Rust, with `wisp-sdk`, built for `wasm32-wasip2`.
    Rust,
    /// C, built with clang and wasi-libc, run CGI-style.
    C,
    /// JavaScript, built with componentize-js.
    Js,
    /// Python, built with componentize-py.
    Python,
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Language::Rust => "rust",
            Language::C => "c",
            Language::Js => "js",
            Language::Python => "python",
        })
    }
}

/// What a new function starts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// Hello, a JSON route and a key-value counter.
    Hello,
    /// A chat room over WebSockets, with server-sent events and long-polls
    /// on the same channel (Rust only).
    Chat,
}

/// The WASI version a Rust function targets (the other languages' toolchains
/// decide theirs: C builds a WASI 0.1 command module run CGI-style, and
/// componentize-js and componentize-py build WASI 0.2 components).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Wasi {
    /// WASI 0.2: a `wasi:http/proxy` component.
    #[value(name = "0.2")]
    V0_2,
    /// WASI 0.3: a `wasi:http/service` component (the default).
    #[value(name = "0.3")]
    V0_3,
}

impl fmt::Display for Wasi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Wasi::V0_2 => "WASI 0.2",
            Wasi::V0_3 => "WASI 0.3",
        })
    }
}

/// The WASI 0.2 edits of the Rust template (written for 0.3): the SDK
/// without its 0.3 flavour, and its 0.2 export.
const RUST_WASI_0_2: &[(&str, &str)] = &[
    (
        r#"wisp-sdk = { path = "wisp-sdk", features = ["wasi-0-3"] }"#,
        r#"wisp-sdk = { path = "wisp-sdk" }"#,
    ),
    ("wisp_sdk::v3::export!(", "wisp_sdk::export!("),
    (
        "wasi:http component, WASI 0.3)",
        "wasi:http component, WASI 0.2)",
    ),
];

macro_rules! file {
    ($path:literal, $source:literal) => {
        (
            $path,
            include_str!(concat!("../../templates/", $source)),
            false,
        )
    };
    ($path:literal, $source:literal, executable) => {
        (
            $path,
            include_str!(concat!("../../templates/", $source)),
            true,
        )
    };
}

const RUST: &[TemplateFile] = &[
    file!("Cargo.toml", "rust/Cargo.toml"),
    file!("Cargo.lock", "rust/Cargo.lock"),
    file!("src/main.rs", "rust/src/main.rs"),
    file!("build.sh", "rust/build.sh", executable),
    file!("README.md", "rust/README.md"),
    file!(".gitignore", "rust/.gitignore"),
];

/// The chat template's files, in place of the Rust template's own.
const CHAT: &[TemplateFile] = &[
    file!("src/main.rs", "chat/src/main.rs"),
    file!("README.md", "chat/README.md"),
];

/// `wisp-sdk`, made standalone (no workspace to inherit from).
const RUST_SDK: &[TemplateFile] = &[
    (
        "wisp-sdk/src/lib.rs",
        include_str!("../../sdk/src/lib.rs"),
        false,
    ),
    (
        "wisp-sdk/src/config.rs",
        include_str!("../../sdk/src/config.rs"),
        false,
    ),
    (
        "wisp-sdk/src/kv.rs",
        include_str!("../../sdk/src/kv.rs"),
        false,
    ),
    (
        "wisp-sdk/src/fetch.rs",
        include_str!("../../sdk/src/fetch.rs"),
        false,
    ),
    (
        "wisp-sdk/src/websocket.rs",
        include_str!("../../sdk/src/websocket.rs"),
        false,
    ),
    (
        "wisp-sdk/src/websocket_events.rs",
        include_str!("../../sdk/src/websocket_events.rs"),
        false,
    ),
    (
        "wisp-sdk/src/log.rs",
        include_str!("../../sdk/src/log.rs"),
        false,
    ),
    (
        "wisp-sdk/src/request.rs",
        include_str!("../../sdk/src/request.rs"),
        false,
    ),
    (
        "wisp-sdk/src/response.rs",
        include_str!("../../sdk/src/response.rs"),
        false,
    ),
    (
        "wisp-sdk/src/router.rs",
        include_str!("../../sdk/src/router.rs"),
        false,
    ),
    (
        "wisp-sdk/src/v3.rs",
        include_str!("../../sdk/src/v3.rs"),
        false,
    ),
];

/// The SDK's own manifest; its workspace-inherited fields are filled in by
/// [`standalone_sdk_manifest`].
const SDK_MANIFEST: &str = include_str!("../../sdk/Cargo.toml");

/// The SDK manifest, standalone: no workspace to inherit from.
fn standalone_sdk_manifest() -> String {
    SDK_MANIFEST
        // `rust-version.workspace` first: it contains `version.workspace`.
        .replace(
            "rust-version.workspace = true",
            &format!("rust-version = {:?}", env!("CARGO_PKG_RUST_VERSION")),
        )
        .replace(
            "version.workspace = true",
            &format!("version = {:?}", env!("CARGO_PKG_VERSION")),
        )
        .replace("edition.workspace = true", "edition = \"2024\"")
        .replace(
            "license.workspace = true",
            &format!("license = {:?}", env!("CARGO_PKG_LICENSE")),
        )
        .replace("[lints]\nworkspace = true\n", "")
}

const C: &[TemplateFile] = &[
    file!("main.c", "c/main.c"),
    file!("build.sh", "c/build.sh", executable),
    file!("README.md", "c/README.md"),
    file!(".gitignore", "c/.gitignore"),
];

const JS: &[TemplateFile] = &[
    file!("app.js", "js/app.js"),
    file!("package.json", "js/package.json"),
    file!("package-lock.json", "js/package-lock.json"),
    file!("build.sh", "js/build.sh", executable),
    file!("README.md", "js/README.md"),
    file!(".gitignore", "js/.gitignore"),
];

const PYTHON: &[TemplateFile] = &[
    file!("app.py", "python/app.py"),
    file!("build.sh", "python/build.sh", executable),
    file!("README.md", "python/README.md"),
    file!(".gitignore", "python/.gitignore"),
];

/// Why scaffolding failed.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    /// The name is not a valid function name.
    #[error("{0}")]
    InvalidName(String),
    /// The target directory exists.
    #[error("`{0}` already exists; choose another name or remove it")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("writing `{path}` failed: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Writes a new function `name` in `language` from `template` (a Rust one
/// targeting `wasi`) to `parent/name`; returns the directory. Nothing is left behind if a
/// write fails.
pub fn scaffold(
    name: &str,
    language: Language,
    template: Template,
    wasi: Wasi,
    parent: &Path,
) -> Result<PathBuf, NewError> {
    wisp_spec::name::validate_name(name).map_err(NewError::InvalidName)?;
    let dir = parent.join(name);
    if dir.exists() {
        return Err(NewError::Exists(dir));
    }
    let mut files: Vec<(String, String, bool)> = Vec::new();
    let templates: &[&[TemplateFile]] = match language {
        Language::Rust => &[RUST, RUST_SDK],
        Language::C => &[C],
        Language::Js => &[JS],
        Language::Python => &[PYTHON],
    };
    for set in templates {
        for (path, contents, executable) in *set {
            // The chat template's own file, where it has one.
            let contents = match template {
                Template::Chat => CHAT
                    .iter()
                    .find(|(chat_path, _, _)| chat_path == path)
                    .map_or(*contents, |(_, chat, _)| *chat),
                Template::Hello => *contents,
            };
            let mut contents = contents.replace("{{name}}", name);
            if language == Language::Rust && wasi == Wasi::V0_2 {
                for (from, to) in RUST_WASI_0_2 {
                    contents = contents.replace(from, to);
                }
            }
            files.push(((*path).to_owned(), contents, *executable));
        }
    }
    if language == Language::Rust {
        files.push((
            "wisp-sdk/Cargo.toml".to_owned(),
            standalone_sdk_manifest(),
            false,
        ));
        for (path, contents) in wit::PLATFORM_WIT_FILES {
            files.push((
                format!("wisp-sdk/wit/{path}"),
                (*contents).to_owned(),
                false,
            ));
        }
    }
    if matches!(language, Language::Js | Language::Python) {
        for (path, contents) in wit::WIT_FILES {
            files.push((format!("wit/{path}"), (*contents).to_owned(), false));
        }
        for (path, contents) in wit::PLATFORM_WIT_FILES {
            if path.starts_with("keyvalue-") {
                files.push((format!("wit/deps/{path}"), (*contents).to_owned(), false));
            }
        }
    }
    let written = write_all(&dir, &files);
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    written.map(|()| dir)
}

fn write_all(dir: &Path, files: &[(String, String, bool)]) -> Result<(), NewError> {
    use std::os::unix::fs::PermissionsExt;
    for (relative, contents, executable) in files {
        let path = dir.join(relative);
        let io = |source| NewError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, contents).map_err(io)?;
        if *executable {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_scaffolds_a_build_script_and_the_name() {
        let parent = tempfile::tempdir().unwrap();
        for language in [Language::Rust, Language::C, Language::Js, Language::Python] {
            let name = format!("fn-{language}");
            let dir =
                scaffold(&name, language, Template::Hello, Wasi::V0_3, parent.path()).unwrap();
            let build = std::fs::read_to_string(dir.join("build.sh")).unwrap();
            assert!(build.contains(&format!("{name}.wasm")), "{language}");
            assert!(!build.contains("{{name}}"));
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("build.sh"))
                .unwrap()
                .permissions()
                .mode();
            assert!(mode & 0o111 != 0, "{language}: build.sh is not executable");
        }
        assert!(
            parent
                .path()
                .join("fn-rust/wisp-sdk/src/router.rs")
                .exists()
        );
        let sdk =
            std::fs::read_to_string(parent.path().join("fn-rust/wisp-sdk/Cargo.toml")).unwrap();
        assert!(!sdk.contains("workspace = true"), "{sdk}");
        assert!(sdk.contains("rust-version = \"1.95.0\""), "{sdk}");
        assert!(parent.path().join("fn-js/wit/deps/http.wit").exists());
        assert!(parent.path().join("fn-python/wit/deps/http.wit").exists());
        for language in ["js", "python"] {
            let kv = format!("fn-{language}/wit/deps/keyvalue-0.2.0-draft/store.wit");
            assert!(parent.path().join(kv).exists(), "{language}");
        }
        for package in ["keyvalue-0.2.0-draft", "config-0.2.0-rc.1"] {
            let sdk_wit = format!("fn-rust/wisp-sdk/wit/{package}/world.wit");
            assert!(parent.path().join(sdk_wit).exists(), "{package}");
        }
        assert!(parent.path().join("fn-rust/wisp-sdk/src/kv.rs").exists());
    }

    #[test]
    fn the_rust_build_shows_cargos_progress() {
        // A first build compiles every dependency: a minute or two that
        // must not pass in silence.
        let parent = tempfile::tempdir().unwrap();
        let dir = scaffold(
            "loud",
            Language::Rust,
            Template::Hello,
            Wasi::V0_3,
            parent.path(),
        )
        .unwrap();
        let build = std::fs::read_to_string(dir.join("build.sh")).unwrap();
        let cargo = build
            .lines()
            .find(|l| l.starts_with("cargo build"))
            .expect("a cargo build line");
        assert!(
            !cargo.contains("--quiet") && !cargo.contains(" -q"),
            "{cargo}"
        );
        assert!(build.contains("echo \"building loud.wasm"), "{build}");
    }

    #[test]
    fn the_chat_template_is_a_rust_function_with_its_own_main_and_readme() {
        let parent = tempfile::tempdir().unwrap();
        let dir = scaffold(
            "room",
            Language::Rust,
            Template::Chat,
            Wasi::V0_3,
            parent.path(),
        )
        .unwrap();
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
        let main = read("src/main.rs");
        assert!(
            main.starts_with("//! room: a chat room over WebSockets"),
            "{main}"
        );
        assert!(main.contains("websocket::publish(ROOM"), "{main}");
        assert!(read("README.md").contains("--websocket on"));
        // The rest is the Rust template's, with the SDK's WebSocket module.
        assert!(read("Cargo.toml").contains("name = \"room\""));
        assert!(dir.join("wisp-sdk/src/websocket.rs").exists());
        assert!(dir.join("wisp-sdk/src/websocket_events.rs").exists());
    }

    #[test]
    fn a_rust_function_targets_wasi_0_3_unless_0_2_is_asked_for() {
        let parent = tempfile::tempdir().unwrap();
        let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
        let v3 = scaffold(
            "three",
            Language::Rust,
            Template::Hello,
            Wasi::V0_3,
            parent.path(),
        )
        .unwrap();
        assert!(read(&v3, "src/main.rs").contains("wisp_sdk::v3::export!(async handle);"));
        assert!(read(&v3, "Cargo.toml").contains(r#"features = ["wasi-0-3"]"#));
        assert!(v3.join("wisp-sdk/src/v3.rs").exists());
        assert!(v3.join("wisp-sdk/wit/http-0.3.0/deps/http.wit").exists());
        let v2 = scaffold(
            "two",
            Language::Rust,
            Template::Hello,
            Wasi::V0_2,
            parent.path(),
        )
        .unwrap();
        let main = read(&v2, "src/main.rs");
        assert!(
            main.contains("\nwisp_sdk::export!(async handle);"),
            "{main}"
        );
        assert!(main.contains("WASI 0.2"), "{main}");
        let manifest = read(&v2, "Cargo.toml");
        assert!(
            manifest.contains(r#"wisp-sdk = { path = "wisp-sdk" }"#),
            "{manifest}"
        );
    }

    #[test]
    fn existing_directories_and_bad_names_are_refused() {
        let parent = tempfile::tempdir().unwrap();
        scaffold(
            "taken",
            Language::C,
            Template::Hello,
            Wasi::V0_3,
            parent.path(),
        )
        .unwrap();
        assert!(matches!(
            scaffold(
                "taken",
                Language::C,
                Template::Hello,
                Wasi::V0_3,
                parent.path()
            ),
            Err(NewError::Exists(_))
        ));
        assert!(matches!(
            scaffold(
                "Bad Name",
                Language::C,
                Template::Hello,
                Wasi::V0_3,
                parent.path()
            ),
            Err(NewError::InvalidName(_))
        ));
    }
}
