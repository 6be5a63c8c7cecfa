//! Platform state end to end: `wasi:keyvalue` and `wasi:config` guests built
//! with the standard bindings, on a real `wisp serve`, with the operator's
//! `wisp kv` and `wisp secret` beside them.
//!
//! The guests (`guests/kv-draft`, `guests/kv-spin`, `guests/config-rc1`,
//! `guests/config-wasmcloud`)
//! answer on the query string: `?bucket=B&key=K&op=...` (see each guest).

use crate::support::{Wisp, eventually, send, stdout};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::time::Duration;
use wisp_test_artifacts as artifacts;

/// Runs `wisp` and panics with its output unless it succeeds.
fn cli_ok(wisp: &Wisp, args: &[&str]) -> String {
    let output = wisp.cli(args);
    assert!(
        output.status.success(),
        "wisp {args:?}: {}{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

async fn put(wisp: &Wisp, path: &str, body: impl Into<Bytes>) -> crate::support::Response {
    send(Method::PUT, &wisp.url(path), &[], body.into()).await
}

async fn post(wisp: &Wisp, path: &str) -> crate::support::Response {
    send(Method::POST, &wisp.url(path), &[], Bytes::new()).await
}

#[tokio::test]
async fn a_guest_built_for_wasmtimes_keyvalue_reads_its_own_bucket_set_by_the_operator() {
    let wisp = Wisp::start();
    wisp.deploy_ok("kv", artifacts::KV_DRAFT_COMPONENT, "route=/kv")
        .await;
    let missing = wisp.get("/kv").await;
    assert_eq!(
        (missing.status, missing.text()),
        (StatusCode::NOT_FOUND, "missing\n".into())
    );

    assert!(cli_ok(&wisp, &["kv", "set", "kv", "hello", "world"]).contains("set hello"));
    for bucket in ["", "default"] {
        let got = wisp.get(&format!("/kv?bucket={bucket}")).await;
        assert_eq!(
            (got.status, got.text()),
            (StatusCode::OK, "world".into()),
            "{bucket:?}"
        );
    }

    // The guest's writes reach the operator, keys with any bytes included.
    let set = put(&wisp, "/kv?op=set&key=a%2Fb%20c", "from the guest").await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    assert_eq!(
        cli_ok(&wisp, &["kv", "get", "kv", "a/b c"]),
        "from the guest"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&cli_ok(&wisp, &["kv", "ls", "kv", "--json"])).unwrap();
    assert_eq!(listed["keys"], serde_json::json!(["a/b c", "hello"]));
    let listed_by_guest = wisp.get("/kv?op=list").await;
    assert_eq!(listed_by_guest.text(), "a/b c\nhello\n");

    cli_ok(&wisp, &["kv", "rm", "kv", "hello"]);
    assert_eq!(wisp.get("/kv").await.status, StatusCode::NOT_FOUND);
    let gone = wisp.cli(&["kv", "get", "kv", "hello"]);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("has no key `hello`"),
        "{gone:?}"
    );
}

#[tokio::test]
async fn an_ungranted_bucket_is_denied_and_logged_and_a_granted_one_is_shared() {
    let wisp = Wisp::start();
    wisp.deploy_ok("a", artifacts::KV_DRAFT_COMPONENT, "route=/a&kv=shared")
        .await;
    wisp.deploy_ok("b", artifacts::KV_SPIN_COMPONENT, "route=/b&kv=shared")
        .await;
    wisp.deploy_ok("c", artifacts::KV_DRAFT_COMPONENT, "route=/c")
        .await;

    let first = post(&wisp, "/a?op=incr&bucket=shared&key=n").await;
    assert_eq!((first.status, first.text()), (StatusCode::OK, "1\n".into()));
    let second = post(&wisp, "/b?op=incr&bucket=shared&key=n").await;
    assert_eq!(
        (second.status, second.text()),
        (StatusCode::OK, "2\n".into()),
        "draft2 shares it"
    );
    assert_eq!(
        cli_ok(&wisp, &["kv", "get", "--bucket", "shared", "n"]),
        "2"
    );

    let denied = wisp.get("/c?bucket=shared&key=n").await;
    assert_eq!(
        (denied.status, denied.text()),
        (StatusCode::FORBIDDEN, "error: access-denied\n".into())
    );
    let unknown = wisp.get("/a?bucket=other").await;
    assert_eq!(
        unknown.status,
        StatusCode::FORBIDDEN,
        "granted `shared` only"
    );
    assert!(
        eventually(Duration::from_secs(5), async || {
            wisp.log().contains("key-value bucket denied") && wisp.log().contains("--kv shared")
        })
        .await,
        "the denial is logged with its remedy:\n{}",
        wisp.log()
    );
    // Own buckets stay apart: `a`'s own `n` is not the shared one.
    assert_eq!(wisp.get("/a?key=n").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn concurrent_increments_from_32_clients_are_exact() {
    let wisp = Wisp::start();
    wisp.deploy_ok("counter", artifacts::KV_DRAFT_COMPONENT, "route=/count")
        .await;
    let url = wisp.url("/count?op=incr&key=hits");
    let clients: Vec<_> = (0..32)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                for _ in 0..200 {
                    let response = send(Method::POST, &url, &[], Bytes::new()).await;
                    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(wisp.get("/count?key=hits").await.text(), "6400");
}

#[tokio::test]
async fn a_write_the_guest_saw_succeed_survives_kill_9() {
    let mut wisp = Wisp::start();
    wisp.deploy_ok("keep", artifacts::KV_DRAFT_COMPONENT, "route=/keep")
        .await;
    let set = put(&wisp, "/keep?op=set&key=order", "paid").await;
    assert_eq!(set.status, StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(
            post(&wisp, "/keep?op=incr&key=n").await.status,
            StatusCode::OK
        );
    }
    wisp.kill9();
    let wisp = wisp.restart_stopped();
    assert_eq!(wisp.get("/keep?key=order").await.text(), "paid");
    assert_eq!(wisp.get("/keep?key=n").await.text(), "5");
}

#[tokio::test]
async fn limit_breaches_are_errors_to_the_guest_and_a_metric_never_a_host_failure() {
    let wisp = Wisp::start_with(&[
        "--max-kv-value",
        "1KiB",
        "--max-kv-bucket",
        "4KiB",
        "--max-kv-key",
        "64B",
    ]);
    wisp.deploy_ok("small", artifacts::KV_DRAFT_COMPONENT, "route=/small")
        .await;

    let big = put(&wisp, "/small?op=set&key=big", vec![b'x'; 2048]).await;
    assert_eq!(big.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        big.text().starts_with(
            "error: other: the value for key `big` is 2KiB, over the 1KiB value limit"
        ),
        "{}",
        big.text()
    );

    let long_key = "k".repeat(65);
    let long = put(&wisp, &format!("/small?op=set&key={long_key}"), "v").await;
    assert!(
        long.text().contains("over the 64-byte key limit"),
        "{}",
        long.text()
    );

    let mut filled = 0;
    let full = loop {
        let response = put(
            &wisp,
            &format!("/small?op=set&key=k{filled}"),
            vec![b'v'; 900],
        )
        .await;
        if response.status != StatusCode::OK {
            break response;
        }
        filled += 1;
        assert!(
            filled < 10,
            "a 4 KiB bucket took {filled} values of 900 bytes"
        );
    };
    assert_eq!(filled, 4, "four entries of ~903 bytes fit in 4 KiB");
    assert!(
        full.text().contains("over its 4KiB limit"),
        "{}",
        full.text()
    );

    // The host is fine and kept everything that fit.
    assert_eq!(wisp.get("/small?key=k0").await.status, StatusCode::OK);
    let metrics = wisp.metrics().await;
    for limit in ["kv-value", "kv-key", "kv-bucket"] {
        assert_eq!(
            metrics.sum(
                "wisp_limit_breaches_total",
                &[("function", "small"), ("limit", limit)]
            ),
            1.0,
            "{limit}"
        );
    }
    // The operator gets the same limits, with a 413.
    let refused = wisp.cli_with_stdin(&["kv", "set", "small", "big"], &[b'x'; 2048]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("over the 1KiB limit"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_spin_guest_uses_draft2_atomics_and_spins_config_version() {
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "spin",
        artifacts::KV_SPIN_COMPONENT,
        "route=/spin&config=hello=from-config",
    )
    .await;
    assert_eq!(
        put(&wisp, "/spin?op=set&key=k", "one").await.status,
        StatusCode::OK
    );
    assert_eq!(wisp.get("/spin?key=k").await.text(), "one");
    let swapped = put(&wisp, "/spin?op=cas&key=k&value=two", "").await;
    assert_eq!(
        (swapped.status, swapped.text()),
        (StatusCode::OK, "swapped\n".into())
    );
    assert_eq!(wisp.get("/spin?key=k").await.text(), "two");
    let down = post(&wisp, "/spin?op=incr&key=n&delta=-5").await;
    assert_eq!(down.text(), "-5\n", "draft2 increments are signed");
    let config = wisp.get("/spin?op=config&key=hello").await;
    assert_eq!(
        (config.status, config.text()),
        (StatusCode::OK, "from-config".into())
    );
}

#[tokio::test]
async fn config_values_and_secrets_reach_the_guest_and_secrets_never_leak() {
    const SECRET: &str = "s3cret-value-7f1c";
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "cfg",
        artifacts::CONFIG_RC1_COMPONENT,
        "route=/cfg&config=hello=from-config&config=mode=test",
    )
    .await;
    let hello = wisp.get("/cfg").await;
    assert_eq!(
        (hello.status, hello.text()),
        (StatusCode::OK, "from-config".into())
    );

    let set = wisp.cli_with_stdin(
        &["secret", "set", "cfg", "API_TOKEN"],
        format!("{SECRET}\n").as_bytes(),
    );
    assert!(set.status.success(), "{set:?}");
    assert_eq!(
        wisp.get("/cfg?key=API_TOKEN").await.text(),
        SECRET,
        "trailing newline dropped"
    );
    assert_eq!(
        wisp.get("/cfg?all=1").await.text(),
        format!("API_TOKEN={SECRET}\nhello=from-config\nmode=test\n")
    );
    let file = wisp.data_dir().join("secrets/cfg.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // Names only, everywhere an operator looks.
    let names = wisp.admin_get("/v1/functions/cfg/secrets").await.json();
    assert_eq!(names["secrets"], serde_json::json!(["API_TOKEN"]));
    let mut seen = vec![
        cli_ok(&wisp, &["secret", "ls", "cfg"]),
        cli_ok(&wisp, &["ls"]),
        cli_ok(&wisp, &["versions", "cfg"]),
        stdout(&wisp.cli(&["logs", "cfg"])),
    ];
    for path in [
        "/v1/functions",
        "/v1/functions/cfg",
        "/v1/functions/cfg/versions",
        "/v1/functions/cfg/secrets",
        "/v1/functions/cfg/logs",
        "/metrics",
    ] {
        seen.push(wisp.admin_get(path).await.text());
    }
    assert!(seen[0].contains("API_TOKEN"));
    seen.push(wisp.log());
    for text in &seen {
        assert!(!text.contains(SECRET), "a secret leaked:\n{text}");
    }

    // Removing the function removes its secrets and its bucket.
    let removed = cli_ok(&wisp, &["rm", "cfg"]);
    assert!(removed.contains("with its key-value bucket"), "{removed}");
    assert!(!file.exists());
    wisp.deploy_ok("cfg", artifacts::CONFIG_RC1_COMPONENT, "route=/cfg")
        .await;
    assert_eq!(
        wisp.get("/cfg?key=API_TOKEN").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn removing_a_function_deletes_its_bucket() {
    let wisp = Wisp::start();
    wisp.deploy_ok("gone", artifacts::KV_DRAFT_COMPONENT, "route=/gone")
        .await;
    assert_eq!(
        put(&wisp, "/gone?op=set&key=k", "12345").await.status,
        StatusCode::OK
    );
    let removed = cli_ok(&wisp, &["rm", "gone"]);
    assert!(removed.contains("key-value bucket (6 B)"), "{removed}");
    wisp.deploy_ok("gone", artifacts::KV_DRAFT_COMPONENT, "route=/gone")
        .await;
    assert_eq!(wisp.get("/gone?key=k").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_guest_built_for_wasmclouds_config_version_reads_the_same_values() {
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "wc",
        artifacts::CONFIG_WASMCLOUD_COMPONENT,
        "route=/wc&config=hello=from-config",
    )
    .await;
    let hello = wisp.get("/wc").await;
    assert_eq!(
        (hello.status, hello.text()),
        (StatusCode::OK, "from-config".into())
    );
    assert_eq!(wisp.get("/wc?key=nope").await.status, StatusCode::NOT_FOUND);
}
