//! Async calls end to end against a real `wisp serve`: `Prefer:
//! respond-async` gets a `202` at once, the call runs in the background and
//! its result is polled, retried, dead-lettered, called back, and kept
//! across a `kill -9`.

use crate::support::{Response, Wisp, accept, eventually, finish, finished, send, start_slow};
use crate::upstream::Upstream;
use bytes::Bytes;
use http::{Method, StatusCode};
use std::time::Duration;
use wisp_test_artifacts as artifacts;

const ASYNC: (&str, &str) = ("prefer", "respond-async");

fn header<'a>(call: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    call["response"]["headers"]
        .as_array()?
        .iter()
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].as_str())
}

#[tokio::test]
async fn an_async_request_gets_202_at_once_and_its_result_is_polled() {
    let wisp = Wisp::start();
    wisp.deploy_ok("echo", artifacts::ECHO_COMPONENT, "route=/echo&async=on")
        .await;
    let id = accept(
        &wisp,
        "/echo/order?n=1",
        &[("x-custom", "kept")],
        "the body",
    )
    .await;
    let call = finished(&wisp, &id, Duration::from_secs(20)).await;
    assert_eq!(call["state"], "done", "{call}");
    assert_eq!(call["function"], "echo");
    assert_eq!(call["attempts"], 1);
    assert_eq!(call["response"]["status"], 200);
    assert_eq!(call["response"]["body"], "the body", "{call}");
    assert_eq!(header(&call, "x-echo-method"), Some("POST"));
    assert_eq!(header(&call, "x-echo-path"), Some("/echo/order?n=1"));
    assert_eq!(header(&call, "x-echo-header-x-custom"), Some("kept"));
    assert_eq!(header(&call, "x-echo-header-x-wisp-trigger"), Some("async"));
    assert_eq!(
        header(&call, "x-echo-header-x-wisp-call-id"),
        Some(id.as_str())
    );
    assert_eq!(header(&call, "x-echo-header-prefer"), None, "{call}");
    assert_eq!(header(&call, "x-echo-header-x-wisp-attempt"), Some("1"));

    let shown = wisp.cli(&["calls", "get", &id]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("(done)") && shown.contains("the body"),
        "{shown}"
    );
    let listed = wisp.cli(&["calls", "ls", "--function", "echo", "--state", "done"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(&id), "{listed}");
    let none = wisp.admin_get("/v1/calls?state=failed").await.json();
    assert_eq!(none["calls"].as_array().unwrap().len(), 0, "{none}");
    let runs = wisp
        .metric(
            "wisp_trigger_runs_total",
            &[("function", "echo"), ("trigger", "async")],
        )
        .await;
    assert_eq!(runs, 1.0);
    assert!(wisp.log().contains("trigger=\"async\""), "{}", wisp.log());
    let unknown = wisp.admin_get("/v1/calls/00000000000000000000").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["kind"], "no-such-call");
}

#[tokio::test]
async fn a_failing_call_is_retried_with_backoff_then_dead_lettered() {
    let wisp = Wisp::start_with(&["--retries", "2", "--retry-backoff", "200ms"]);
    wisp.deploy_ok(
        "hostile",
        artifacts::HOSTILE_COMPONENT,
        "route=/hostile&async=on",
    )
    .await;
    let id = accept(&wisp, "/hostile/panic", &[], "").await;
    let call = finished(&wisp, &id, Duration::from_secs(30)).await;
    assert_eq!(call["state"], "failed", "{call}");
    assert_eq!(call["attempts"], 3, "one try and two retries: {call}");
    assert_eq!(call["response"]["status"], 500);
    let error = call["error"].as_str().unwrap();
    assert!(error.starts_with("attempt 3 answered 500"), "{error}");
    let waited =
        call["finished_unix_ms"].as_u64().unwrap() - call["accepted_unix_ms"].as_u64().unwrap();
    assert!(
        waited >= 600,
        "backoff of 200 ms then 400 ms, but done in {waited} ms"
    );
    let runs = wisp
        .metric(
            "wisp_trigger_runs_total",
            &[("function", "hostile"), ("trigger", "async")],
        )
        .await;
    assert_eq!(runs, 3.0);
    let usage = wisp.cli(&["usage", "hostile", "--json"]);
    let usage: serde_json::Value = serde_json::from_slice(&usage.stdout).unwrap();
    assert_eq!(usage["usage"]["runs"]["async"], 3, "{usage}");
    assert_eq!(usage["usage"]["runs"]["http"], 0, "{usage}");
    let logs = wisp.cli(&["logs", "hostile"]);
    let logs = String::from_utf8_lossy(&logs.stdout);
    let panics = logs
        .lines()
        .filter(|l| l.contains(" v1 async ") && l.contains("panicked on purpose"))
        .count();
    assert_eq!(panics, 3, "each attempt's panic, with its trigger:\n{logs}");
    let failed = wisp
        .admin_get("/v1/calls?state=failed&function=hostile")
        .await
        .json();
    assert_eq!(failed["calls"][0]["id"], id.as_str(), "{failed}");
}

