//! Spin applications run unchanged: a `spin.toml` deployed with `wisp up`,
//! its components built with Spin's own SDK (`spin-sdk` 7 from crates.io,
//! `guests/spin-app`), answering as Spin documents — its key-value stores,
//! its variables (a secret one from `SPIN_VARIABLE_*`), the `spin-*`
//! request headers, exact and wildcard routes, and calls to another
//! component as `http://NAME.spin.internal`.

use crate::support::{Wisp, send, stderr, stdout};
use bytes::Bytes;
use http::Method;
use std::path::Path;
use wisp_test_artifacts as artifacts;

/// A Spin app of three components of `guests/spin-app`: `cart` under
/// `/cart/...` with every key this test maps, `about` at exactly `/about`,
/// and `home` for every other path.
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
    for name in ["about", "cart", "hidden", "home"] {
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

    let sqlite = APP.replace(
        "[component.about]\n",
        "[component.about]\nsqlite_databases = [\"default\"]\n",
    );
    let dir = app_dir(&sqlite);
    let refused = up(&wisp, dir.path(), &[("SPIN_VARIABLE_TOKEN", "x")]);
    assert!(!refused.status.success());
    let error = stderr(&refused);
    assert!(
        error.contains("component `about`: `sqlite_databases` is not supported"),
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
             [component.home]\nsource = {{ url = \"http://{}/app.wasm\", digest = \"sha256:{digest}\" }}\n",
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
