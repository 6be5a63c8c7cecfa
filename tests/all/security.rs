//! The second security review's attacks, each run for real against a
//! `wisp serve` process: the console cookie sent to a guest and replayed,
//! DNS rebinding and cross-site changes on a token-less admin API, headers
//! only the host may set forged by clients and guests, chained fan-out,
//! a `get-many` that asks the host for hundreds of megabytes, token
//! guessing, and state files other users could read.

use crate::support::{Response, Wisp, accept, finished, send};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use wisp_test_artifacts as artifacts;

const TOKEN: &str = "the-admin-token-0123456789";

/// Signs in to the console and returns its session cookie (`name=value`)
/// and the anti-CSRF token its page carries.
async fn sign_in(wisp: &Wisp) -> (String, String) {
    let login = send(
        Method::POST,
        &wisp.admin_url("/console/login"),
        &[("content-type", "application/x-www-form-urlencoded")],
        Bytes::from(format!("token={TOKEN}")),
    )
    .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.text());
    let set_cookie = login.header("set-cookie").expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let page = send(
        Method::GET,
        &wisp.admin_url("/"),
        &[("cookie", &cookie)],
        Bytes::new(),
    )
    .await;
    let text = page.text();
    let csrf = text
        .split("name=\"wisp-csrf\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the console page carries an anti-CSRF token")
        .to_owned();
    assert_eq!(csrf.len(), 64, "{text}");
    assert!(
        !set_cookie.contains(&csrf),
        "the CSRF token is never in the cookie"
    );
    (cookie, csrf)
}

