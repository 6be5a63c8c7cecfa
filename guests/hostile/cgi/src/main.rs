//! `hostile-cgi`: a CGI module written to break its host. `PATH_INFO` picks
//! the attack:
//!
//! | path | does |
//! | --- | --- |
//! | `/malformed` | writes output that is not a CGI response |
//! | `/exit` | exits with status 3 |
//! | `/loop` | spins forever |
//! | `/big?kib=N` | writes a valid response with an N KiB body |
//! | `/stderr?kib=N` | writes N KiB to stderr, then a valid response |
//! | `/env` | prints every environment variable it sees |
//! | `/status?code=N` | answers `Status: N Whatever` (N as given, e.g. `101` or `600`) |
//! | `/headers` | prints each `HTTP_*` variable as `KEY=VALUE`, sorted |

use std::hint::black_box;
use std::io::Write;

fn main() {
    let path = std::env::var("PATH_INFO").unwrap_or_default();
    let query = std::env::var("QUERY_STRING").unwrap_or_default();
    let kib: usize = query
        .split('&')
        .find_map(|p| p.strip_prefix("kib="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let code = query
        .split('&')
        .find_map(|p| p.strip_prefix("code="))
        .unwrap_or("200");
    let mut out = std::io::stdout().lock();
    match path.as_str() {
        "/malformed" => {
            let _ = write!(out, "this is not a CGI response at all");
        }
        "/exit" => std::process::exit(3),
        "/loop" => {
            let mut n: u64 = 0;
            loop {
                n = black_box(n.wrapping_add(1));
            }
        }
        "/big" => {
            let _ = write!(out, "Content-Type: text/plain\n\n");
            let block = vec![b'y'; 1024];
            for _ in 0..kib {
                if out.write_all(&block).is_err() {
                    std::process::exit(1);
                }
            }
        }
        "/stderr" => {
            let line = "e".repeat(1023);
            for _ in 0..kib {
                eprintln!("{line}");
            }
            let _ = write!(
                out,
                "Content-Type: text/plain\n\nwrote {kib} KiB to stderr\n"
            );
        }
        "/env" => {
            let _ = write!(out, "Content-Type: text/plain\n\n");
            for (key, value) in std::env::vars() {
                let _ = writeln!(out, "{key}={value}");
            }
        }
        "/status" => {
            let _ = write!(
                out,
                "Status: {code} Whatever\nContent-Type: text/plain\n\nstatus {code}\n"
            );
        }
        "/headers" => {
            let _ = write!(out, "Content-Type: text/plain\n\n");
            // `vars_os`: `vars` would panic on a variable that is not UTF-8.
            let mut headers: Vec<(String, String)> = std::env::vars_os()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .filter(|(k, _)| k.starts_with("HTTP_"))
                .collect();
            headers.sort();
            for (key, value) in headers {
                let _ = writeln!(out, "{key}={value}");
            }
        }
        other => {
            let _ = write!(
                out,
                "Status: 404 Not Found\nContent-Type: text/plain\n\nno attack `{other}`\n"
            );
        }
    }
}
