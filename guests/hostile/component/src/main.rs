//! `hostile`: a wasi:http component written to break its host. Each path is
//! one attack; the host must end it with a clear status and keep serving.
//!
//! | path | does |
//! | --- | --- |
//! | `/loop` | spins forever (timeout, or fuel) |
//! | `/alloc` | allocates 1 MiB at a time, touching it, until memory runs out |
//! | `/recurse` | recurses until the wasm call stack overflows |
//! | `/stack-smash` | recurses with big frames until its shadow stack runs out of memory |
//! | `/panic` | panics |
//! | `/unreachable` | executes `unreachable` |
//! | `/sleep-forever` | waits in a WASI poll forever |
//! | `/huge-response` | streams an endless response body |
//! | `/exit` | exits the process with status 3 |
//! | `/env` | reports every environment variable it can see, as JSON |
//! | `/fs?path=P&write=P&create=P` | tries each operation in order: reads each `path`, writes to each existing `write` file, creates each `create` file; reports outcomes as JSON |
//! | `/socket?kind=tcp\|udp&addr=A` | connects to `A` over TCP, or sends a datagram to `A` over UDP, through `wasi:sockets`; reports the outcome as JSON |
//! | `/drip?ms=N` | streams `tick` lines, one every N ms, forever |
//! | `/declare?bytes=N` | answers N bytes with `Content-Length: N` |
//! | `/hold?mib=N` | allocates N MiB, touching every page, then answers |
//! | `/fetch?url=U` | makes an outbound GET to `U`, reports the outcome as JSON |
//! | `/stderr?kib=N` | writes N KiB to stderr, then answers |

use futures_lite::{StreamExt, stream};
use std::hint::black_box;
use wstd::http::body::Bytes;
use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let attack = path.rsplit('/').next().unwrap_or("").to_owned();
    match attack.as_str() {
        "loop" => spin(),
        "alloc" => allocate_forever(),
        "recurse" => Ok(text(format!("{}", recurse(black_box(1))))),
        "stack-smash" => Ok(text(format!("{}", smash(black_box(1))))),
        "panic" => panic!("hostile guest panicked on purpose"),
        "unreachable" => unreachable_instruction(),
        "sleep-forever" => {
            wstd::task::sleep(wstd::time::Duration::from_secs(1_000_000)).await;
            Ok(text("woke up".into()))
        }
        "huge-response" => {
            let chunk = Bytes::from(vec![b'x'; 64 << 10]);
            let endless = stream::repeat(chunk).map(Ok::<_, std::convert::Infallible>);
            Ok(Response::new(Body::from_try_stream(endless)))
        }
        "exit" => std::process::exit(3),
        "env" => {
            let vars: serde_json::Map<String, serde_json::Value> =
                std::env::vars().map(|(k, v)| (k, v.into())).collect();
            json(StatusCode::OK, serde_json::Value::Object(vars))
        }
        "fs" => {
            let outcomes: Vec<serde_json::Value> = operations(&query)
                .filter_map(|(op, p)| file_operation(op, &p))
                .collect();
            json(StatusCode::OK, outcomes.into())
        }
        "socket" => {
            let kind = params(&query, "kind").next().unwrap_or_default();
            let addr = params(&query, "addr").next().unwrap_or_default();
            json(StatusCode::OK, socket(&kind, &addr))
        }
        "drip" => {
            let ms = number(&query, "ms", 100);
            let ticks = stream::repeat_with(move || {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok::<_, std::convert::Infallible>(Bytes::from_static(b"tick\n"))
            });
            Ok(Response::new(Body::from_try_stream(ticks)))
        }
        "declare" => {
            let bytes = number(&query, "bytes", 1);
            let length = usize::try_from(bytes).unwrap_or(usize::MAX);
            Ok(Response::builder()
                .header("content-length", bytes)
                .body(vec![b'z'; length].into())?)
        }
        "hold" => {
            let mib = number(&query, "mib", 1);
            let mut held = vec![0u8; usize::try_from(mib).unwrap_or(0) << 20];
            for page in held.chunks_mut(4096) {
                page[0] = 1;
            }
            let touched = black_box(&held).iter().filter(|b| **b == 1).count();
            Ok(text(format!("held {mib} MiB ({touched} pages)")))
        }
        "fetch" => {
            let url = params(&query, "url").next().unwrap_or_default();
            json(StatusCode::OK, fetch(&url))
        }
        "stderr" => {
            let kib = number(&query, "kib", 1);
            let line = "x".repeat(1023);
            for _ in 0..kib {
                eprintln!("{line}");
            }
            Ok(text(format!("wrote {kib} KiB to stderr")))
        }
        other => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": format!("no attack `{other}`")}),
        ),
    }
}