async fn admin_send(
    wisp: &Wisp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response {
    send(method, &wisp.admin_url(path), headers, body.into()).await
}

#[tokio::test]
async fn the_console_cookie_never_reaches_a_guest_and_alone_cannot_deploy() {
    let wisp = Wisp::start_with(&["--admin-token", TOKEN]);
    let bearer = format!("Bearer {TOKEN}");
    for (name, wasm, route) in [
        ("env", artifacts::HOSTILE_CGI_MODULE, "/env"),
        ("echo", artifacts::ECHO_COMPONENT, "/echo"),
    ] {
        let deployed = admin_send(
            &wisp,
            Method::PUT,
            &format!("/v1/functions/{name}?route={route}"),
            &[("authorization", &bearer)],
            crate::support::guest(wasm),
        )
        .await;
        assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.text());
    }
    let (cookie, csrf) = sign_in(&wisp).await;
    let sent = format!("theme=dark; {cookie}; lang=en");

    // The CGI guest prints its environment: HTTP_COOKIE keeps the other
    // cookies and loses the session.
    let env = send(
        Method::GET,
        &wisp.url("/env/env"),
        &[("cookie", &sent)],
        Bytes::new(),
    )
    .await;
    let env = env.text();
    assert!(env.contains("HTTP_COOKIE=theme=dark; lang=en"), "{env}");
    assert!(!env.contains("wisp_session"), "{env}");
    // The component sees its headers: the same.
    let echo = send(
        Method::GET,
        &wisp.url("/echo"),
        &[("cookie", &sent)],
        Bytes::new(),
    )
    .await;
    assert_eq!(
        echo.header("x-echo-header-cookie"),
        Some("theme=dark; lang=en")
    );
    // The operator's own path (`wisp invoke`) strips it too.
    let invoked = admin_send(
        &wisp,
        Method::GET,
        "/v1/functions/echo/invoke/",
        &[("authorization", &bearer), ("cookie", &cookie)],
        Bytes::new(),
    )
    .await;
    assert_eq!(invoked.status, StatusCode::OK);
    assert!(invoked.header("x-echo-header-cookie").is_none());

    // A stolen cookie with the old constant header is not enough to change
    // anything, nor is a wrong token; the page's token is.
    let deploy = |headers: Vec<(&'static str, String)>| {
        let wisp = &wisp;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            admin_send(
                wisp,
                Method::PUT,
                "/v1/functions/pwned?route=/pwned",
                &headers,
                crate::support::guest(artifacts::HELLO_COMPONENT),
            )
            .await
        }
    };
    let replayed = deploy(vec![
        ("cookie", cookie.clone()),
        ("x-wisp-console", "1".into()),
    ])
    .await;
    assert_eq!(
        replayed.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        replayed.text()
    );
    let wrong = deploy(vec![
        ("cookie", cookie.clone()),
        ("x-wisp-csrf", "0".repeat(64)),
    ])
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wisp.get("/pwned").await.status, StatusCode::NOT_FOUND);
    let reads = admin_send(
        &wisp,
        Method::GET,
        "/v1/functions",
        &[("cookie", &cookie)],
        "",
    )
    .await;
    assert_eq!(reads.status, StatusCode::OK, "a session may read");
    let right = deploy(vec![
        ("cookie", cookie.clone()),
        ("x-wisp-csrf", csrf.clone()),
    ])
    .await;
    assert_eq!(right.status, StatusCode::CREATED, "{}", right.text());

    // Signed out, the session is worth nothing.
    let out = admin_send(
        &wisp,
        Method::POST,
        "/console/logout",
        &[("cookie", &cookie)],
        "",
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let after = admin_send(
        &wisp,
        Method::GET,
        "/v1/functions",
        &[("cookie", &cookie)],
        "",
    )
    .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_tokenless_admin_api_refuses_rebinding_and_cross_site_changes() {
    let wisp = Wisp::start_with(&["--admin-host", "wisp-admin.internal"]);
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let rebound = [
        ("host", "rebind.attacker.example"),
        ("origin", "http://attacker.example"),
        ("content-type", "text/plain"),
    ];
    let moved = admin_send(
        &wisp,
        Method::POST,
        "/v1/functions/hello/rollback",
        &rebound,
        "",
    )
    .await;
    assert_eq!(moved.status, StatusCode::FORBIDDEN, "{}", moved.text());
    assert!(moved.error().contains("loopback"), "{}", moved.text());
    let info = wisp.admin_get("/v1/functions/hello").await.json();
    assert_eq!(
        info["traffic"][0]["version"], 2,
        "traffic did not move: {info}"
    );
    // Reading through a rebound name is refused too, the console included.
    for path in ["/v1/functions", "/", "/metrics"] {
        let read = admin_send(
            &wisp,
            Method::GET,
            path,
            &[("host", "rebind.attacker.example")],
            "",
        )
        .await;
        assert_eq!(read.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Probes send any Host; a name the operator allowed is answered.
    let health = admin_send(
        &wisp,
        Method::GET,
        "/healthz",
        &[("host", "10.0.0.9:8081")],
        "",
    )
    .await;
    assert_eq!(health.status, StatusCode::OK);
    let allowed = admin_send(
        &wisp,
        Method::GET,
        "/v1/functions",
        &[("host", "wisp-admin.internal:8081")],
        "",
    )
    .await;
    assert_eq!(allowed.status, StatusCode::OK);
    // A cross-origin change is refused even with a loopback Host.
    let cross = admin_send(
        &wisp,
        Method::POST,
        "/v1/functions/hello/rollback",
        &[("origin", "http://attacker.example")],
        "",
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN, "{}", cross.text());
    let own_origin = format!("http://{}", wisp.admin);
    let own = admin_send(
        &wisp,
        Method::POST,
        "/v1/functions/hello/rollback",
        &[("origin", &own_origin)],
        "",
    )
    .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text());
    // The console may not be framed.
    let page = admin_send(&wisp, Method::GET, "/", &[], "").await;
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let policy = page.header("content-security-policy").unwrap_or_default();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
}

#[tokio::test]
async fn headers_only_the_host_sets_cannot_be_forged_by_clients_or_guests() {
    let wisp = Wisp::start();
    wisp.deploy_ok("echo", artifacts::ECHO_COMPONENT, "route=/echo&async=on")
        .await;
    wisp.deploy_ok(
        "caller",
        artifacts::SDK_FETCH_COMPONENT,
        "route=/caller&allow-outbound=http://echo.wisp.internal",
    )
    .await;
    let forged = [
        ("x-wisp-call-id", "0000deadbeef00000000"),
        ("x-wisp-attempt", "1"),
        ("x-wisp-trigger", "cron"),
        ("x-wisp-schedule", "* * * * *"),
        ("x-wisp-caller", "admin"),
        ("x-wisp-chain-depth", "0"),
    ];
    // A client's synchronous request: none reaches the guest.
    let sync = send(Method::GET, &wisp.url("/echo"), &forged, Bytes::new()).await;
    assert_eq!(sync.status, StatusCode::OK);
    for (name, _) in forged {
        assert!(
            sync.header(&format!("x-echo-header-{name}")).is_none(),
            "{name} reached the guest"
        );
    }
    // An async call: the guest sees exactly the host's call id and attempt.
    let id = accept(&wisp, "/echo", &forged, "").await;
    let call = finished(&wisp, &id, Duration::from_secs(30)).await;
    let headers = call["response"]["headers"].as_array().unwrap().clone();
    let seen = |name: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|pair| pair[0] == format!("x-echo-header-{name}"))
            .map(|pair| pair[1].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(seen("x-wisp-call-id"), [id.as_str()], "{call}");
    assert_eq!(seen("x-wisp-attempt"), ["1"], "{call}");
    assert_eq!(seen("x-wisp-trigger"), ["async"], "{call}");
    assert!(seen("x-wisp-schedule").is_empty() && seen("x-wisp-caller").is_empty());
    // A chained call whose guest claims a cron trigger and a call id.
    let chained = wisp
        .get("/caller?call=echo&path=/&header=x-wisp-trigger:cron&header=x-wisp-call-id:forged&header=x-wisp-chain-depth:0")
        .await;
    assert_eq!(chained.status, StatusCode::OK, "{}", chained.text());
    let seen = &chained.json()["headers"];
    assert_eq!(seen["x-echo-header-x-wisp-trigger"], "chain", "{seen}");
    assert_eq!(seen["x-echo-header-x-wisp-caller"], "caller", "{seen}");
    assert_eq!(seen["x-echo-header-x-wisp-chain-depth"], "1", "{seen}");
    assert!(seen.get("x-echo-header-x-wisp-call-id").is_none(), "{seen}");
}

#[tokio::test]
async fn one_request_may_lead_to_a_bounded_number_of_chained_calls() {
    let wisp = Wisp::start();
    wisp.deploy_ok("echo", artifacts::ECHO_COMPONENT, "route=/echo")
        .await;
    wisp.deploy_ok(
        "fan",
        artifacts::SDK_FETCH_COMPONENT,
        "route=/fan&allow-outbound=http://echo.wisp.internal&timeout=60s",
    )
    .await;
    let answer = wisp.get("/fan?call=echo&path=/&times=100").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let statuses: Vec<u64> = answer.json()["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    assert_eq!(statuses.len(), 100);
    assert!(statuses[..64].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses[64..].iter().all(|s| *s == 429), "{statuses:?}");
    let runs = wisp
        .metric(
            "wisp_trigger_runs_total",
            &[("function", "echo"), ("trigger", "chain")],
        )
        .await;
    assert_eq!(runs, 64.0, "only the budget's calls ran");
    // The next client request has a budget of its own.
    let again = wisp.get("/fan?call=echo&path=/&times=3").await;
    assert_eq!(again.json()["statuses"], serde_json::json!([200, 200, 200]));
}

#[tokio::test]
async fn get_many_of_one_large_key_cannot_make_the_host_allocate_past_the_guest_memory() {
    let wisp = Wisp::start();
    wisp.deploy_ok("kv", artifacts::KV_DRAFT_COMPONENT, "route=/kv&memory=2MiB")
        .await;
    let value = vec![b'v'; 1 << 20];
    let set = admin_send(&wisp, Method::PUT, "/v1/functions/kv/kv/big", &[], value).await;
    assert!(set.status.is_success(), "{}", set.text());
    let before = wisp.rss_bytes();
    for copies in [256, 2048] {
        let keys = vec!["big"; copies].join(",");
        let answer = wisp.get(&format!("/kv?op=get-many&keys={keys}")).await;
        assert_eq!(
            answer.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{}",
            answer.text()
        );
        assert!(answer.text().contains("memory limit"), "{}", answer.text());
    }
    let grown = wisp.peak_rss_bytes().saturating_sub(before);
    assert!(grown < 100 << 20, "peak RSS grew by {} MiB", grown >> 20);
    assert_eq!(
        wisp.metric(
            "wisp_limit_breaches_total",
            &[("function", "kv"), ("limit", "kv-read")]
        )
        .await,
        2.0
    );
    // The host, and a read that fits, carry on.
    let small = admin_send(&wisp, Method::PUT, "/v1/functions/kv/kv/small", &[], "s").await;
    assert!(small.status.is_success());
    let fits = wisp.get("/kv?op=get-many&keys=small,small").await;
    assert_eq!(fits.status, StatusCode::OK, "{}", fits.text());
    assert_eq!(fits.text(), "small=s\nsmall=s\n");
}

#[tokio::test]
async fn guessing_the_admin_token_locks_the_guesser_out() {
    let wisp = Wisp::start_with(&["--admin-token", TOKEN]);
    let guess = |token: &'static str| {
        let wisp = &wisp;
        async move {
            let bearer = format!("Bearer {token}");
            admin_send(
                wisp,
                Method::GET,
                "/v1/functions",
                &[("authorization", &bearer)],
                "",
            )
            .await
        }
    };
    for _ in 0..5 {
        assert_eq!(guess("wrong").await.status, StatusCode::UNAUTHORIZED);
    }
    // Locked out: even the right token is refused, with when to come back.
    let locked = guess(TOKEN).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.text()
    );
    let wait: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "retry after {wait} s");
    // A wrong sign-in through the console counts the same.
    let form = admin_send(
        &wisp,
        Method::POST,
        "/console/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        "token=wrong",
    )
    .await;
    assert_eq!(form.status, StatusCode::TOO_MANY_REQUESTS);
    let health = admin_send(&wisp, Method::GET, "/healthz", &[], "").await;
    assert_eq!(health.status, StatusCode::OK, "probes are never locked out");
    tokio::time::sleep(Duration::from_millis(wait * 1000 + 200)).await;
    assert_eq!(guess(TOKEN).await.status, StatusCode::OK);
    let metrics = admin_send(
        &wisp,
        Method::GET,
        "/metrics",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        "",
    )
    .await;
    assert!(
        metrics.text().contains("wisp_admin_auth_failures_total 7"),
        "{}",
        metrics.text()
    );
    assert!(wisp.log().contains("locked out"), "{}", wisp.log());
}

