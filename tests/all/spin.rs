//! Spin applications run unchanged: a `spin.toml` deployed with `wisp up`,
//! its components built with Spin's own SDK (`spin-sdk` 7 from crates.io,
//! `guests/spin-app`), answering as Spin documents — its key-value stores,
//! its variables (a secret one from `SPIN_VARIABLE_*`), the `spin-*`
//! request headers, exact and wildcard routes, calls to another
//! component as `http://NAME.spin.internal`, and its SQLite databases.

use crate::support::{Wisp, send, stderr, stdout};
use bytes::Bytes;
use http::Method;
use std::path::Path;
use wisp_test_artifacts as artifacts;

/// A Spin app of five components of `guests/spin-app`: `cart` under
/// `/cart/...` with every key this test maps, `about` at exactly `/about`,
/// `users` under `/users/:user_id/...`, `hidden` private, and `home` for
/// every other path.
const APP: &str = r#"
spin_manifest_version = 2

[application]
name = "shop"
version = "1.0.0"

[variables]
greeting = { default = "hello" }
token = { required = true, secret = true }

[[trigger.http]]
route = "/cart/..."
component = "cart"

[[trigger.http]]
route = "/about"
component = "about"

[[trigger.http]]
route = "/users/:user_id/..."
component = "users"

[[trigger.http]]
route = "/..."
component = "home"

[[trigger.http]]
route = { private = true }
component = "hidden"

[component.cart]
source = "app.wasm"
environment = { MODE = "test" }
allowed_outbound_hosts = ["http://about.spin.internal", "http://hidden.spin.internal", "http://self"]
key_value_stores = ["default", "sessions"]
files = [{ source = "assets", destination = "/assets" }]
variables = { message = "{{ greeting }}, world", api_key = "Bearer {{ token }}" }

[component.about]
source = "app.wasm"

[component.home]
source = "app.wasm"

[component.users]
source = "app.wasm"

[component.hidden]
source = "app.wasm"
"#;

/// A directory holding `manifest` as `spin.toml`, the app's `.wasm` and
/// its assets.
fn app_dir(manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(artifacts::SPIN_APP_COMPONENT, dir.path().join("app.wasm")).unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/a.txt"), "asset").unwrap();
    std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    dir
}

/// `wisp up` of `dir`'s `spin.toml`, with `env`.
fn up(wisp: &Wisp, dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let manifest = dir.join("spin.toml");
    wisp.cli_with_env(&["up", "-f", manifest.to_str().unwrap()], env)
}

/// GET `path` with a forged `spin-path-info`, answered 200: its body.
async fn page(wisp: &Wisp, path: &str) -> String {
    let forged = [
        ("spin-path-info", "/forged"),
        ("spin-client-addr", "6.6.6.6:6"),
        ("spin-path-match-user-id", "forged"),
    ];
    let response = send(Method::GET, &wisp.url(path), &forged, Bytes::new()).await;
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    response.text()
}

