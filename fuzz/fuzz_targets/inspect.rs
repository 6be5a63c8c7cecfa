//! The first look at an upload: never panics, whatever the bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wisp_spec::inspect::inspect;

fuzz_target!(|bytes: &[u8]| {
    let _ = inspect(bytes);
});
