//! `kv-spin`: a key-value function as Spin 3 builds them: it imports
//! `wasi:keyvalue@0.2.0-draft2` (store, atomics) and
//! `wasi:config/store@0.2.0-draft-2024-09-27`, with bindings generated from
//! the standard WIT in `wit/`. It proves a Spin 3 function's imports link on
//! wisp and reach the same buckets and settings as the other versions.
//!
//! The query string says what to do (the path is never read). `bucket`
//! (default `""`, the function's own) and `key` (default `hello`):
//!
//! | `op` | does | answers |
//! | --- | --- | --- |
//! | none (`GET`) | `get` | 200 the value's bytes, or 404 `missing` |
//! | `set` (`PUT`/`POST`) | `set` the key to the body | 200 `ok` |
//! | `incr` | `atomics.increment` by `delta` (default 1, may be negative) | 200 the new value |
//! | `list` | `list-keys`, following cursors | 200 the keys, one a line |
//! | `cas` | `cas.new`, then `swap` to `value` | 200 `swapped` or 409 `cas-failed` |
//! | `config` | `wasi:config/store.get` of `key` | 200 the value, or 404 `missing` |
//!
//! A `wasi:keyvalue` error answers 403 (`access-denied`), 404
//! (`no-such-store`) or 500 (`other`), with the body `error: <variant>`; a
//! `wasi:config` error answers 500 `error: upstream: …` or `error: io: …`.

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package wisp-test:kv-spin;

            world spin3 {
                include wasi:keyvalue/imports@0.2.0-draft2;
                include wasi:config/imports@0.2.0-draft-2024-09-27;
            }
        ",
        path: [
            "../../wit/keyvalue-0.2.0-draft2",
            "../../wit/config-0.2.0-draft-2024-09-27",
        ],
        world: "spin3",
        generate_all,
    });
}

use bindings::wasi::config::store as config;
use bindings::wasi::keyvalue::{atomics, store};
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
    let body = if op == "set" {
        request.body_mut().contents().await?.to_vec()
    } else {
        Vec::new()
    };
    let (status, body) = match run(op, request.method(), &param, body) {
        Ok(reply) => reply,
        Err(Fault::Store(e)) => store_error(&e),
        Err(Fault::Config(e)) => config_error(&e),
        Err(Fault::Request(why)) => (StatusCode::BAD_REQUEST, format!("{why}\n").into_bytes()),
    };
    Ok(Response::builder().status(status).body(body.into())?)
}

/// Why an operation did not answer normally.
enum Fault {
    /// The host's key-value store said no.
    Store(store::Error),
    /// The host's config store said no.
    Config(config::Error),
    /// The request itself is wrong (unknown op, bad number).
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
    let key = param("key").unwrap_or("hello");
    match op {
        "set" if !matches!(*method, Method::PUT | Method::POST) => {
            return Err(Fault::Request("`op=set` takes PUT or POST".to_owned()));
        }
        "config" => {
            return Ok(match config::get(key).map_err(Fault::Config)? {
                Some(value) => (StatusCode::OK, value.into_bytes()),
                None => (StatusCode::NOT_FOUND, b"missing\n".to_vec()),
            });
        }
        _ => {}
    }
    let bucket = store::open(param("bucket").unwrap_or(""))?;
    Ok(match op {
        "get" => match bucket.get(key)? {
            Some(value) => (StatusCode::OK, value),
            None => (StatusCode::NOT_FOUND, b"missing\n".to_vec()),
        },
        "set" => {
            bucket.set(key, &body)?;
            (StatusCode::OK, b"ok\n".to_vec())
        }
        "incr" => {
            let delta = match param("delta") {
                None => 1,
                Some(d) => d
                    .parse()
                    .map_err(|_| Fault::Request(format!("`delta={d}` is not an s64")))?,
            };
            let value = atomics::increment(&bucket, key, delta)?;
            (StatusCode::OK, format!("{value}\n").into_bytes())
        }
        "list" => {
            let mut keys = String::new();
            let mut cursor = None;
            for _ in 0..MAX_LIST_PAGES {
                let page = bucket.list_keys(cursor.as_deref())?;
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
        "cas" => {
            let value = param("value").unwrap_or("");
            let cas = atomics::Cas::new(&bucket, key)?;
            match atomics::swap(cas, value.as_bytes()) {
                Ok(()) => (StatusCode::OK, b"swapped\n".to_vec()),
                Err(atomics::CasError::CasFailed(_)) => {
                    (StatusCode::CONFLICT, b"cas-failed\n".to_vec())
                }
                Err(atomics::CasError::StoreError(e)) => return Err(e.into()),
            }
        }
        other => return Err(Fault::Request(format!("unknown `op={other}`"))),
    })
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

fn config_error(e: &config::Error) -> Reply {
    let text = match e {
        config::Error::Upstream(message) => format!("upstream: {message}"),
        config::Error::Io(message) => format!("io: {message}"),
    };
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("error: {text}\n").into_bytes(),
    )
}
