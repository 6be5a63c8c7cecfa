//! A `wisp.toml`, and the same text as a `spin.toml` (every variable set):
//! never panics; errors carry a line inside the file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use wisp_spec::manifest::Manifest;
use wisp_spec::spin::manifest as spin;

fuzz_target!(|text: &str| {
    let lines = text.lines().count().max(1) + 1;
    let wisp = Manifest::parse(Path::new("/app/wisp.toml"), text);
    let spin = spin::parse(Path::new("/app/spin.toml"), text, &|_| Some("value".to_owned()));
    for error in [wisp.err(), spin.err()].into_iter().flatten() {
        if let Some(line) = error.line {
            assert!(line >= 1 && line <= lines, "line {line} of {text:?}");
        }
    }
});
