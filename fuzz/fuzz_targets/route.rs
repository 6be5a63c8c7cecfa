//! Route prefixes and Spin routes: never panic; a valid route is canonical
//! (parsing its text again gives it back); a route prefix matches itself,
//! and a Spin route that serves a path has a header for each of its
//! `:name` segments.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wisp_spec::route::Route;
use wisp_spec::spin::route::{SPIN_HEADERS, SpinRoute};

fuzz_target!(|input: (&str, &str)| {
    let (raw, path) = input;
    if let Ok(spin) = SpinRoute::parse(raw) {
        assert_eq!(SpinRoute::parse(&spin.to_string()).as_ref(), Ok(&spin));
        let params = spin.to_string().split('/').filter(|s| s.starts_with(':')).count();
        let headers = spin.headers("host", path, path, "client");
        if spin.serves(path) {
            assert_eq!(headers.len(), SPIN_HEADERS.len() + params);
        }
    }
    let Ok(route) = Route::parse(raw) else { return };
    assert_eq!(Route::parse(route.as_str()).as_ref(), Ok(&route));
    assert!(route.strip(route.as_str()).is_some());
    if let Some(rest) = route.strip(path) {
        assert!(path.ends_with(rest));
    }
});
