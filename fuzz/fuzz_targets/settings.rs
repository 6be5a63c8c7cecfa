//! Deploy settings from a query string: never panics, and valid settings
//! survive the round trip through their canonical text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wisp_spec::settings::RawSettings;

fuzz_target!(|query: &str| {
    let Ok(raw) = RawSettings::from_query(query) else { return };
    let Ok(settings) = raw.check() else { return };
    let canonical = settings.to_raw();
    assert_eq!(canonical.check().as_ref(), Ok(&settings));
    let again = RawSettings::from_query(&canonical.to_query()).expect("canonical query parses");
    assert_eq!(again.check().as_ref(), Ok(&settings));
});
