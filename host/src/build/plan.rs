//! How a source tree is built: the command, where the `.wasm` appears, and
//! the route and settings the tree itself asks for. A `wisp.toml` at the
//! top of the tree decides (its function of the same name, or its only
//! one: `build`, `wasm`, `route` and settings); otherwise the language is
//! told from the tree:
//!
//! | the tree has | builder | command | output |
//! | --- | --- | --- | --- |
//! | `Cargo.toml` | rust | `cargo build --release --target wasm32-wasip2` (`--locked` with a `Cargo.lock`; the target from `.cargo/config.toml` if it names one) | the package's binary or library in the cache's target dir |
//! | `*.c` at the top | c | `clang --target=wasm32-wasi -O2 -o NAME.wasm *.c` | `NAME.wasm` |
//! | `*.py` or `package.json`, and `build.sh` | python, javascript | `sh build.sh` (JavaScript: `npm ci` first when `node_modules` is missing) | the one `.wasm` at the top of the tree |

use super::toolchains::{Builder, Language};
use std::path::{Path, PathBuf};
use wisp_spec::manifest::{DEFAULT_MANIFEST, Manifest};
use wisp_spec::settings::RawSettings;

/// Where a build leaves its `.wasm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    /// This path, relative to the source tree.
    InTree(PathBuf),
    /// This path, relative to the function's build cache.
    InCache(PathBuf),
    /// The one `.wasm` file at the top of the tree that the build made or
    /// changed.
    NewAtTop,
}

/// What a tree asks to be built with, and deployed as.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The builder (a `wisp.toml` command still names the tree's language,
    /// when it can be told, for the toolchain it needs).
    pub language: Option<Language>,
    /// The shell command.
    pub command: String,
    /// Where the `.wasm` appears.
    pub output: Output,
    /// The route the tree's `wisp.toml` gives.
    pub route: Option<String>,
    /// The settings the tree's `wisp.toml` gives.
    pub settings: RawSettings,
}

/// The plan for the tree at `tree` (a host path), built as function `name`
/// by one of `builders`. Errors say what is missing, for the user.
pub(crate) fn plan(tree: &Path, name: &str, builders: &[Builder]) -> Result<Plan, String> {
    let language = detect(tree);
    if let Some(text) = read_in(tree, DEFAULT_MANIFEST) {
        return from_manifest(tree, &text?, name, language);
    }
    let Some(language) = language else {
        return Err(format!(
            "cannot tell how to build this tree: it has no {DEFAULT_MANIFEST}, Cargo.toml, *.c, *.py or package.json at its top. Add a {DEFAULT_MANIFEST} naming the command and its output:\n\n  version = 1\n  [functions.{name}]\n  route = \"/{name}\"\n  build = \"make\"\n  wasm = \"out/{name}.wasm\""
        ));
    };
    available(language, builders)?;
    let (command, output) = match language {
        Language::Rust => rust(tree, builders)?,
        Language::C => (
            format!("clang --target=wasm32-wasi --sysroot=/usr -O2 -Wall -o {name}.wasm *.c"),
            Output::InTree(PathBuf::from(format!("{name}.wasm"))),
        ),
        Language::Python | Language::JavaScript => {
            if !is_file_in(tree, "build.sh") {
                return Err(format!(
                    "a {} tree needs a build.sh (as `wisp new` writes) or a {DEFAULT_MANIFEST} with `build` and `wasm`",
                    language.name()
                ));
            }
            let npm = language == Language::JavaScript
                && !std::fs::symlink_metadata(tree.join("node_modules")).is_ok_and(|m| m.is_dir())
                && is_file_in(tree, "package-lock.json");
            // Its own shell, as its first line names it (the templates'
            // are bash scripts).
            let shell = match read_in(tree, "build.sh") {
                Some(Ok(text)) if text.lines().next().is_some_and(|l| l.contains("bash")) => "bash",
                _ => "sh",
            };
            let command = if npm {
                format!("npm ci --no-audit --no-fund --loglevel=error && {shell} build.sh")
            } else {
                format!("{shell} build.sh")
            };
            (command, Output::NewAtTop)
        }
    };
    Ok(Plan {
        language: Some(language),
        command,
        output,
        route: None,
        settings: RawSettings::default(),
    })
}

/// The language a tree is written in, from the files at its top.
fn detect(tree: &Path) -> Option<Language> {
    if is_file_in(tree, "Cargo.toml") {
        return Some(Language::Rust);
    }
    let has = |extension: &str| {
        std::fs::read_dir(tree).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                e.path().extension().is_some_and(|x| x == extension)
                    && e.file_type().is_ok_and(|t| t.is_file())
            })
        })
    };
    if has("c") {
        Some(Language::C)
    } else if has("py") {
        Some(Language::Python)
    } else if is_file_in(tree, "package.json") {
        Some(Language::JavaScript)
    } else {
        None
    }
}