#[tokio::test]
async fn the_data_directory_is_private_to_the_host_user() {
    let wisp = Wisp::start();
    wisp.deploy_ok("echo", artifacts::ECHO_COMPONENT, "route=/echo&async=on")
        .await;
    let set = admin_send(&wisp, Method::PUT, "/v1/functions/echo/kv/k", &[], "v").await;
    assert!(set.status.is_success());
    let secret = admin_send(
        &wisp,
        Method::PUT,
        "/v1/functions/echo/secrets/API",
        &[],
        "s",
    )
    .await;
    assert!(secret.status.is_success());
    let id = accept(&wisp, "/echo", &[], "body").await;
    finished(&wisp, &id, Duration::from_secs(30)).await;
    let data = wisp.data_dir();
    let mode = |path: &std::path::Path| {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700);
    let files = crate::support::files_under(&data);
    assert!(files.iter().any(|f| f.ends_with("kv.redb")), "{files:?}");
    assert!(files.iter().any(|f| f.ends_with("calls.redb")), "{files:?}");
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        let mut dir = file.parent();
        while let Some(parent) = dir.filter(|d| d.starts_with(&data)) {
            assert_eq!(mode(parent), 0o700, "{}", parent.display());
            dir = parent.parent();
        }
    }
}

#[tokio::test]
async fn a_function_that_has_not_opted_in_serves_respond_async_at_once() {
    let wisp = Wisp::start();
    wisp.deploy_ok("echo", artifacts::ECHO_COMPONENT, "route=/echo")
        .await;
    let answer = send(
        Method::POST,
        &wisp.url("/echo"),
        &[("prefer", "respond-async")],
        Bytes::from("served now"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "served now");
    assert!(answer.header("x-wisp-call-id").is_none());
    assert!(answer.header("preference-applied").is_none());
    let calls = wisp.admin_get("/v1/calls").await.json();
    assert_eq!(calls["calls"], serde_json::json!([]), "nothing stored");
}

/// Sends an async POST and returns the response, whatever it is.
async fn try_accept(wisp: &Wisp, path: &str, body: &'static str) -> Response {
    send(
        Method::POST,
        &wisp.url(path),
        &[("prefer", "respond-async")],
        Bytes::from(body),
    )
    .await
}

#[tokio::test]
async fn queued_calls_are_capped_per_function_and_per_host() {
    let wisp = Wisp::start_with(&["--max-queued-calls", "5", "--async-workers", "1"]);
    for (name, extra) in [
        ("slow", "&async-max-queued=3"),
        ("other", ""),
        ("bulky", "&async-max-queued-bytes=1KiB"),
    ] {
        let query = format!("route=/{name}&async=on{extra}");
        wisp.deploy_ok(name, artifacts::SLEEP_COMPONENT, &query)
            .await;
    }
    for _ in 0..3 {
        let queued = try_accept(&wisp, "/slow?ms=400", "").await;
        assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.text());
    }
    let refused = try_accept(&wisp, "/slow?ms=400", "").await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text()
    );
    assert!(refused.header("retry-after").is_some());
    assert!(
        refused.error().contains("async-max-queued"),
        "{}",
        refused.text()
    );
    // Another function has room of its own, until the host's cap.
    for _ in 0..2 {
        let queued = try_accept(&wisp, "/other?ms=400", "").await;
        assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.text());
    }
    let host_full = try_accept(&wisp, "/other?ms=400", "").await;
    assert_eq!(host_full.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        host_full.error().contains("--max-queued-calls"),
        "{}",
        host_full.text()
    );
    // Finished calls make room again.
    let drained = crate::support::eventually(Duration::from_secs(30), async || {
        let queued = wisp.admin_get("/v1/calls?state=queued").await.json();
        let running = wisp.admin_get("/v1/calls?state=running").await.json();
        queued["calls"].as_array().unwrap().is_empty()
            && running["calls"].as_array().unwrap().is_empty()
    })
    .await;
    assert!(drained, "the queued calls finished");
    let body = "x".repeat(600).leak();
    let first = try_accept(&wisp, "/bulky?ms=5000", body).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    let second = try_accept(&wisp, "/bulky?ms=5000", body).await;
    assert_eq!(
        second.status,
        StatusCode::TOO_MANY_REQUESTS,
        "bytes count too"
    );
}

