//! Embeds the WASI 0.2 WIT that wisp's `wasmtime-wasi-http` implements, so
//! `wisp new --lang js|python` can write it into a new function (those
//! toolchains generate their bindings from WIT). The files are found through
//! `cargo metadata` and included by path: nothing is copied into the repo.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let mut code = String::new();
    push_files(
        &mut code,
        "/// WIT files, as `(path under wit/, contents)`.",
        "WIT_FILES",
        wit_files(),
    );
    push_files(
        &mut code,
        "/// The repo's platform WIT (`wit/`) the SDK and templates import, as\n/// `(DIR/FILE, contents)`.",
        "PLATFORM_WIT_FILES",
        platform_wit_files(),
    );
    std::fs::write(out.join("wit_files.rs"), code).expect("write wit_files.rs");
}

/// Appends a documented constant `name` listing `files` as
/// `(relative path, include_str!(path))`.
fn push_files(code: &mut String, doc: &str, name: &str, files: Vec<(String, PathBuf)>) {
    writeln!(code, "{doc}\npub const {name}: &[(&str, &str)] = &[").expect("write to a String");
    for (relative, path) in files {
        writeln!(
            code,
            "    ({relative:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .expect("write to a String");
    }
    code.push_str("];\n");
}

/// The packages of the repo's `wit/` that `wisp-sdk` and the JavaScript and
/// Python templates import.
fn platform_wit_files() -> Vec<(String, PathBuf)> {
    let wit =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo")).join("../wit");
    let mut files = Vec::new();
    for package in ["keyvalue-0.2.0-draft", "config-0.2.0-rc.1", "http-0.3.0"] {
        // A package's own files, and those of its `deps/` (WASI 0.3's).
        for dir in ["", "deps/"] {
            let Ok(read) = std::fs::read_dir(wit.join(package).join(dir)) else {
                continue;
            };
            let mut entries: Vec<PathBuf> = read
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "wit"))
                .collect();
            entries.sort();
            for path in entries {
                let name = path.file_name().expect("file name").to_string_lossy();
                println!("cargo:rerun-if-changed={}", path.display());
                files.push((format!("{package}/{dir}{name}"), path));
            }
        }
    }
    files
}

/// The `.wit` files under `wasmtime-wasi-http`'s `wit/` directory.
fn wit_files() -> Vec<(String, PathBuf)> {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = std::env::var("TARGET").expect("set by cargo");
    // Offline first (everything a build needs is downloaded by then); online
    // when a partial build (`-p wisp-host`) has not fetched every package.
    let run = |offline: bool| {
        let mut command = Command::new(&cargo);
        command
            .args([
                "metadata",
                "--format-version",
                "1",
                "--filter-platform",
                &target,
                "--manifest-path",
            ])
            .arg(&manifest)
            .env_remove("CARGO_TARGET_DIR");
        if offline {
            command.arg("--offline");
        }
        command.output().expect("run cargo metadata")
    };
    let mut output = run(true);
    if !output.status.success() {
        output = run(false);
    }
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("metadata json");
    let package = metadata["packages"]
        .as_array()
        .and_then(|packages| packages.iter().find(|p| p["name"] == "wasmtime-wasi-http"))
        .expect("wasmtime-wasi-http is a dependency");
    let dir = PathBuf::from(package["manifest_path"].as_str().expect("manifest_path"))
        .parent()
        .expect("package dir")
        .join("wit");
    let mut files = Vec::new();
    for sub in ["", "deps"] {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
            .expect("read the wit dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wit"))
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let relative = if sub.is_empty() {
                name
            } else {
                format!("{sub}/{name}")
            };
            println!("cargo:rerun-if-changed={}", path.display());
            files.push((relative, path));
        }
    }
    assert!(files.len() > 3, "no WIT found in {}", dir.display());
    files
}