/// Refuses a language this host has no toolchain for.
fn available(language: Language, builders: &[Builder]) -> Result<(), String> {
    match builders.iter().find(|b| b.language == language) {
        Some(builder) if builder.available => Ok(()),
        Some(builder) => Err(format!(
            "this host cannot build {}: {}",
            language.name(),
            builder.detail
        )),
        None => Err(format!("this host cannot build {}", language.name())),
    }
}

fn from_manifest(
    tree: &Path,
    text: &str,
    name: &str,
    language: Option<Language>,
) -> Result<Plan, String> {
    let manifest = Manifest::parse(&tree.join(DEFAULT_MANIFEST), text).map_err(|e| {
        // Name the file as the user knows it, not by the host's path.
        let mut e = e;
        e.path = PathBuf::from(DEFAULT_MANIFEST);
        e.to_string()
    })?;
    let function = match manifest.functions.iter().find(|f| f.name == name) {
        Some(function) => function,
        None if manifest.functions.len() == 1 => &manifest.functions[0],
        None => {
            let names: Vec<&str> = manifest.functions.iter().map(|f| f.name.as_str()).collect();
            return Err(format!(
                "{DEFAULT_MANIFEST} has no function `{name}` (it has: {})",
                names.join(", ")
            ));
        }
    };
    if !function.settings.get("dir").is_empty() {
        return Err(format!(
            "{DEFAULT_MANIFEST}: a pushed tree cannot grant host directories (`dir`); set them with `wisp deploy {name} --dir …`"
        ));
    }
    let Some(command) = function.build.clone() else {
        return Err(format!(
            "{DEFAULT_MANIFEST}: function `{}` has no `build` command to build it with",
            function.name
        ));
    };
    let base = std::fs::canonicalize(tree).unwrap_or_else(|_| tree.to_owned());
    let output = function
        .wasm
        .strip_prefix(&base)
        .ok()
        .filter(|relative| {
            relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        })
        .ok_or_else(|| {
            format!("{DEFAULT_MANIFEST}: `wasm` must be a path inside the tree, without `..`")
        })?;
    Ok(Plan {
        language,
        command,
        output: Output::InTree(output.to_owned()),
        route: Some(function.route.clone()),
        settings: function.settings.clone(),
    })
}

/// Cargo's command and output for the package at the top of `tree`.
fn rust(tree: &Path, builders: &[Builder]) -> Result<(String, Output), String> {
    let text =
        read_in(tree, "Cargo.toml").unwrap_or_else(|| Err("Cargo.toml is missing".into()))?;
    let cargo: toml::Table =
        toml::from_str(&text).map_err(|e| format!("Cargo.toml is not valid TOML: {e}"))?;
    let Some(package) = cargo
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
    else {
        return Err(
            "Cargo.toml has no [package] name (a workspace needs a wisp.toml naming its build)"
                .into(),
        );
    };
    let configured = configured_target(tree);
    let target = match &configured {
        Some(target) => target.clone(),
        None => {
            let has_p2 = builders
                .iter()
                .any(|b| b.language == Language::Rust && b.detail.contains("wasm32-wasip2"));
            if has_p2 {
                "wasm32-wasip2"
            } else {
                "wasm32-wasip1"
            }
            .to_owned()
        }
    };
    let is_library = cargo.get("lib").is_some() || !is_file_in(tree, "src/main.rs");
    let file = if is_library {
        format!("{}.wasm", package.replace('-', "_"))
    } else {
        format!("{package}.wasm")
    };
    let mut command = String::from("cargo build --release");
    if configured.is_none() {
        command.push_str(&format!(" --target {target}"));
    }
    if is_file_in(tree, "Cargo.lock") {
        command.push_str(" --locked");
    }
    Ok((
        command,
        Output::InCache(Path::new("target").join(target).join("release").join(file)),
    ))
}

/// The `[build] target` of the tree's `.cargo/config.toml`, if it sets one.
fn configured_target(tree: &Path) -> Option<String> {
    let text = read_in(tree, ".cargo/config.toml").or_else(|| read_in(tree, ".cargo/config"))?;
    let config: toml::Table = toml::from_str(&text.ok()?).ok()?;
    config
        .get("build")?
        .get("target")?
        .as_str()
        .map(str::to_owned)
}

/// Largest file of the tree the host reads to plan a build.
const MAX_READ: u64 = 1 << 20;