#[tokio::test]
async fn a_spin_app_runs_unchanged_from_its_manifest() {
    let wisp = Wisp::start();
    let dir = app_dir(APP);
    let secret = [("SPIN_VARIABLE_TOKEN", "s3cret")];
    let deployed = up(&wisp, dir.path(), &secret);
    assert!(deployed.status.success(), "{}", stderr(&deployed));
    let report = stdout(&deployed);
    for name in ["about", "cart", "hidden", "home", "users"] {
        assert!(report.contains(&format!("+ {name}: created")), "{report}");
    }

    // Key-value: its default store is its own; `sessions` was granted.
    assert_eq!(page(&wisp, "/cart/count").await, "1\n");
    assert_eq!(page(&wisp, "/cart/count").await, "2\n");
    assert_eq!(page(&wisp, "/cart/keys").await, "count\n");
    assert_eq!(
        page(&wisp, "/cart/x/stores").await,
        "sessions: Ok(()), other: Err(Error::AccessDenied)\n"
    );
    // Variables, the secret one from the deployer's environment.
    assert_eq!(
        page(&wisp, "/cart/vars").await,
        "hello, world | Bearer s3cret | Err(Error::Undefined(\"missing\"))\n"
    );
    assert_eq!(page(&wisp, "/cart/env").await, "test\n");

    // Spin's headers, set by the host over what the client sent.
    let headers = page(&wisp, "/cart/a/headers?q=1").await;
    for line in [
        format!("spin-full-url: {}", wisp.url("/cart/a/headers?q=1")),
        "spin-path-info: /a/headers".to_owned(),
        "spin-matched-route: /cart/...".to_owned(),
        "spin-base-path: /".to_owned(),
        "spin-raw-component-route: /cart/...".to_owned(),
        "spin-component-route: /cart".to_owned(),
        "spin-client-addr: 127.0.0.1:".to_owned(),
    ] {
        assert!(headers.contains(&line), "missing `{line}` in:\n{headers}");
    }

    // An exact route serves only its path: a deeper one falls through to
    // the catch-all, as in Spin.
    assert!(page(&wisp, "/about").await.contains("no such page: /about"));
    let deeper = page(&wisp, "/about/headers").await;
    assert!(deeper.contains("spin-matched-route: /...\n"), "{deeper}");
    assert!(
        deeper.contains("spin-path-info: /about/headers\n"),
        "{deeper}"
    );

    // A `:name` segment takes one segment, and says its value.
    let user = page(&wisp, "/users/7/a/headers").await;
    for line in [
        "spin-path-match-user-id: 7\n",
        "spin-path-info: /a/headers\n",
        "spin-matched-route: /users/:user_id/...\n",
        "spin-component-route: /users/:user_id\n",
    ] {
        assert!(user.contains(line), "missing `{line}` in:\n{user}");
    }
    assert!(!user.contains("forged"), "{user}");
    let no_id = page(&wisp, "/users").await;
    assert!(no_id.contains("no such page: /users"), "{no_id}");
    let clean = page(&wisp, "/cart/headers").await;
    assert!(!clean.contains("spin-path-match"), "{clean}");

    // One component calls another by its Spin name.
    let call = page(&wisp, "/cart/call").await;
    assert!(call.starts_with("200 OK\n"), "{call}");
    assert!(call.contains("spin-matched-route: /about\n"), "{call}");
    // A private one answers calls, and no public request: its route's
    // path falls through to the catch-all.
    let private = page(&wisp, "/cart/call?to=hidden").await;
    assert!(private.starts_with("200 OK\n"), "{private}");
    assert!(private.contains("spin-path-info: /headers\n"), "{private}");
    assert!(private.contains("spin-matched-route: \n"), "{private}");
    let public = page(&wisp, "/.spin-private/hidden/headers").await;
    assert!(public.contains("spin-matched-route: /...\n"), "{public}");
    // `http://self` lets it call the app by path, as a client would.
    let own = page(&wisp, "/cart/call?to=/cart/x/headers").await;
    assert!(own.starts_with("200 OK\n"), "{own}");
    assert!(own.contains("spin-path-info: /x/headers\n"), "{own}");
    assert!(own.contains("spin-matched-route: /cart/...\n"), "{own}");

    // The secret is the function's secret, not a setting anyone reads back.
    let info = wisp.admin_get("/v1/functions/cart").await.text();
    assert!(!info.contains("s3cret"), "{info}");
    assert!(info.contains("/cart/..."), "{info}");

    // Nothing changed: nothing is deployed again.
    let again = up(&wisp, dir.path(), &secret);
    assert!(
        stdout(&again).contains("= cart: unchanged"),
        "{}",
        stdout(&again)
    );
}

