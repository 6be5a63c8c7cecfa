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
//! | `/drip?ms=N` | writes a head and 128 KiB (a full output window, so the body streams), then a `tick` line every N ms, forever |
//! | `/alloc` | allocates 1 MiB at a time, touching it, until memory runs out |
//! | `/read?path=P` | reads file P: `read: CONTENTS` or `error: WHY` |
//! | `/write?path=P` | writes to the existing file P: `wrote` or `error: WHY` |
//! | `/create?path=P` | creates the new file P: `created` or `error: WHY` |

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
    let ms: u64 = query
        .split('&')
        .find_map(|p| p.strip_prefix("ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let code = query
        .split('&')
        .find_map(|p| p.strip_prefix("code="))
        .unwrap_or("200");
    let file = query
        .split('&')
        .find_map(|p| p.strip_prefix("path="))
        .unwrap_or_default()
        .to_owned();
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
        "/drip" => {
            let _ = write!(out, "Content-Type: text/plain\n\n");
            let _ = out.write_all(&[b'p'; 128 << 10]);
            loop {
                let _ = out.flush();
                std::thread::sleep(std::time::Duration::from_millis(ms));
                if out.write_all(b"tick\n").is_err() {
                    std::process::exit(1);
                }
            }
        }
        "/alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut block = vec![0u8; 1 << 20];
                block[black_box(4096)] = 1;
                hoard.push(black_box(block));
            }
        }
        "/read" | "/write" | "/create" => {
            let outcome = file_operation(&path, &file);
            let _ = write!(out, "Content-Type: text/plain\n\n{outcome}\n");
        }
        other => {
            let _ = write!(
                out,
                "Status: 404 Not Found\nContent-Type: text/plain\n\nno attack `{other}`\n"
            );
        }
    }
}

/// Reads, writes or creates `file`, as `operation` says; the outcome as one
/// line.
fn file_operation(operation: &str, file: &str) -> String {
    use std::fs::OpenOptions;
    let outcome = match operation {
        "/read" => std::fs::read_to_string(file).map(|contents| format!("read: {contents}")),
        "/write" => OpenOptions::new()
            .write(true)
            .open(file)
            .and_then(|mut f| f.write_all(b"overwritten by the guest"))
            .map(|()| "wrote".to_owned()),
        _ => OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(file)
            .and_then(|mut f| f.write_all(b"created by the guest"))
            .map(|()| "created".to_owned()),
    };
    outcome.unwrap_or_else(|e| format!("error: {e}"))
}
