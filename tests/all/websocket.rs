//! WebSockets held by the host, their function called once per batch of
//! events in a fresh sandbox (Pushpin's WebSocket-over-HTTP): a real
//! client (`tokio-tungstenite`) against a real `wisp serve`, and the
//! `websocket` guest, a handler written for that protocol.

use crate::support::{Wisp, eventually, send, start_slow};
use crate::ws_client::{Client, closed_with, connect, next, next_text, say};
use bytes::Bytes;
use futures_util::SinkExt;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use wisp_test_artifacts as artifacts;

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

async fn open(wisp: &Wisp) -> Client {
    let (mut client, _) = connect(wisp, "/ws", &[]).await.expect("connects");
    let greeting = next_text(&mut client).await;
    assert!(greeting.starts_with("welcome"), "{greeting}");
    client
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_keeps_state_across_messages_each_in_a_fresh_sandbox() {
    let wisp = websocket_host("", &[]).await;
    // A client poses as the gateway: its `Meta-*` and `Connection-Id`
    // never reach the function; the host's own `Connection-Id` does.
    let (mut client, handshake) = connect(
        &wisp,
        "/ws",
        &[
            ("meta-count", "99"),
            ("connection-id", "forged"),
            ("grip-sig", "forged"),
        ],
    )
    .await
    .expect("connects");
    assert_eq!(handshake.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(handshake.headers()["x-websocket-guest"], "accepted");
    assert_eq!(
        next_text(&mut client).await,
        "welcome connection-id=true meta-count=none grip-sig=none"
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
    // The function hears that the host closed it: two OPENs, then that
    // CLOSE, are its three runs so far.
    assert_eq!(wisp.usage("ws", 3).await["runs"]["websocket"], 3);
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

/// A host serving the chat template at `/chat` (it may publish).
async fn chat_host(flags: &[&str]) -> Wisp {
    let wisp = Wisp::start_with(flags);
    wisp.deploy_ok(
        "chat",
        artifacts::CHAT_COMPONENT,
        "route=/chat&websocket=on&allow-outbound=http://wisp.internal",
    )
    .await;
    wisp
}

/// Publishes `body` through the admin API; its JSON answer.
async fn publish(wisp: &Wisp, body: &str) -> serde_json::Value {
    let response = send(
        Method::POST,
        &wisp.admin_url("/v1/functions/chat/publish"),
        &[("content-type", "application/json")],
        Bytes::from(body.to_owned()),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json()
}

/// Reads a held stream until its text holds `needle` (10 s at most).
async fn stream_until(stream: &mut http::Response<hyper::body::Incoming>, needle: &str) -> String {
    let mut text = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !text.contains(needle) {
            let Some(Ok(frame)) = stream.body_mut().frame().await else {
                break;
            };
            if let Some(data) = frame.data_ref() {
                text.push_str(&String::from_utf8_lossy(data));
            }
        }
    })
    .await;
    assert!(
        read.is_ok() && text.contains(needle),
        "{needle:?} never came: {text:?}"
    );
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_room_reaches_websockets_streams_and_long_polls_through_publish() {
    let wisp = chat_host(&[]).await;
    let mut ann = crate::ws_client::join_chat(&wisp, "/chat").await;
    let mut bob = crate::ws_client::join_chat(&wisp, "/chat").await;
    // A client's copy of what only the host says never reaches a call: a
    // forged chain depth would make every publish of cat's refused.
    let (mut cat, _) = connect(
        &wisp,
        "/chat",
        &[
            ("x-wisp-chain-depth", "4294967295"),
            ("x-wisp-trigger", "cron"),
            ("x-wisp-caller", "other"),
        ],
    )
    .await
    .expect("connects");
    next_text(&mut cat).await;
    // Another function's room of the same name is its own.
    wisp.deploy_ok(
        "other",
        artifacts::CHAT_COMPONENT,
        "route=/other&websocket=on&allow-outbound=http://wisp.internal",
    )
    .await;
    let mut stranger = crate::ws_client::join_chat(&wisp, "/other").await;
    let mut stream = start_slow(&wisp, "/chat/events").await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    assert!(
        stream.headers().get("grip-hold").is_none(),
        "Grip-* is the host's"
    );
    stream_until(&mut stream, ": listening").await;
    let poll_url = wisp.url("/chat/poll");
    let poll = tokio::spawn(async move { send(Method::GET, &poll_url, &[], Bytes::new()).await });
    // Every listener is subscribed once a publish reaches five: three
    // sockets, the stream and the long-poll (a comment only streams see).
    let marker = r#"{"items": [{"channel": "lobby", "http-stream": {"content": ": marker\n\n"}}]}"#;
    assert!(
        eventually(Duration::from_secs(10), async || {
            publish(&wisp, marker).await["delivered"] == 5
        })
        .await,
        "the long-poll never subscribed"
    );
    // A name is kept on its connection; a message reaches everyone.
    say(&mut ann, "/name ann").await;
    assert_eq!(next_text(&mut ann).await, "you are ann");
    say(&mut ann, "hello").await;
    for client in [&mut ann, &mut bob, &mut cat] {
        assert_eq!(next_text(client).await, "ann: hello");
    }
    say(&mut cat, "me too").await;
    for client in [&mut ann, &mut bob, &mut cat] {
        assert_eq!(next_text(client).await, "anonymous: me too");
    }
    say(&mut stranger, "elsewhere").await;
    assert_eq!(
        next_text(&mut stranger).await,
        "anonymous: elsewhere",
        "the other room heard nothing of chat's"
    );
    stream_until(&mut stream, "data: ann: hello\n\n").await;
    let polled = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the long-poll answers")
        .unwrap();
    assert_eq!(polled.status, StatusCode::OK);
    assert_eq!(polled.text(), "ann: hello");
    assert!(polled.header("grip-hold").is_none());
    // Each message ran the function in a fresh sandbox, as trigger
    // `websocket`; the publish went through its allow-list.
    let usage = wisp.usage("chat", 5).await;
    assert!(usage["runs"]["websocket"].as_u64() >= Some(5), "{usage}");
    // Pushpin's own publish endpoint works unchanged, and a `ws-message`
    // close closes every socket with its code.
    let pushpin = send(
        Method::POST,
        &wisp.admin_url("/v1/functions/chat/publish/"),
        &[("content-type", "application/json")],
        Bytes::from_static(br#"{"items": [{"channel": "lobby", "ws-message": {"action": "close", "code": 4002, "reason": "room closed"}}]}"#),
    )
    .await;
    assert_eq!(pushpin.text(), "Published\n");
    for client in [&mut ann, &mut bob, &mut cat] {
        assert_eq!(
            closed_with(client).await,
            (CloseCode::from(4002), "room closed".to_owned())
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_publishes_only_through_its_allow_list() {
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "chat",
        artifacts::CHAT_COMPONENT,
        "route=/chat&websocket=on",
    )
    .await;
    let mut ann = crate::ws_client::join_chat(&wisp, "/chat").await;
    say(&mut ann, "hello").await;
    let (code, _) = closed_with(&mut ann).await;
    assert_eq!(code, CloseCode::Error, "its publish was refused");
    assert!(
        wisp.log()
            .contains("destination is not in the function's allow-list"),
        "{}",
        wisp.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_token_publishes_and_does_nothing_else() {
    let wisp = Wisp::start_with(&["--admin-token", "adm1n", "--publish-token", "pub1ish"]);
    let item =
        Bytes::from_static(br#"{"items": [{"channel": "news", "ws-message": {"content": "x"}}]}"#);
    let post = async |path: &str, token: Option<&str>, body: Bytes| {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_str()));
        }
        send(Method::POST, &wisp.admin_url(path), &headers, body).await
    };
    // Deploying takes the admin token.
    let wasm = Bytes::from(std::fs::read(artifacts::CHAT_COMPONENT).unwrap());
    let deployed = send(
        Method::PUT,
        &wisp.admin_url("/v1/functions/chat?route=/chat&websocket=on"),
        &[("authorization", "Bearer adm1n")],
        wasm,
    )
    .await;
    assert!(deployed.status.is_success(), "{}", deployed.text());
    let publish = "/v1/functions/chat/publish";
    let published = post(publish, Some("pub1ish"), item.clone()).await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text());
    assert_eq!(published.json()["items"], 1);
    assert_eq!(
        post("/v1/functions/chat/publish/", Some("pub1ish"), item.clone())
            .await
            .text(),
        "Published\n"
    );
    assert_eq!(
        post(publish, Some("adm1n"), item.clone()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        post(publish, None, item.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(publish, Some("wrong"), item).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The publish token opens nothing else.
    let listed = send(
        Method::GET,
        &wisp.admin_url("/v1/functions"),
        &[("authorization", "Bearer pub1ish")],
        Bytes::new(),
    )
    .await;
    assert_eq!(listed.status, StatusCode::UNAUTHORIZED);
    let deployed = post(
        "/v1/functions/x?route=/x",
        Some("pub1ish"),
        Bytes::from_static(b"\0asm"),
    )
    .await;
    assert_eq!(deployed.status, StatusCode::UNAUTHORIZED);
    // A bad publish is refused whole, with the reason.
    let bad = post(
        publish,
        Some("pub1ish"),
        Bytes::from_static(
            br#"{"items": [{"channel": "ok", "ws-message": {"content": "x"}}, {"channel": ""}]}"#,
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.error().contains("item 1"), "{}", bad.error());
    // A publish names a deployed function.
    let nowhere = post(
        "/v1/functions/nobody/publish",
        Some("pub1ish"),
        item_again(),
    )
    .await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
}

fn item_again() -> Bytes {
    Bytes::from_static(br#"{"items": [{"channel": "news", "ws-message": {"content": "x"}}]}"#)
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_are_signed_with_the_functions_grip_key() {
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: String,
        exp: u64,
    }
    let wisp = websocket_host("", &[]).await;
    let set = tokio::task::block_in_place(|| {
        wisp.cli_with_stdin(&["secret", "set", "ws", "grip-key"], b"k3y-for-grip\n")
    });
    assert!(set.status.success(), "{set:?}");
    let (mut client, _) = connect(&wisp, "/ws", &[]).await.expect("connects");
    let greeting = next_text(&mut client).await;
    let token = greeting
        .split("grip-sig=")
        .nth(1)
        .filter(|token| *token != "none")
        .unwrap_or_else(|| panic!("the call was not signed: {greeting}"));
    let mut validation = jsonwebtoken::Validation::default();
    validation.set_issuer(&["wisp"]);
    let claims = jsonwebtoken::decode::<Claims>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(b"k3y-for-grip"),
        &validation,
    )
    .expect("signed with the function's grip-key")
    .claims;
    assert_eq!(claims.iss, "wisp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now..=now + 3600).contains(&claims.exp), "{}", claims.exp);
    assert!(
        jsonwebtoken::decode::<Claims>(
            token,
            &jsonwebtoken::DecodingKey::from_secret(b"another key"),
            &validation
        )
        .is_err()
    );
}
