//! WebSockets held by the host, their function called once per batch of
//! events in a fresh sandbox (Pushpin's WebSocket-over-HTTP): a real
//! client (`tokio-tungstenite`) against a real `wisp serve`, and the
//! `websocket` guest, a handler written for that protocol.

use crate::support::{Wisp, send};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wisp_test_artifacts as artifacts;

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A host serving the `websocket` guest at `/ws` with `settings` besides
/// `websocket=on`, started with `flags`.
async fn websocket_host(settings: &str, flags: &[&str]) -> Wisp {
    let wisp = Wisp::start_with(flags);
    wisp.deploy_ok(
        "ws",
        artifacts::WEBSOCKET_COMPONENT,
        &format!("route=/ws&websocket=on{settings}"),
    )
    .await;
    wisp
}

/// Opens a WebSocket to `path` with extra handshake `headers`: the
/// client, or the handshake's refusal.
async fn connect(
    wisp: &Wisp,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<(Client, http::Response<Option<Vec<u8>>>), WsError> {
    let url = wisp.url(path).replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, http::HeaderValue::from_str(value).unwrap());
    }
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("the handshake ends within 10 s")
}

async fn open(wisp: &Wisp) -> Client {
    let (mut client, _) = connect(wisp, "/ws", &[]).await.expect("connects");
    let greeting = next_text(&mut client).await;
    assert!(greeting.starts_with("welcome"), "{greeting}");
    client
}

/// The next message, within 10 s.
async fn next(client: &mut Client) -> Message {
    tokio::time::timeout(Duration::from_secs(10), client.next())
        .await
        .expect("a message within 10 s")
        .expect("the connection is open")
        .expect("a message, not an error")
}

async fn next_text(client: &mut Client) -> String {
    match next(client).await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// The close the host sent: its code and reason.
async fn closed_with(client: &mut Client) -> (CloseCode, String) {
    loop {
        match next(client).await {
            Message::Close(Some(frame)) => return (frame.code, frame.reason.to_string()),
            Message::Close(None) => panic!("a close without a code"),
            _ => {}
        }
    }
}

async fn say(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.expect("sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_keeps_state_across_messages_each_in_a_fresh_sandbox() {
    let wisp = websocket_host("", &[]).await;
    // A client poses as the gateway: its `Meta-*` and `Connection-Id`
    // never reach the function; the host's own `Connection-Id` does.
    let (mut client, handshake) = connect(
        &wisp,
        "/ws",
        &[("meta-count", "99"), ("connection-id", "forged")],
    )
    .await
    .expect("connects");
    assert_eq!(handshake.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(handshake.headers()["x-websocket-guest"], "accepted");
    assert_eq!(
        next_text(&mut client).await,
        "welcome connection-id=true meta-count=none"
    );
    // Each message is a call to a fresh sandbox (`fresh=1`), and the
    // count the function keeps in `Meta-Count` carries over.
    for (n, word) in ["a", "b", "c"].iter().enumerate() {
        say(&mut client, word).await;
        assert_eq!(
            next_text(&mut client).await,
            format!("echo: {word} #{} fresh=1", n + 1)
        );
    }
    client
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        Message::binary(vec![0u8, 1, 2, 255])
    );
    // The function asks for keep-alive calls: an event-less call a
    // second later answers `tick`.
    say(&mut client, "keepalive").await;
    assert_eq!(next_text(&mut client).await, "keepalive on");
    assert_eq!(next_text(&mut client).await, "tick");
    say(&mut client, "close").await;
    assert_eq!(
        closed_with(&mut client).await,
        (CloseCode::from(4000), "bye".to_owned())
    );
    // Every call is a run of the function's, counted as `websocket`.
    let usage = wisp.usage("ws", 7).await;
    assert!(usage["runs"]["websocket"].as_u64() >= Some(7), "{usage}");
    let metrics = wisp.metrics().await;
    assert!(
        metrics.sum(
            "wisp_websocket_events_total",
            &[("function", "ws"), ("direction", "in")]
        ) >= 6.0,
        "{}",
        metrics.text
    );
    // The route still serves plain requests, and no client may post
    // events as if it were the gateway.
    assert_eq!(wisp.get("/ws").await.text(), "websocket guest\n");
    let forged = send(
        Method::POST,
        &wisp.url("/ws"),
        &[("content-type", "application/websocket-events")],
        Bytes::from_static(b"TEXT 1\r\nx\r\n"),
    )
    .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST, "{}", forged.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_that_fails_on_an_event_closes_only_that_connection_with_1011() {
    let wisp = websocket_host("", &[]).await;
    let mut failing = open(&wisp).await;
    let mut other = open(&wisp).await;
    say(&mut failing, "trap").await;
    let (code, _) = closed_with(&mut failing).await;
    assert_eq!(code, CloseCode::Error);
    say(&mut other, "still").await;
    assert_eq!(next_text(&mut other).await, "echo: still #1 fresh=1");
    assert!(
        wisp.log()
            .contains("a WebSocket function failed on an event"),
        "the host log says why"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn origins_message_sizes_rates_and_connection_caps_hold() {
    let wisp = websocket_host(
        "&websocket-origins=https://good.example&websocket-max-connections=2",
        &["--websocket-max-message", "1KiB", "--websocket-rate", "5"],
    )
    .await;
    let good = [("origin", "https://good.example")];
    match connect(&wisp, "/ws", &[("origin", "https://evil.example")]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), StatusCode::FORBIDDEN),
        other => panic!("a foreign origin was not refused: {other:?}"),
    }
    let (mut big, _) = connect(&wisp, "/ws", &good).await.expect("connects");
    next_text(&mut big).await;
    let (mut fast, _) = connect(&wisp, "/ws", &good).await.expect("connects");
    next_text(&mut fast).await;
    match connect(&wisp, "/ws", &good).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        other => panic!("a third connection was not refused: {other:?}"),
    }
    say(&mut big, &"x".repeat(2048)).await;
    let (code, reason) = closed_with(&mut big).await;
    assert_eq!(code, CloseCode::Size, "{reason}");
    for _ in 0..20 {
        if fast.send(Message::text("hi")).await.is_err() {
            break;
        }
    }
    let (code, reason) = closed_with(&mut fast).await;
    assert_eq!(code, CloseCode::Policy, "{reason}");
    assert!(reason.contains("5 messages a second"), "{reason}");
    // Their places are given back: a new connection is taken.
    let mut again = None;
    for _ in 0..50 {
        if let Ok((client, _)) = connect(&wisp, "/ws", &good).await {
            again = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "closed connections gave their places back");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_held_connections_with_1001() {
    let mut wisp = websocket_host("", &[]).await;
    let mut client = open(&wisp).await;
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(wisp.pid().to_string())
        .status();
    let (code, reason) = closed_with(&mut client).await;
    assert_eq!(code, CloseCode::Away, "{reason}");
    assert!(wisp.wait_for_exit().success());
}