#[tokio::test]
async fn what_wisp_cannot_honour_is_refused_by_name_and_deploys_nothing() {
    let wisp = Wisp::start();
    let dir = app_dir(APP);
    let missing = up(&wisp, dir.path(), &[]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("SPIN_VARIABLE_TOKEN"),
        "{}",
        stderr(&missing)
    );

    let models = APP.replace(
        "[component.about]\n",
        "[component.about]\nai_models = [\"llama2-chat\"]\n",
    );
    let dir = app_dir(&models);
    let refused = up(&wisp, dir.path(), &[("SPIN_VARIABLE_TOKEN", "x")]);
    assert!(!refused.status.success());
    let error = stderr(&refused);
    assert!(
        error.contains("component `about`: `ai_models` is not supported"),
        "{error}"
    );
    let list = wisp.admin_get("/v1/functions").await.json();
    assert_eq!(list, serde_json::json!([]), "nothing deployed");

    // By hand: a Spin route must sit under the function's route.
    let wrong = wisp
        .deploy(
            "x",
            std::fs::read(artifacts::SPIN_APP_COMPONENT).unwrap(),
            "route=/a&spin-route=/b/...",
        )
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.text());
    assert!(wrong.error().contains("spin-route"), "{}", wrong.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_named_by_url_is_fetched_once_and_kept_only_if_its_digest_matches() {
    use sha2::Digest;
    let wasm = std::fs::read(artifacts::SPIN_APP_COMPONENT).unwrap();
    let hex: String = sha2::Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let server = crate::upstream::Upstream::start(wasm).await;
    let wisp = Wisp::start();
    let by_url = |digest: &str| {
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"web\"\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"home\"\n\
             [component.home]\nsource = {{ url = \"http://{0}/app.wasm\", digest = \"sha256:{digest}\" }}\n\
             allowed_outbound_hosts = [\"http://{0}\"]\n",
            server.addr
        )
    };
    let dir = app_dir(&by_url(&hex));
    let deployed = tokio::task::block_in_place(|| up(&wisp, dir.path(), &[]));
    assert!(deployed.status.success(), "{}", stderr(&deployed));
    assert_eq!(page(&wisp, "/count").await, "1\n");
    assert!(
        dir.path()
            .join(format!(".spin/wisp-downloads/sha256-{hex}.wasm"))
            .exists()
    );
    let again = tokio::task::block_in_place(|| up(&wisp, dir.path(), &[]));
    assert!(
        stdout(&again).contains("= home: unchanged"),
        "{}",
        stdout(&again)
    );
    assert_eq!(server.hits(), 1, "the file fetched once is used again");

    // Outbound HTTP from the component, to what it may reach alone.
    let outbound = page(&wisp, &format!("/call?to=http://{}/x", server.addr)).await;
    assert!(outbound.starts_with("200 OK\n\0asm"), "{outbound:.40}");
    assert_eq!(server.hits(), 2);
    let denied = wisp.get("/call?to=http://127.0.0.1:9/x").await;
    assert_eq!(denied.status, 500, "{}", denied.text());

    // A download whose digest is not the pinned one is refused and kept nowhere.
    let wrong = "0".repeat(64);
    std::fs::write(dir.path().join("spin.toml"), by_url(&wrong)).unwrap();
    let refused = tokio::task::block_in_place(|| up(&wisp, dir.path(), &[]));
    assert!(!refused.status.success());
    let error = stderr(&refused);
    assert!(
        error.contains(&format!(
            "its digest is sha256:{hex}, not the sha256:{wrong}"
        )),
        "{error}"
    );
    let kept: Vec<_> = std::fs::read_dir(dir.path().join(".spin/wisp-downloads"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        kept,
        [format!("sha256-{hex}.wasm")],
        "nothing else was written"
    );
    let versions = wisp.admin_get("/v1/functions/home").await.json();
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "{versions}"
    );
}