#[tokio::test]
async fn a_finished_call_is_posted_to_an_allowed_callback_and_a_denied_one_is_refused() {
    let receiver = Upstream::start("thanks").await;
    let wisp = Wisp::start();
    let allowed = format!("http://{}", receiver.addr);
    wisp.deploy_ok(
        "echo",
        artifacts::ECHO_COMPONENT,
        &format!("route=/echo&async=on&allow-outbound={allowed}"),
    )
    .await;
    let callback = format!("{allowed}/hooks/done");
    let id = accept(&wisp, "/echo/x", &[("x-wisp-callback", &callback)], "ping").await;
    assert!(
        eventually(Duration::from_secs(20), async || receiver.hits() == 1).await,
        "no callback arrived"
    );
    let posted = &receiver.received()[0];
    assert_eq!(posted.method, Method::POST);
    assert_eq!(posted.path, "/hooks/done");
    assert_eq!(posted.headers["x-wisp-call-id"], id.as_str());
    let result: serde_json::Value = serde_json::from_slice(&posted.body).unwrap();
    assert_eq!(result["id"], id.as_str());
    assert_eq!(result["state"], "done");
    assert_eq!(result["response"]["body"], "ping");
    assert!(
        eventually(Duration::from_secs(10), async || {
            let call = wisp.admin_get(&format!("/v1/calls/{id}")).await.json();
            call["callback"]["outcome"] == "delivered (200 OK)"
        })
        .await,
        "{}",
        wisp.admin_get(&format!("/v1/calls/{id}")).await.text()
    );

    let denied: Response = send(
        Method::POST,
        &wisp.url("/echo/x"),
        &[ASYNC, ("x-wisp-callback", "http://127.0.0.1:9/elsewhere")],
        Bytes::new(),
    )
    .await;
    assert_eq!(denied.status, StatusCode::BAD_REQUEST, "{}", denied.text());
    let message = denied.error();
    assert!(message.contains("outbound allow-list"), "{message}");
    let calls = wisp.admin_get("/v1/calls").await.json();
    assert_eq!(
        calls["calls"].as_array().unwrap().len(),
        1,
        "nothing stored for the refused call: {calls}"
    );
}

#[tokio::test]
async fn no_call_is_lost_across_a_kill_9_with_200_pending() {
    let mut wisp = Wisp::start_with(&["--async-workers", "2"]);
    wisp.deploy_ok("sleep", artifacts::SLEEP_COMPONENT, "route=/sleep&async=on")
        .await;
    let mut ids = Vec::new();
    for batch in 0..10 {
        let sends = (0..20).map(|_| accept(&wisp, "/sleep?ms=100", &[], ""));
        ids.extend(futures_util::future::join_all(sends).await);
        assert_eq!(ids.len(), (batch + 1) * 20);
    }
    let done_before = wisp
        .admin_get("/v1/calls?state=done&limit=1000")
        .await
        .json()["calls"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        done_before < 200,
        "all ran before the kill; nothing was pending"
    );
    wisp.kill9();
    let wisp = wisp.restart_stopped();
    let mut done = 0;
    let all_done = eventually(Duration::from_secs(60), async || {
        let list = wisp
            .admin_get("/v1/calls?state=done&limit=1000")
            .await
            .json();
        done = list["calls"].as_array().unwrap().len();
        done == 200
    })
    .await;
    assert!(
        all_done,
        "{done} of 200 calls done after the restart ({done_before} before the kill)"
    );
    for id in &ids {
        let call = wisp.admin_get(&format!("/v1/calls/{id}")).await.json();
        assert_eq!(call["state"], "done", "{call}");
        assert_eq!(call["response"]["body"], "slept 100 ms\n");
    }
}

