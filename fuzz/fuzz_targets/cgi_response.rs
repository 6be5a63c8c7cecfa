//! A guest's stdout, parsed as a CGI response: never panics, and a parsed
//! head always points inside the output.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wisp_spec::cgi_response::parse;

fuzz_target!(|output: &[u8]| {
    if let Ok(head) = parse(output) {
        assert!(head.body_start <= output.len());
        assert!(!head.headers.contains_key("content-length"));
        assert!(!head.headers.contains_key("status"));
    }
});