#[tokio::test]
async fn a_spin_sdk_5_app_built_for_wasip1_runs_unchanged() {
    // `spin build` of a Spin 2 to 5 app leaves a core module carrying its
    // component type; wisp makes it a component at deploy, as Spin does at
    // load, and serves its `fermyon:spin@2.0.0` imports.
    let wisp = Wisp::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(artifacts::SPIN_SDK5_MODULE, dir.path().join("legacy.wasm")).unwrap();
    let manifest = "spin_manifest_version = 2\n[application]\nname = \"legacy\"\n\
        [variables]\ngreeting = { default = \"hi\" }\n\
        [[trigger.http]]\nroute = \"/legacy/...\"\ncomponent = \"legacy\"\n\
        [component.legacy]\nsource = \"legacy.wasm\"\n\
        key_value_stores = [\"default\", \"sessions\"]\n\
        sqlite_databases = [\"default\"]\n\
        variables = { message = \"{{ greeting }} from spin-sdk 5\" }\n";
    std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    let deployed = up(&wisp, dir.path(), &[]);
    assert!(deployed.status.success(), "{}", stderr(&deployed));
    let info = wisp.admin_get("/v1/functions/legacy").await.json();
    assert_eq!(info["versions"][0]["abi"], "wasi-http", "{info}");

    assert_eq!(page(&wisp, "/legacy/count").await, "1\n");
    assert_eq!(page(&wisp, "/legacy/a/count").await, "2\n");
    assert_eq!(page(&wisp, "/legacy/keys").await, "count\n");
    let stores = page(&wisp, "/legacy/stores").await;
    assert!(
        stores.starts_with("sessions: Ok(()), other: Err(") && stores.contains("AccessDenied"),
        "{stores}"
    );
    let vars = page(&wisp, "/legacy/vars").await;
    assert!(vars.starts_with("hi from spin-sdk 5 | Err("), "{vars}");
    assert!(vars.contains("Undefined(\"missing\")"), "{vars}");

    // `fermyon:spin/sqlite@2.0.0`, on the function's own database.
    for statement in ["CREATE TABLE t (x)", "INSERT INTO t VALUES (42)"] {
        assert!(!sql(&wisp, "/legacy/sql", statement).await.contains("error"));
    }
    let rows = sql(&wisp, "/legacy/sql", "SELECT x, 'y' AS y FROM t").await;
    assert_eq!(
        rows,
        "columns: x, y\nValue::Integer(42), Value::Text(\"y\")\n"
    );
    // `spin:sqlite@3.0.0` (its `sqlite3` module), on the same database.
    let insert = sql(&wisp, "/legacy/sql3", "INSERT INTO t VALUES (43)").await;
    assert_eq!(insert, "columns: \nchanges: 1, last insert: 2\n");
    let count = sql(&wisp, "/legacy/sql3", "SELECT count(*) FROM t").await;
    assert!(
        count.starts_with("columns: count(*)\nValue::Integer(2)\n"),
        "{count}"
    );
    let attach = sql(&wisp, "/legacy/sql", "ATTACH DATABASE 'x.db' AS x").await;
    assert!(
        attach.contains("error: Error::Io(\"not allowed here"),
        "{attach}"
    );

    // The module made a component is what the host keeps: `wisp up` sees
    // the same binary and deploys nothing again.
    let again = up(&wisp, dir.path(), &[]);
    assert!(
        stdout(&again).contains("= legacy: unchanged"),
        "{}",
        stdout(&again)
    );
}

#[tokio::test]
async fn wisp_serve_deploys_a_spin_app_at_start_with_its_secret_variables() {
    let dir = app_dir(APP);
    let manifest = dir.path().join("spin.toml");
    let wisp = Wisp::start_with_env(
        &["--manifest", manifest.to_str().unwrap()],
        &[("SPIN_VARIABLE_TOKEN", "s3cret")],
    );
    assert_eq!(
        page(&wisp, "/cart/vars").await,
        "hello, world | Bearer s3cret | Err(Error::Undefined(\"missing\"))\n"
    );
    let info = wisp.admin_get("/v1/functions/cart").await.text();
    assert!(!info.contains("s3cret"), "{info}");
}

/// POSTs `statement` to the `sql` page at `path`: its answer.
async fn sql(wisp: &Wisp, path: &str, statement: &str) -> String {
    let body = Bytes::from(statement.to_owned());
    let response = send(Method::POST, &wisp.url(path), &[], body).await;
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    response.text()
}

/// Two components of `guests/spin-app` sharing the `orders` database:
/// `db` with its own `default` one too, `other` with only `orders`.
const SQLITE_APP: &str = r#"
spin_manifest_version = 2
[application]
name = "books"
[[trigger.http]]
route = "/db/..."
component = "db"
[[trigger.http]]
route = "/other/..."
component = "other"
[component.db]
source = "app.wasm"
sqlite_databases = ["default", "orders"]
[component.other]
source = "app.wasm"
sqlite_databases = ["orders"]
"#;