/// Accepts an async call of `path` with `body`; returns its id.
async fn accept_bytes(wisp: &Wisp, path: &str, body: Bytes) -> String {
    let response = send(Method::POST, &wisp.url(path), &[ASYNC], body).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
    response.header("x-wisp-call-id").unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn results_are_kept_whole_up_to_a_mebibyte_4xx_is_done_and_calls_expire() {
    let wisp = Wisp::start_with(&["--async-workers", "1", "--call-retention", "1s"]);
    wisp.deploy_ok("echo", artifacts::ECHO_COMPONENT, "route=/echo&async=on")
        .await;
    wisp.deploy_ok("sleep", artifacts::SLEEP_COMPONENT, "route=/sleep&async=on")
        .await;
    wisp.deploy_ok("gone", artifacts::ECHO_COMPONENT, "route=/gone&async=on")
        .await;
    wisp.deploy_ok(
        "picky",
        artifacts::SDK_FETCH_COMPONENT,
        "route=/picky&async=on",
    )
    .await;

    // 2 MiB of bytes that are not UTF-8 come back as base64, cut at 1 MiB.
    let binary = Bytes::from(vec![0xff_u8; 2 << 20]);
    let id = accept_bytes(&wisp, "/echo", binary).await;
    let call = finished(&wisp, &id, Duration::from_secs(30)).await;
    let response = &call["response"];
    assert_eq!(response["body_bytes"], 2 << 20, "{response:?}");
    assert_eq!(response["truncated"], true);
    assert!(response["body"].is_null());
    let kept = response["body_base64"].as_str().unwrap();
    use base64::Engine as _;
    let kept = base64::engine::general_purpose::STANDARD
        .decode(kept)
        .unwrap();
    assert_eq!(kept.len(), 1 << 20);

    // A 4xx is an answer, not a failure: done, after one attempt.
    let id = accept_bytes(&wisp, "/picky", Bytes::new()).await;
    let call = finished(&wisp, &id, Duration::from_secs(30)).await;
    assert_eq!(
        (
            &call["state"],
            &call["attempts"],
            &call["response"]["status"]
        ),
        (&"done".into(), &1.into(), &400.into()),
        "{call}"
    );

    // A call to a function removed before it ran ends done, with the 404
    // it got. The one worker is busy with a slow call meanwhile.
    let slow = accept_bytes(&wisp, "/sleep?ms=2000", Bytes::new()).await;
    assert!(
        eventually(Duration::from_secs(10), async || {
            wisp.admin_get(&format!("/v1/calls/{slow}")).await.json()["state"] == "running"
        })
        .await
    );
    let orphan = accept_bytes(&wisp, "/gone", Bytes::from_static(b"x")).await;
    wisp.cli(&["rm", "gone"]);
    let call = finished(&wisp, &orphan, Duration::from_secs(30)).await;
    assert_eq!(
        (&call["state"], &call["response"]["status"]),
        (&"done".into(), &404.into()),
        "{call}"
    );
    finished(&wisp, &slow, Duration::from_secs(30)).await;

    // Past --call-retention, finished calls are deleted (the sweep runs at
    // start and every minute: a restart shows it at once).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let wisp = tokio::task::block_in_place(|| wisp.restart());
    let expired = wisp.admin_get(&format!("/v1/calls/{id}")).await;
    assert_eq!(expired.status, StatusCode::NOT_FOUND, "{}", expired.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_request_waiting_for_a_slot_goes_before_an_async_call() {
    // One slot for the function; a client may wait for it up to 30 s.
    let wisp = Wisp::start_with(&["--queue-timeout", "30s"]);
    wisp.deploy_ok(
        "sleep",
        artifacts::SLEEP_COMPONENT,
        "route=/sleep&async=on&max-concurrency=1",
    )
    .await;
    // A client request holds the slot for 3 s after its head.
    let holder = start_slow(&wisp, "/sleep?ms=3000&head=first").await;
    // An async call comes first and finds no room (its worker tries every
    // 50 ms); then a client request queues for the slot.
    let id = accept(&wisp, "/sleep?ms=10", &[], "").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = wisp.url("/sleep?ms=500");
    let waiting = tokio::spawn(async move { send(Method::GET, &url, &[], Bytes::new()).await });
    assert_eq!(finish(holder).await, "slept 3000 ms\n");
    let client = waiting.await.unwrap();
    let client_done = unix_ms();
    assert_eq!(client.status, StatusCode::OK, "{}", client.text());
    // The slot went to the client; the call ran once it was done (had the
    // call gone first, it would have started 500 ms before the client
    // request ended).
    let call = finished(&wisp, &id, Duration::from_secs(30)).await;
    assert_eq!(call["state"], "done", "{call}");
    let started = call["started_unix_ms"].as_u64().unwrap();
    assert!(
        started + 100 >= client_done,
        "the async call started at {started}, before the waiting client request ended at {client_done}"
    );
}

/// Now, in milliseconds since the Unix epoch (the clock call records use).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
