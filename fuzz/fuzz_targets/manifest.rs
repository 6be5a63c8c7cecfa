//! A `wisp.toml`: never panics; errors carry a line inside the file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use wisp_spec::manifest::Manifest;

fuzz_target!(|text: &str| {
    if let Err(error) = Manifest::parse(Path::new("/app/wisp.toml"), text) {
        if let Some(line) = error.line {
            assert!(line >= 1 && line <= text.lines().count().max(1) + 1, "line {line} of {text:?}");
        }
    }
});