#[tokio::test]
async fn a_spin_app_keeps_its_sqlite_databases_within_their_bounds() {
    let wisp = Wisp::start_with(&["--max-sqlite-size", "1MiB"]);
    let dir = app_dir(SQLITE_APP);
    let deployed = up(&wisp, dir.path(), &[]);
    assert!(deployed.status.success(), "{}", stderr(&deployed));

    // Its own database: tables, parameters' results, what changed.
    let created = sql(
        &wisp,
        "/db/sql",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)",
    )
    .await;
    assert_eq!(created, "columns: \nchanges: 0, last insert: 0\n");
    for text in ["first", "second"] {
        let insert = format!("INSERT INTO notes (text) VALUES ('{text}')");
        assert!(
            sql(&wisp, "/db/sql", &insert)
                .await
                .contains("changes: 1, last insert: ")
        );
    }
    let rows = sql(
        &wisp,
        "/db/sql",
        "SELECT id, text, 1.5, x'0102', NULL FROM notes",
    )
    .await;
    assert_eq!(
        rows.lines().take(3).collect::<Vec<_>>(),
        [
            "columns: id, text, 1.5, x'0102', NULL",
            "Value::Integer(1), Value::Text(\"first\"), Value::Real(1.5), Value::Blob([1, 2]), Value::Null",
            "Value::Integer(2), Value::Text(\"second\"), Value::Real(1.5), Value::Blob([1, 2]), Value::Null",
        ]
    );

    // An app database is shared by the components granted it; an own
    // database is not, and an ungranted one does not open.
    sql(
        &wisp,
        "/db/sql?db=orders",
        "CREATE TABLE orders (item TEXT)",
    )
    .await;
    sql(
        &wisp,
        "/db/sql?db=orders",
        "INSERT INTO orders VALUES ('tea')",
    )
    .await;
    let shared = sql(&wisp, "/other/sql?db=orders", "SELECT item FROM orders").await;
    assert!(shared.contains("Value::Text(\"tea\")"), "{shared}");
    assert_eq!(
        sql(&wisp, "/other/sql", "SELECT 1").await,
        "error: Error::AccessDenied\n"
    );
    assert_eq!(
        sql(&wisp, "/db/sql?db=ledger", "SELECT 1").await,
        "error: Error::AccessDenied\n"
    );

    // What would reach past its own file is refused; nothing is written
    // outside it.
    let outside = dir.path().join("outside.db");
    for statement in [
        format!("ATTACH DATABASE '{}' AS x", outside.display()),
        format!("VACUUM INTO '{}'", outside.display()),
        "PRAGMA max_page_count = 1000000".to_owned(),
        "BEGIN".to_owned(),
        "CREATE TEMP TABLE t (x)".to_owned(),
    ] {
        let refused = sql(&wisp, "/db/sql", &statement).await;
        assert!(
            refused.starts_with("error: Error::Io("),
            "{statement}: {refused}"
        );
    }
    assert!(!outside.exists());
    // Past `--max-sqlite-size`, `database-full`; what it held stays.
    let full = sql(
        &wisp,
        "/db/sql",
        "INSERT INTO notes (text) SELECT zeroblob(900000) FROM notes",
    )
    .await;
    assert_eq!(full, "error: Error::DatabaseFull\n");
    let count = sql(&wisp, "/db/sql", "SELECT count(*) FROM notes").await;
    assert!(count.contains("Value::Integer(2)\n"), "{count}");
    // A value past 1 MiB, and SQLite's quadratic `instr` at its worst,
    // answered at once by wisp's own.
    let big = sql(&wisp, "/db/sql", "SELECT zeroblob(2000000)").await;
    assert!(big.contains("too big"), "{big}");
    let worst = "SELECT instr(zeroblob(1000000), zeroblob(500000) || x'01')";
    assert!(
        sql(&wisp, "/db/sql", worst)
            .await
            .contains("Value::Integer(0)")
    );

    // Rows handed as streams stay in the host until read: those of one
    // request add up to at most its memory limit (128 MiB here).
    let rows_of_40_mib = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 40) \
                          SELECT zeroblob(1000000) FROM c";
    let unread = sql(&wisp, "/db/unread", rows_of_40_mib).await;
    assert!(
        unread.starts_with("3 ran, then Error::Io(") && unread.contains("rows add up to more than"),
        "{unread}"
    );

    // Removing the function deletes its own database, not the app's.
    let own = wisp.data_dir().join("sqlite/fn/db.db");
    assert!(own.exists(), "{}", own.display());
    let removed = wisp.cli(&["rm", "db"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(!own.exists(), "its database went with it");
    assert!(wisp.data_dir().join("sqlite/app/orders.db").exists());
}
