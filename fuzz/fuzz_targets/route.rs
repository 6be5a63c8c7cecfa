//! Route prefixes: never panic; a valid route is canonical (parsing it again
//! gives it back) and matches itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wisp_spec::route::Route;

fuzz_target!(|input: (&str, &str)| {
    let (raw, path) = input;
    let Ok(route) = Route::parse(raw) else { return };
    assert_eq!(Route::parse(route.as_str()).as_ref(), Ok(&route));
    assert!(route.strip(route.as_str()).is_some());
    if let Some(rest) = route.strip(path) {
        assert!(path.ends_with(rest));
    }
});
