//! OpenTelemetry traces end to end: a real `wisp serve` exports over
//! OTLP/HTTP to a receiver on loopback, continuing the client's
//! `traceparent` and passing it on in outbound and chained calls.

use crate::support::{Response, Wisp, eventually, send};
use crate::upstream::Upstream;
use bytes::Bytes;
use http::Method;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status;
use prost::Message;
use std::time::Duration;
use wisp_test_artifacts as artifacts;

/// A trace id, and a span of it, a client sends in its `traceparent`.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// Every span the receiver got so far.
fn exported(receiver: &Upstream) -> Vec<Span> {
    receiver
        .received()
        .iter()
        .filter(|r| r.path == "/v1/traces")
        .flat_map(|r| {
            let export = ExportTraceServiceRequest::decode(r.body.clone()).expect("OTLP protobuf");
            export
                .resource_spans
                .into_iter()
                .flat_map(|rs| rs.scope_spans)
                .flat_map(|ss| ss.spans)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?;
    match value.value.as_ref()? {
        Value::StringValue(text) => Some(text.clone()),
        Value::IntValue(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// The spans of trace `trace_id`, once `count` have arrived.
async fn trace_of(receiver: &Upstream, trace_id: &str, count: usize) -> Vec<Span> {
    let mut spans = Vec::new();
    let arrived = eventually(Duration::from_secs(20), async || {
        spans = exported(receiver)
            .into_iter()
            .filter(|s| hex(&s.trace_id) == trace_id)
            .collect();
        spans.len() >= count
    })
    .await;
    let names: Vec<_> = spans.iter().map(|s| s.name.clone()).collect();
    assert!(
        arrived,
        "{count} spans of trace {trace_id} expected, got {names:?}"
    );
    spans
}

/// Sends a `GET` of `path` as a client would within trace `trace_id`, under
/// its span `parent` (a `traceparent` header).
async fn get_in_trace(wisp: &Wisp, path: &str, trace_id: &str, parent: &str) -> Response {
    let traceparent = format!("00-{trace_id}-{parent}-01");
    send(
        Method::GET,
        &wisp.url(path),
        &[("traceparent", &traceparent)],
        Bytes::new(),
    )
    .await
}

fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span `{name}` in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

/// A trace receiver, an upstream answering `from upstream`, and a host
/// exporting its spans to the receiver.
async fn traced_host() -> (Upstream, Upstream, Wisp) {
    let receiver = Upstream::start("").await;
    let upstream = Upstream::start("from upstream").await;
    let endpoint = format!("http://{}", receiver.addr);
    let wisp = Wisp::start_with_env(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "wisp-under-test"),
        ],
    );
    (receiver, upstream, wisp)
}

#[tokio::test]
async fn a_request_is_traced_from_its_traceparent_through_its_guest_to_its_outbound_call() {
    let (receiver, upstream, wisp) = traced_host().await;
    wisp.deploy_ok(
        "front",
        artifacts::SDK_FETCH_COMPONENT,
        &format!(
            "route=/front&allow-outbound=http://{}&allow-outbound=http://hello.wisp.internal",
            upstream.addr
        ),
    )
    .await;
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;

    let (trace_id, parent) = (TRACE, PARENT);
    let out = format!("/front?url=http://{}/out", upstream.addr);
    let response = get_in_trace(&wisp, &out, trace_id, parent).await;
    assert_eq!(
        response.json()["body"],
        "from upstream",
        "{}",
        response.text()
    );

    // The upstream was called within the same trace.
    let outbound = upstream.received()[0].headers["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        outbound.starts_with(&format!("00-{trace_id}-")),
        "{outbound}"
    );

    let spans = trace_of(&receiver, trace_id, 5).await;
    let server = named(&spans, "GET /front");
    assert_eq!(server.kind(), SpanKind::Server);
    assert_eq!(hex(&server.parent_span_id), parent);
    assert_eq!(attribute(server, "faas.name").as_deref(), Some("front"));
    assert_eq!(attribute(server, "faas.version").as_deref(), Some("1"));
    assert_eq!(attribute(server, "faas.trigger").as_deref(), Some("http"));
    assert_eq!(
        attribute(server, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attribute(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attribute(server, "http.route").as_deref(), Some("/front"));
    assert_eq!(attribute(server, "url.path").as_deref(), Some("/front"));
    assert_ne!(
        server.status.as_ref().map(|s| s.code),
        Some(status::StatusCode::Error as i32),
        "a 200 is not an error"
    );
    for child in ["dispatch", "instantiate", "guest"] {
        assert_eq!(
            named(&spans, child).parent_span_id,
            server.span_id,
            "{child}"
        );
    }
    let client = named(&spans, "GET");
    assert_eq!(client.kind(), SpanKind::Client);
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(
        attribute(client, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(
        outbound.contains(&hex(&client.span_id)),
        "the upstream's parent is the client span: {outbound}"
    );
    assert_eq!(
        attribute(client, "url.full"),
        Some(format!("http://{}/out", upstream.addr))
    );
    assert!(
        wisp.log().contains(&format!("trace_id=\"{trace_id}\"")),
        "the access log carries the trace id:\n{}",
        wisp.log()
    );

    // A guest's log lines carry the trace id too.
    wisp.deploy_ok("noisy", artifacts::HOSTILE_COMPONENT, "route=/noisy")
        .await;
    get_in_trace(&wisp, "/noisy/stderr?kib=1", trace_id, parent).await;
    let logs = wisp.cli(&["logs", "noisy", "--json"]);
    let logs = String::from_utf8_lossy(&logs.stdout);
    let first: serde_json::Value = serde_json::from_str(logs.lines().next().unwrap()).unwrap();
    assert_eq!(first["trace_id"], trace_id, "{logs}");

    // A 5xx marks its server span as an error.
    let failed_trace = "5b8efff798038103d269b633813fc60c";
    get_in_trace(&wisp, "/noisy/panic", failed_trace, "eee19b7ec3c1b174").await;
    let failed = trace_of(&receiver, failed_trace, 4).await;
    let failed = named(&failed, "GET /noisy");
    assert_eq!(
        attribute(failed, "http.response.status_code").as_deref(),
        Some("500")
    );
    assert_eq!(
        failed.status.as_ref().map(|s| s.code),
        Some(status::StatusCode::Error as i32),
        "a 5xx is an error: {failed:?}"
    );

    // A chained call joins the same trace: the callee's server span is a
    // child of the caller's client span.
    let chained_trace = "0af7651916cd43dd8448eb211c80319c";
    let chain = "/front?url=http://hello.wisp.internal/";
    get_in_trace(&wisp, chain, chained_trace, "b7ad6b7169203331").await;
    let spans = trace_of(&receiver, chained_trace, 9).await;
    let callee = named(&spans, "GET /hello");
    assert_eq!(attribute(callee, "faas.trigger").as_deref(), Some("chain"));
    let client = named(&spans, "GET");
    assert_eq!(callee.parent_span_id, client.span_id);

    // An async call's run, later and in the background, continues the
    // trace of the request that queued it.
    wisp.deploy_ok("later", artifacts::ECHO_COMPONENT, "route=/later&async=on")
        .await;
    let async_trace = "3c5d1f0e2b4a69788796a5b4c3d2e1f0";
    let id = crate::support::accept(
        &wisp,
        "/later",
        &[(
            "traceparent",
            &format!("00-{async_trace}-1a2b3c4d5e6f7081-01"),
        )],
        "",
    )
    .await;
    crate::support::finished(&wisp, &id, Duration::from_secs(30)).await;
    let spans = trace_of(&receiver, async_trace, 4).await;
    let run = named(&spans, "POST /later");
    assert_eq!(attribute(run, "faas.trigger").as_deref(), Some("async"));
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_exported_and_logs_carry_no_trace_id() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    get_in_trace(&wisp, "/hello", TRACE, PARENT).await;
    assert!(
        eventually(Duration::from_secs(5), async || wisp
            .log()
            .contains("wisp::access"))
        .await
    );
    let log = wisp.log();
    assert!(!log.contains("trace_id="), "{log}");
    assert!(!log.contains("request{"), "spans never show in logs: {log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_with_the_sdk_disabled_or_no_exporter_receives_nothing() {
    let receiver = Upstream::start("").await;
    let endpoint = format!("http://{}", receiver.addr);
    for off in [
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ] {
        let mut wisp = Wisp::start_with_env(
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
                off,
            ],
        );
        wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
            .await;
        get_in_trace(&wisp, "/hello", TRACE, PARENT).await;
        assert!(!wisp.log().contains("exporting traces"), "{off:?}");
        // A graceful stop flushes every span an exporter holds.
        let stopped = tokio::task::block_in_place(|| wisp.terminate());
        assert!(stopped.success(), "{}", wisp.log());
        assert!(
            receiver.received().is_empty(),
            "{off:?}: the receiver got {} requests",
            receiver.received().len()
        );
    }
}

#[tokio::test]
async fn a_0_3_guest_is_traced_and_its_client_passes_the_traceparent_on() {
    let (receiver, upstream, wisp) = traced_host().await;
    wisp.deploy_ok(
        "s",
        artifacts::SERVICE3_COMPONENT,
        &format!(
            "route=/s&allow-outbound=http://{}&allow-outbound=http://hello.wisp.internal",
            upstream.addr
        ),
    )
    .await;
    wisp.deploy_ok("hello", artifacts::HELLO3_COMPONENT, "route=/hello")
        .await;
    let trace_id = "6e0c63257de34c92bf9efcd03927272e";
    let out = format!("/s/fetch?http://{}/out", upstream.addr);
    let response = get_in_trace(&wisp, &out, trace_id, PARENT).await;
    assert_eq!(response.text(), "status 200");
    let outbound = upstream.received()[0].headers["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    let spans = trace_of(&receiver, trace_id, 5).await;
    let server = named(&spans, "GET /s");
    assert_eq!(hex(&server.parent_span_id), PARENT);
    assert_eq!(named(&spans, "guest").parent_span_id, server.span_id);
    let client = named(&spans, "GET");
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(
        outbound,
        format!("00-{trace_id}-{}-01", hex(&client.span_id)),
        "the upstream's parent is the 0.3 client's span"
    );

    // A chained call from a 0.3 guest to a 0.3 callee joins the trace.
    let chained_trace = "d4cda95b652f4a1592b449d5929fda1b";
    let chain = "/s/fetch?http://hello.wisp.internal/";
    let chained = get_in_trace(&wisp, chain, chained_trace, PARENT).await;
    assert_eq!(chained.text(), "status 200");
    let spans = trace_of(&receiver, chained_trace, 9).await;
    let callee = named(&spans, "GET /hello");
    assert_eq!(attribute(callee, "faas.trigger").as_deref(), Some("chain"));
    assert_eq!(callee.parent_span_id, named(&spans, "GET").span_id);
}