/// One file operation (`path`: read, `write`: write to an existing file,
/// `create`: create a new file), reported as JSON; `None` for other names.
fn file_operation(op: &str, path: &str) -> Option<serde_json::Value> {
    use std::io::Write;
    let outcome = match op {
        "path" => std::fs::read_to_string(path).map(|contents| ("read", contents)),
        "write" => std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut file| file.write_all(b"overwritten by the guest"))
            .map(|()| ("wrote", String::new())),
        "create" => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut file| file.write_all(b"created by the guest"))
            .map(|()| ("created", String::new())),
        _ => return None,
    };
    let mut report = serde_json::json!({"op": op, "path": path});
    match outcome {
        Ok((done, contents)) => report[done] = contents.into(),
        Err(e) => report["error"] = e.to_string().into(),
    }
    Some(report)
}

/// A TCP connection or a UDP datagram to `addr` through `std::net`, which on
/// `wasm32-wasip2` is `wasi:sockets`. A success is reported, and is visible
/// to whoever listens on `addr`.
fn socket(kind: &str, addr: &str) -> serde_json::Value {
    use std::io::Write;
    let outcome = match kind {
        "tcp" => std::net::TcpStream::connect(addr)
            .and_then(|mut stream| stream.write_all(b"hello from the guest"))
            .map(|()| "connected"),
        "udp" => std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|socket| socket.send_to(b"hello from the guest", addr))
            .map(|_| "sent"),
        other => return serde_json::json!({"error": format!("no socket kind `{other}`")}),
    };
    match outcome {
        Ok(done) => serde_json::json!({"kind": kind, "addr": addr, "outcome": done}),
        Err(e) => serde_json::json!({
            "kind": kind,
            "addr": addr,
            "error": e.to_string(),
            "error_kind": format!("{:?}", e.kind()),
        }),
    }
}

/// An outbound GET through the raw `wasi:http/outgoing-handler`, so the
/// host's answer (e.g. `HttpRequestDenied`) is reported exactly.
fn fetch(url: &str) -> serde_json::Value {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
    let fail = |error: String| serde_json::json!({"url": url, "error": error});
    let Some((scheme, rest)) = url.split_once("://") else {
        return fail("not a URL".into());
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = OutgoingRequest::new(Fields::new());
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let path = if path.is_empty() { "/" } else { path };
    if request.set_scheme(Some(&scheme)).is_err()
        || request.set_authority(Some(authority)).is_err()
        || request.set_path_with_query(Some(path)).is_err()
    {
        return fail("invalid request".into());
    }
    let pending = match outgoing_handler::handle(request, None) {
        Ok(pending) => pending,
        Err(code) => return fail(format!("{code:?}")),
    };
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return fail(format!("{code:?}")),
        other => return fail(format!("no response: {other:?}")),
    };
    let status = response.status();
    let mut body = Vec::new();
    if let Ok(incoming) = response.consume()
        && let Ok(stream) = incoming.stream()
    {
        while let Ok(chunk) = stream.blocking_read(64 << 10) {
            body.extend_from_slice(&chunk);
        }
    }
    serde_json::json!({"url": url, "status": status, "body": String::from_utf8_lossy(&body)})
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn allocate_forever() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        block[black_box(4096)] = 1;
        hoard.push(black_box(block));
    }
}

/// Small frames: the wasm call stack overflows first.
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == 0 {
        return 0;
    }
    1 + black_box(recurse(black_box(depth + 1)))
}

/// Big frames on the shadow stack (in linear memory): it runs out first.
fn smash(depth: u64) -> u64 {
    let padding = black_box([depth; 512]);
    if black_box(depth) == 0 {
        return padding[0];
    }
    smash(depth + 1) + padding[511]
}

fn unreachable_instruction() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    unreachable!()
}

/// Values of `name` in a query string (percent-decoding `%2F` and `%3A`
/// is enough for paths and URLs in tests).
fn params<'a>(query: &'a str, name: &'a str) -> impl Iterator<Item = String> + 'a {
    query.split('&').filter_map(move |pair| {
        let value = pair.strip_prefix(name)?.strip_prefix('=')?;
        Some(
            value
                .replace("%2F", "/")
                .replace("%3A", ":")
                .replace("%2f", "/")
                .replace("%3a", ":"),
        )
    })
}

/// Every `name=value` pair of a query string, in order, decoded as [`params`] does.
fn operations(query: &str) -> impl Iterator<Item = (&str, String)> {
    query.split('&').filter_map(|pair| {
        let (name, _) = pair.split_once('=')?;
        Some((name, params(pair, name).next()?))
    })
}

/// The number `name` in a query string, or `default`.
fn number(query: &str, name: &str, default: u64) -> u64 {
    params(query, name)
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn text(body: String) -> Response<Body> {
    Response::new(body.into())
}

fn json(status: StatusCode, value: serde_json::Value) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(value.to_string().into())?)
}