#[tokio::test]
async fn a_stored_call_keeps_no_credentials_unless_the_function_opted_in() {
    let wisp = Wisp::start();
    wisp.deploy_ok("plain", artifacts::ECHO_COMPONENT, "route=/plain&async=on")
        .await;
    wisp.deploy_ok(
        "keeps",
        artifacts::ECHO_COMPONENT,
        "route=/keeps&async=on&async-keep-credentials=on",
    )
    .await;
    let credentials = |marker: &str| {
        [
            ("authorization", format!("Bearer secret-{marker}")),
            ("cookie", format!("sid=cookie-{marker}")),
            ("proxy-authorization", format!("Basic proxy-{marker}")),
            ("x-other", "kept".to_owned()),
        ]
    };
    let plain_headers = credentials("plain");
    let keeps_headers = credentials("keeps");
    let plain_refs: Vec<(&str, &str)> = plain_headers
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .collect();
    let keeps_refs: Vec<(&str, &str)> = keeps_headers
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .collect();
    let plain = accept(&wisp, "/plain", &plain_refs, "").await;
    let keeps = accept(&wisp, "/keeps", &keeps_refs, "").await;
    let plain = finished(&wisp, &plain, Duration::from_secs(30)).await;
    let keeps = finished(&wisp, &keeps, Duration::from_secs(30)).await;
    let seen = |call: &serde_json::Value, name: &str| {
        call["response"]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|pair| pair[0] == format!("x-echo-header-{name}"))
    };
    // (`proxy-authorization` never reaches a `wasi:http` guest at all.)
    for name in ["authorization", "cookie"] {
        assert!(!seen(&plain, name), "{name} was stored: {plain}");
        assert!(seen(&keeps, name), "{name} was not kept: {keeps}");
    }
    assert!(seen(&plain, "x-other"));
    // The plain function's credentials were never written to disk.
    let file = std::fs::read(wisp.data_dir().join("state/calls.redb")).unwrap();
    let holds = |needle: &str| file.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        holds("secret-keeps"),
        "the opted-in call is stored with them"
    );
    for marker in ["secret-plain", "cookie-plain", "proxy-plain"] {
        assert!(!holds(marker), "`{marker}` was written to calls.redb");
    }
}