/// `relative` beneath `base`, opened for reading without following any
/// link (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`): a tree
/// and a build's output are the user's, and a link could name a host file.
pub(super) fn open_beneath(base: &Path, relative: &Path) -> rustix::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let dir = rustix::fs::open(base, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let file = rustix::fs::openat2(
        &dir,
        relative,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?;
    Ok(std::fs::File::from(file))
}

/// The regular file `relative` beneath `tree` (see [`open_beneath`]).
fn open_in(tree: &Path, relative: &str) -> Option<std::fs::File> {
    let file = open_beneath(tree, Path::new(relative)).ok()?;
    file.metadata().ok()?.is_file().then_some(file)
}

fn is_file_in(tree: &Path, relative: &str) -> bool {
    open_in(tree, relative).is_some()
}

/// The text of `relative` beneath `tree` (`None`: no such regular file).
fn read_in(tree: &Path, relative: &str) -> Option<Result<String, String>> {
    use std::io::Read;
    let file = open_in(tree, relative)?;
    let mut text = String::new();
    Some(match file.take(MAX_READ + 1).read_to_string(&mut text) {
        Ok(n) if n as u64 > MAX_READ => Err(format!("{relative} is larger than 1 MiB")),
        Ok(_) => Ok(text),
        Err(e) => Err(format!("reading {relative} failed: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builders() -> Vec<Builder> {
        super::super::toolchains::test_builders()
    }

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn a_cargo_package_builds_for_wasip2_and_keeps_its_lockfile() {
        let dir = tree(&[
            (
                "Cargo.toml",
                "[package]\nname = \"my-fn\"\nversion = \"0.1.0\"\n",
            ),
            ("Cargo.lock", ""),
            ("src/main.rs", "fn main() {}"),
        ]);
        let plan = plan(dir.path(), "hello", &builders()).unwrap();
        assert_eq!(plan.language, Some(Language::Rust));
        assert_eq!(
            plan.command,
            "cargo build --release --target wasm32-wasip2 --locked"
        );
        assert_eq!(
            plan.output,
            Output::InCache("target/wasm32-wasip2/release/my-fn.wasm".into())
        );
    }

    #[test]
    fn a_cargo_config_target_and_a_library_are_followed() {
        let dir = tree(&[
            (
                "Cargo.toml",
                "[package]\nname = \"my-fn\"\n[lib]\ncrate-type = [\"cdylib\"]\n",
            ),
            (
                ".cargo/config.toml",
                "[build]\ntarget = \"wasm32-wasip1\"\n",
            ),
            ("src/lib.rs", ""),
        ]);
        let plan = plan(dir.path(), "hello", &builders()).unwrap();
        assert_eq!(plan.command, "cargo build --release");
        assert_eq!(
            plan.output,
            Output::InCache("target/wasm32-wasip1/release/my_fn.wasm".into())
        );
    }

    #[test]
    fn c_sources_are_compiled_into_the_functions_name() {
        let dir = tree(&[("main.c", "int main(){}")]);
        let plan = plan(dir.path(), "hello", &builders()).unwrap();
        assert_eq!(plan.language, Some(Language::C));
        assert_eq!(plan.output, Output::InTree("hello.wasm".into()));
        assert!(plan.command.starts_with("clang --target=wasm32-wasi"));
    }

    #[test]
    fn a_manifest_decides_and_may_not_grant_host_directories() {
        let dir = tree(&[(
            "wisp.toml",
            "version = 1\n[functions.other]\nroute = \"/o\"\nbuild = \"make\"\nwasm = \"out/o.wasm\"\ntimeout = \"2s\"\n",
        )]);
        let planned = plan(dir.path(), "hello", &builders()).unwrap();
        assert_eq!(planned.command, "make");
        assert_eq!(planned.output, Output::InTree("out/o.wasm".into()));
        assert_eq!(planned.route.as_deref(), Some("/o"));
        assert_eq!(planned.settings.get("timeout"), ["2s"]);

        let granting = tree(&[(
            "wisp.toml",
            "version = 1\n[functions.hello]\nroute = \"/h\"\nbuild = \"make\"\nwasm = \"h.wasm\"\ndir = [\"/:/host\"]\n",
        )]);
        let error = plan(granting.path(), "hello", &builders()).unwrap_err();
        assert!(error.contains("cannot grant host directories"), "{error}");

        let escaping = tree(&[(
            "wisp.toml",
            "version = 1\n[functions.hello]\nroute = \"/h\"\nbuild = \"make\"\nwasm = \"../h.wasm\"\n",
        )]);
        let error = plan(escaping.path(), "hello", &builders()).unwrap_err();
        assert!(error.contains("inside the tree"), "{error}");
    }

    #[test]
    fn an_unknown_tree_or_a_missing_toolchain_is_refused_with_the_reason() {
        let empty = tree(&[("README.md", "hi")]);
        let error = plan(empty.path(), "hello", &builders()).unwrap_err();
        assert!(error.contains("cannot tell how to build"), "{error}");

        let python = tree(&[("app.py", "")]);
        let mut without = builders();
        without.retain(|b| b.language != Language::Python);
        let error = plan(python.path(), "hello", &without).unwrap_err();
        assert!(error.contains("cannot build python"), "{error}");
        let error = plan(python.path(), "hello", &builders()).unwrap_err();
        assert!(error.contains("needs a build.sh"), "{error}");
    }
}
