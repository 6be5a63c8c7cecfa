//! `spin-sdk5`: a Spin component written with `spin-sdk` 5 (Spin's Rust
//! SDK before `wasi:http@0.3.0`), importing `fermyon:spin/key-value@2.0.0`
//! and `fermyon:spin/variables@2.0.0`. It answers by the last segment of
//! the path:
//!
//! | page | answers |
//! | --- | --- |
//! | `count` | a counter in the component's default store, one more each time |
//! | `keys` | the default store's keys, comma-separated |
//! | `stores` | whether the `sessions` and `other` stores open |
//! | `vars` | the `message` variable, and what asking for `missing` gives |
//! | `sql` | the request body run as one statement on the `default` SQLite database (`fermyon:spin/sqlite@2.0.0`): its columns and rows, or the error |
//! | `sql3` | the same through `spin:sqlite@3.0.0`, with what it changed |
//! | anything else | `no such page: PATH` |

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use spin_sdk::variables;

#[http_component]
fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    let path = request.path().to_owned();
    let page = path.rsplit('/').next().unwrap_or_default();
    let body = match page {
        "count" => {
            let store = Store::open_default()?;
            let count = match store.get("count")? {
                Some(bytes) => String::from_utf8(bytes)?.parse::<u64>()? + 1,
                None => 1,
            };
            store.set("count", count.to_string().as_bytes())?;
            format!("{count}\n")
        }
        "keys" => format!("{}\n", Store::open_default()?.get_keys()?.join(",")),
        "stores" => format!(
            "sessions: {:?}, other: {:?}\n",
            Store::open("sessions").map(|_| ()),
            Store::open("other").map(|_| ())
        ),
        "vars" => format!(
            "{} | {:?}\n",
            variables::get("message")?,
            variables::get("missing")
        ),
        "sql" => {
            let statement = std::str::from_utf8(request.body())?;
            let answer = spin_sdk::sqlite::Connection::open_default()
                .and_then(|db| db.execute(statement, &[]));
            match answer {
                Ok(result) => rows(&result.columns, result.rows.iter().map(|r| &r.values)),
                Err(error) => format!("error: {error:?}\n"),
            }
        }
        "sql3" => {
            let statement = std::str::from_utf8(request.body())?;
            let db = spin_sdk::sqlite3::Connection::open("default");
            match db.and_then(|db| Ok((db.execute(statement, &[])?, db))) {
                Ok((result, db)) => {
                    let text = rows(&result.columns, result.rows.iter().map(|r| &r.values));
                    let (changes, last) = (db.changes(), db.last_insert_rowid());
                    format!("{text}changes: {changes}, last insert: {last}\n")
                }
                Err(error) => format!("error: {error:?}\n"),
            }
        }
        _ => format!("no such page: {path}\n"),
    };
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(body)
        .build())
}

/// A statement's columns and rows, a line each.
fn rows<'a, V: std::fmt::Debug + 'a>(
    columns: &[String],
    rows: impl Iterator<Item = &'a Vec<V>>,
) -> String {
    let mut text = format!("columns: {}\n", columns.join(", "));
    for row in rows {
        let values: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
        text += &format!("{}\n", values.join(", "));
    }
    text
}
