//! `kv-draft`: a key-value function on `wasi:keyvalue@0.2.0-draft` (store,
//! atomics, batch), the version `wasmtime serve -S keyvalue` and wasmCloud
//! serve, with bindings generated from the standard WIT in `wit/` — what any
//! guest built against wasmtime's own WIT imports, and nothing else.
//!
//! The query string says what to do (the path is never read: routes are
//! prefixes chosen at deploy). `bucket` (default `""`, the function's own)
//! and `key` (default `hello`) apply to every operation:
//!
//! | `op` | does | answers |
//! | --- | --- | --- |
//! | none (`GET`) | `get` | 200 the value's bytes, or 404 `missing` |
//! | `set` (`PUT`/`POST`) | `set` the key to the body | 200 `ok` |
//! | `delete` | `delete` | 200 `ok` |
//! | `exists` | `exists` | 200 `true` or `false` |
//! | `incr` | `atomics.increment` by `delta` (default 1) | 200 the new value |
//! | `list` | `list-keys`, following cursors | 200 the keys, one a line |
//! | `set-many` | `batch.set-many` of the body's `k=v` lines | 200 `ok` |
//! | `get-many` | `batch.get-many` of `keys=a,b` | 200 `k=v` or `k (missing)` lines |
//! | `delete-many` | `batch.delete-many` of `keys=a,b` | 200 `ok` |
//!
//! A `wasi:keyvalue` error answers 403 (`access-denied`), 404
//! (`no-such-store`) or 500 (`other`), with the body `error: <variant>`.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/keyvalue-0.2.0-draft",
        world: "imports",
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};
#[path = "../../query.rs"]
mod query;
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};

/// `list` stops after this many pages, so a host whose cursor never ends
/// cannot keep the function busy until its deadline.
const MAX_LIST_PAGES: usize = 10_000;

/// What an operation answers: a status and a body.
type Reply = (StatusCode, Vec<u8>);

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let query = query::Query::of(&request);
    let param = |name: &str| query.get(name);
    let op = param("op").unwrap_or("get");
    let body = if matches!(op, "set" | "set-many") {
        request.body_mut().contents().await?.to_vec()
    } else {
        Vec::new()
    };
    let (status, body) = match run(op, request.method(), &param, body) {
        Ok(reply) => reply,
        Err(Fault::Store(e)) => store_error(&e),
        Err(Fault::Request(why)) => (StatusCode::BAD_REQUEST, format!("{why}\n").into_bytes()),
    };
    Ok(Response::builder().status(status).body(body.into())?)
}

/// Why an operation did not answer normally.
enum Fault {
    /// The host's store said no.
    Store(store::Error),
    /// The request itself is wrong (unknown op, bad number, bad line).
    Request(String),
}

impl From<store::Error> for Fault {
    fn from(e: store::Error) -> Self {
        Fault::Store(e)
    }
}

fn run<'q>(
    op: &str,
    method: &Method,
    param: &dyn Fn(&str) -> Option<&'q str>,
    body: Vec<u8>,
) -> Result<Reply, Fault> {
    if matches!(op, "set" | "set-many") && !matches!(*method, Method::PUT | Method::POST) {
        return Err(Fault::Request(format!("`op={op}` takes PUT or POST")));
    }
    let bucket = store::open(param("bucket").unwrap_or(""))?;
    let key = param("key").unwrap_or("hello");
    let ok = || (StatusCode::OK, b"ok\n".to_vec());
    Ok(match op {
        "get" => match bucket.get(key)? {
            Some(value) => (StatusCode::OK, value),
            None => (StatusCode::NOT_FOUND, b"missing\n".to_vec()),
        },
        "set" => {
            bucket.set(key, &body)?;
            ok()
        }
        "set-many" => {
            batch::set_many(&bucket, &parse_lines(&body)?)?;
            ok()
        }
        "delete" => {
            bucket.delete(key)?;
            ok()
        }
        "exists" => (
            StatusCode::OK,
            format!("{}\n", bucket.exists(key)?).into_bytes(),
        ),
        "incr" => {
            let delta = match param("delta") {
                None => 1,
                Some(d) => d
                    .parse()
                    .map_err(|_| Fault::Request(format!("`delta={d}` is not a u64")))?,
            };
            let value = atomics::increment(&bucket, key, delta)?;
            (StatusCode::OK, format!("{value}\n").into_bytes())
        }
        "list" => {
            let mut keys = String::new();
            let mut cursor = None;
            for _ in 0..MAX_LIST_PAGES {
                let page = bucket.list_keys(cursor)?;
                for key in page.keys {
                    keys.push_str(&key);
                    keys.push('\n');
                }
                cursor = page.cursor;
                if cursor.is_none() {
                    break;
                }
            }
            (StatusCode::OK, keys.into_bytes())
        }
        "get-many" => {
            let keys = split_keys(param("keys"));
            let values = batch::get_many(&bucket, &keys)?;
            let mut lines = Vec::new();
            for (key, found) in keys.iter().zip(values) {
                match found {
                    Some((_, value)) => {
                        lines.extend_from_slice(format!("{key}=").as_bytes());
                        lines.extend_from_slice(&value);
                        lines.push(b'\n');
                    }
                    None => lines.extend_from_slice(format!("{key} (missing)\n").as_bytes()),
                }
            }
            (StatusCode::OK, lines)
        }
        "delete-many" => {
            batch::delete_many(&bucket, &split_keys(param("keys")))?;
            ok()
        }
        other => return Err(Fault::Request(format!("unknown `op={other}`"))),
    })
}

/// `k=v` lines (split at the first `=`); blank lines are skipped.
fn parse_lines(body: &[u8]) -> Result<Vec<(String, Vec<u8>)>, Fault> {
    body.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let at = line.iter().position(|b| *b == b'=').ok_or_else(|| {
                Fault::Request(format!(
                    "line `{}` is not `k=v`",
                    String::from_utf8_lossy(line)
                ))
            })?;
            let key = String::from_utf8(line[..at].to_vec())
                .map_err(|_| Fault::Request("a key is not UTF-8".to_owned()))?;
            Ok((key, line[at + 1..].to_vec()))
        })
        .collect()
}

/// `a,b,c` as keys; none when absent or empty.
fn split_keys(keys: Option<&str>) -> Vec<String> {
    keys.unwrap_or("")
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect()
}

fn store_error(e: &store::Error) -> Reply {
    let (status, text) = match e {
        store::Error::AccessDenied => (StatusCode::FORBIDDEN, "access-denied".to_owned()),
        store::Error::NoSuchStore => (StatusCode::NOT_FOUND, "no-such-store".to_owned()),
        store::Error::Other(message) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("other: {message}"),
        ),
    };
    (status, format!("error: {text}\n").into_bytes())
}