/// A small tmpfs mounted at a path, unmounted (lazily) when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "this test mounts a small tmpfs to fill a disk for real, which needs root (CI runs as root): mount failed"
        );
        Tmpfs(at.to_owned())
    }

    /// Fills it to the last byte with a file of its own; returns the file.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while file.write_all(&chunk).is_ok() {}
        let mut byte = [0u8; 1];
        while file.write_all(&byte).is_ok() {
            byte[0] = byte[0].wrapping_add(1);
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_is_507_and_state_recovers_by_itself_when_space_returns() {
    let mut mounted = None;
    let wisp = Wisp::start_prepared(&[], |data| {
        mounted = Some(Tmpfs::mount(&data.join("state"), "16m"));
    });
    let tmpfs = mounted.unwrap();
    wisp.deploy_ok("kv", artifacts::KV_DRAFT_COMPONENT, "route=/kv&async=on")
        .await;
    let small = admin_send(&wisp, Method::PUT, "/v1/functions/kv/kv/before", &[], "1").await;
    assert!(small.status.is_success(), "{}", small.text());
    let filler = tmpfs.fill();
    let value = vec![b'v'; 512 << 10];
    let full = admin_send(
        &wisp,
        Method::PUT,
        "/v1/functions/kv/kv/big",
        &[],
        value.clone(),
    )
    .await;
    assert_eq!(
        full.status,
        StatusCode::INSUFFICIENT_STORAGE,
        "{}",
        full.text()
    );
    assert_eq!(full.json()["kind"], "insufficient-storage");
    let call = send(
        Method::POST,
        &wisp.url("/kv?op=get"),
        &[("prefer", "respond-async")],
        Bytes::from(vec![b'c'; 256 << 10]),
    )
    .await;
    assert_eq!(
        call.status,
        StatusCode::INSUFFICIENT_STORAGE,
        "{}",
        call.text()
    );
    std::fs::remove_file(filler).unwrap();
    // No restart: the stores reopen by themselves.
    let mut last = None;
    let recovered = crate::support::eventually(Duration::from_secs(15), async || {
        let put = admin_send(
            &wisp,
            Method::PUT,
            "/v1/functions/kv/kv/big",
            &[],
            value.clone(),
        )
        .await;
        let ok = put.status.is_success();
        last = Some(put);
        ok
    })
    .await;
    assert!(
        recovered,
        "writes still fail after space returned: {last:?}"
    );
    let read = wisp.get("/kv?op=get&key=before").await;
    assert_eq!(read.text(), "1", "what was written before is whole");
    let id = accept(&wisp, "/kv?op=get&key=before", &[], "").await;
    finished(&wisp, &id, Duration::from_secs(30)).await;
    assert!(wisp.log().contains("reopening"), "{}", wisp.log());
    drop(wisp);
    drop(tmpfs);
}

#[tokio::test]
async fn a_damaged_state_file_is_reported_and_every_function_keeps_serving() {
    let wisp = Wisp::start_prepared(&[], |data| {
        std::fs::create_dir_all(data.join("state")).unwrap();
        std::fs::create_dir_all(data.join("secrets")).unwrap();
        std::fs::write(data.join("state/kv.redb"), b"garbage, not a redb file").unwrap();
        std::fs::write(data.join("secrets/cfg.json"), b"{\"TOKEN\": \"trunc").unwrap();
    });
    let health = wisp.admin_get("/healthz").await.json();
    let damaged = health["damaged"].to_string();
    assert!(damaged.contains("`state/kv.redb`"), "{health}");
    assert!(damaged.contains("`secrets/cfg.json`"), "{health}");
    let data = wisp.data_dir().display().to_string();
    assert!(
        !damaged.contains(&data),
        "no host path to an anonymous client: {health}"
    );
    assert!(wisp.log().contains("kv.redb"), "{}", wisp.log());
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("kv", artifacts::KV_DRAFT_COMPONENT, "route=/kv")
        .await;
    wisp.deploy_ok(
        "cfg",
        artifacts::CONFIG_RC1_COMPONENT,
        "route=/cfg&config=plain=1",
    )
    .await;
    assert_eq!(wisp.get("/hello").await.status, StatusCode::OK);
    let kv = wisp.get("/kv?op=get&key=a").await;
    assert_eq!(
        kv.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        kv.text()
    );
    assert!(
        kv.text().starts_with("error:"),
        "the guest got an error: {}",
        kv.text()
    );
    let secret = wisp.get("/cfg?key=TOKEN").await;
    assert_eq!(
        secret.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        secret.text()
    );
    assert!(
        secret.text().contains("secrets/cfg.json"),
        "{}",
        secret.text()
    );
    // The operator removes the damaged files: both stores recover alone.
    std::fs::remove_file(wisp.data_dir().join("state/kv.redb")).unwrap();
    std::fs::remove_file(wisp.data_dir().join("secrets/cfg.json")).unwrap();
    let mut last = String::new();
    let recovered = crate::support::eventually(Duration::from_secs(15), async || {
        let set = wisp.get("/kv?op=incr").await;
        let cfg = wisp.get("/cfg?key=plain").await;
        last = format!(
            "{} {} / {} {}",
            set.status,
            set.text(),
            cfg.status,
            cfg.text()
        );
        set.status == StatusCode::OK && cfg.status == StatusCode::OK
    })
    .await;
    assert!(recovered, "{last}");
    let health = wisp.admin_get("/healthz").await.json();
    assert!(health.get("damaged").is_none(), "{health}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_token_from_a_file_is_in_no_command_line_or_environment() {
    const SECRET: &str = "from-a-file-7c1e";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    // Readable by others: refused, naming the fix.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = std::process::Command::new(crate::support::WISP)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--admin-token-file")
        .arg(&file)
        .env_remove("WISP_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("chmod 600"), "{said}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let wisp = Wisp::start_with(&["--admin-token-file", file.to_str().unwrap()]);
    let anonymous = wisp.admin_get("/v1/functions").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let authorized = send(
        Method::GET,
        &wisp.admin_url("/v1/functions"),
        &[("authorization", &format!("Bearer {SECRET}"))],
        Bytes::new(),
    )
    .await;
    assert_eq!(authorized.status, StatusCode::OK, "{}", authorized.text());
    for what in ["cmdline", "environ"] {
        let shown = std::fs::read(format!("/proc/{}/{what}", wisp.pid())).unwrap();
        assert!(
            !String::from_utf8_lossy(&shown).contains(SECRET),
            "the token shows in /proc/PID/{what}"
        );
    }
}
