//! A Spin component in Spin's own SDK. What it answers depends on the last
//! segment of its request's path:
//!
//! - `count`: adds one to `count` in its `default` key-value store;
//! - `stores`: opens the `sessions` store and one it was not granted;
//! - `keys`: every key of its `default` store;
//! - `vars`: its `message` and `api_key` variables, and one it lacks;
//! - `headers`: the `spin-*` request headers Spin sets (`spin-path-match-*`
//!   too);
//! - `env`: its `MODE` environment variable;
//! - `call`: what `http://NAME.spin.internal/headers` answers it, NAME
//!   from the query's `to=` (default `about`); a `to` that is a path
//!   calls the app itself, `http://self.alt/PATH`, and one that is a URL
//!   calls it (outbound HTTP);
//! - `sql`: runs the request body as one statement on the SQLite database
//!   the query's `db=` names (default `default`), and answers its columns,
//!   its rows, and what it changed — or the error;
//! - `unread`: runs the request body on its default database again and
//!   again, leaving each answer's rows unread, until an error.

use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{EmptyBody, IntoResponse, Request};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;
use spin_sdk::sqlite::Connection;

const SPIN_HEADERS: [&str; 7] = [
    "spin-full-url",
    "spin-path-info",
    "spin-matched-route",
    "spin-base-path",
    "spin-raw-component-route",
    "spin-component-route",
    "spin-client-addr",
];

#[http_service]
async fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let answer = match path.rsplit('/').next().unwrap_or("") {
        "count" => {
            let store = Store::open_default().await?;
            let count = match store.get("count").await? {
                Some(value) => String::from_utf8(value)?.parse::<u64>()? + 1,
                None => 1,
            };
            store.set("count", count.to_string()).await?;
            format!("{count}\n")
        }
        "stores" => {
            let sessions = Store::open("sessions").await.map(drop);
            let other = Store::open("other").await.map(drop);
            format!("sessions: {sessions:?}, other: {other:?}\n")
        }
        "keys" => {
            let store = Store::open_default().await?;
            let mut keys = store.get_keys().await.collect().await?;
            keys.sort();
            format!("{}\n", keys.join(","))
        }
        "vars" => {
            let message = spin_sdk::variables::get("message").await?;
            let api_key = spin_sdk::variables::get("api_key").await?;
            let missing = spin_sdk::variables::get("missing").await;
            format!("{message} | {api_key} | {missing:?}\n")
        }
        "headers" => {
            let mut lines: String = SPIN_HEADERS
                .iter()
                .map(|name| format!("{name}: {}\n", header(name)))
                .collect();
            for name in request.headers().keys() {
                if name.as_str().starts_with("spin-path-match-") {
                    lines += &format!("{name}: {}\n", header(name.as_str()));
                }
            }
            lines
        }
        "env" => format!("{}\n", std::env::var("MODE").unwrap_or_default()),
        "call" => {
            let to = request
                .uri()
                .query()
                .and_then(|query| query.strip_prefix("to="))
                .unwrap_or("about");
            let url = if to.starts_with('/') {
                format!("http://self.alt{to}")
            } else if to.starts_with("http://") {
                to.to_owned()
            } else {
                format!("http://{to}.spin.internal/headers")
            };
            let call = Request::get(url).body(EmptyBody::new())?;
            let response = spin_sdk::http::send(call).await?;
            let status = response.status();
            let body = response.into_body().bytes().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
            format!("{status}\n{}", String::from_utf8_lossy(&body))
        }
        "sql" => {
            let database = query.strip_prefix("db=").unwrap_or("default");
            let body = request.into_body().bytes().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let statement = String::from_utf8(body.to_vec())?;
            match sql(database, &statement).await {
                Ok(answer) => answer,
                Err(error) => format!("error: {error:?}\n"),
            }
        }
        "unread" => {
            // The request body run again and again, each answer's rows
            // left unread: how many ran before the first error, and it.
            let body = request.into_body().bytes().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let statement = String::from_utf8(body.to_vec())?;
            let db = Connection::open_default().await?;
            let mut unread = Vec::new();
            loop {
                match db.execute(&statement, []).await {
                    Ok(result) if unread.len() < 100 => unread.push(result),
                    Ok(_) => break "100 ran\n".to_owned(),
                    Err(error) => break format!("{} ran, then {error:?}\n", unread.len()),
                }
            }
        }
        _ => format!("no such page: {path}\n"),
    };
    Ok(answer)
}

/// Runs `statement` on `database`: its columns, its rows, what it changed.
async fn sql(database: &str, statement: &str) -> Result<String, spin_sdk::sqlite::Error> {
    let db = Connection::open(database).await?;
    let result = db.execute(statement, []).await?;
    let mut answer = format!("columns: {}\n", result.columns().join(", "));
    for row in result.collect().await? {
        let values: Vec<String> = row.values.iter().map(|v| format!("{v:?}")).collect();
        answer += &format!("{}\n", values.join(", "));
    }
    let (changes, last) = (db.changes().await, db.last_insert_rowid().await);
    answer += &format!("changes: {changes}, last insert: {last}\n");
    Ok(answer)
}
