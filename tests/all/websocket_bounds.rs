//! What many held WebSockets cost the host: thousands of idle connections
//! in little memory, and a client that stops reading dropped rather than
//! buffered for. (The front process holds connections in either isolation
//! mode, so these run once, here.)

use crate::support::{Wisp, eventually, send};
use crate::ws_client::{Client, join_chat, next_text, say};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use wisp_test_artifacts as artifacts;

/// Raises this process's open-file limit (which the servers it starts
/// inherit) to at least `needed`, or fails saying why.
fn raise_open_files(needed: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= needed,
        "this test holds {needed} sockets, but the hard open-file limit is {hard}: raise it (ulimit -Hn)"
    );
    limit.current = Some(limit.current.unwrap_or(0).max(needed));
    setrlimit(Resource::Nofile, limit).expect("raising the open-file limit");
}

async fn connect_many(wisp: &Arc<Wisp>, count: usize) -> Vec<Client> {
    let gate = Arc::new(tokio::sync::Semaphore::new(32));
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let wisp = wisp.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                let _permit = gate.acquire().await.expect("open");
                let (mut client, _) = crate::ws_client::connect(&wisp, "/ws", &[])
                    .await
                    .expect("connects");
                next_text(&mut client).await;
                client
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(count);
    for task in tasks {
        clients.push(task.await.expect("a client"));
    }
    clients
}

#[tokio::test(flavor = "multi_thread")]
async fn five_thousand_idle_connections_are_held_in_little_memory() {
    raise_open_files(12_000);
    let wisp = Arc::new(Wisp::start_with(&[
        "--websocket-idle",
        "1h",
        "--max-websockets-per-ip",
        "10000",
    ]));
    wisp.deploy_ok(
        "ws",
        artifacts::WEBSOCKET_COMPONENT,
        "route=/ws&websocket=on&websocket-max-connections=10000",
    )
    .await;
    // The first 2,500 warm what does not grow with connections (the code,
    // the sandbox slots the handshakes used); the next 2,500 cost what
    // connections cost.
    let first = connect_many(&wisp, 2_500).await;
    let before = wisp.rss_bytes();
    let second = connect_many(&wisp, 2_500).await;
    let after = wisp.rss_bytes();
    let each = after.saturating_sub(before) / 2_500;
    // About 7 KiB in this (debug) build; 12 leaves room for the allocator.
    assert!(
        each <= 12 << 10,
        "an idle connection costs {each} bytes (RSS {before} -> {after})"
    );
    let open = wisp
        .metric("wisp_websocket_connections", &[("function", "ws")])
        .await;
    assert_eq!(open, 5_000.0);
    drop((first, second));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_is_dropped_and_the_others_hear_everything() {
    let wisp = Wisp::start_with(&["--websocket-send-timeout", "1s"]);
    wisp.deploy_ok(
        "chat",
        artifacts::CHAT_COMPONENT,
        "route=/chat&websocket=on&allow-outbound=http://wisp.internal",
    )
    .await;
    let mut slow = join_chat(&wisp, "/chat").await;
    let mut reader = join_chat(&wisp, "/chat").await;
    // 24 MiB published in 1 MiB publishes, more than loopback's socket
    // buffers hold: the slow client's queue fills and it is dropped, never
    // buffered for.
    let content = "x".repeat(60 << 10);
    let item = format!(r#"{{"channel": "lobby", "ws-message": {{"content": "{content}"}}}}"#);
    let body = format!(r#"{{"items": [{}]}}"#, vec![item; 16].join(","));
    let reading = tokio::spawn(async move {
        let mut received = 0;
        while received < 16 * 24 {
            let text = next_text(&mut reader).await;
            assert_eq!(text.len(), 60 << 10);
            received += 1;
        }
        reader
    });
    for _ in 0..24 {
        let published = send(
            Method::POST,
            &wisp.admin_url("/v1/functions/chat/publish"),
            &[("content-type", "application/json")],
            Bytes::from(body.clone()),
        )
        .await;
        assert_eq!(published.status, StatusCode::OK, "{}", published.text());
    }
    let mut reader = tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .expect("the reader heard every message")
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || {
            wisp.metrics().await.text.contains(
                r#"wisp_websocket_closes_total{function="chat",reason="slow-consumer"} 1"#,
            )
        })
        .await,
        "the slow client was not dropped"
    );
    // The room goes on for the reader.
    say(&mut reader, "still here").await;
    assert_eq!(next_text(&mut reader).await, "anonymous: still here");
    drop(slow.close(None).await);
}

/// A WebSocket to `wisp`'s `path` from source address `from`.
async fn connect_from(
    wisp: &Wisp,
    from: std::net::Ipv4Addr,
    path: &str,
) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    let url = wisp.url(path).replacen("http://", "ws://", 1);
    let server: std::net::SocketAddr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(socket.connect(server).await.unwrap());
    let (mut client, _) = tokio_tungstenite::client_async(url, stream).await?;
    next_text(&mut client).await;
    Ok(client)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_cannot_take_every_held_connection() {
    let wisp = Wisp::start_with(&["--max-websockets-per-ip", "2"]);
    wisp.deploy_ok(
        "ws",
        artifacts::WEBSOCKET_COMPONENT,
        "route=/ws&websocket=on",
    )
    .await;
    let here = std::net::Ipv4Addr::new(127, 0, 0, 1);
    let first = connect_from(&wisp, here, "/ws").await.expect("connects");
    let _second = connect_from(&wisp, here, "/ws").await.expect("connects");
    match connect_from(&wisp, here, "/ws").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(
                body.contains("this address holds its maximum of 2"),
                "{body}"
            );
        }
        other => panic!("a third connection from one address was taken: {other:?}"),
    }
    // Another address is not held back, and a place given back is taken.
    let elsewhere = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let _other = connect_from(&wisp, elsewhere, "/ws")
        .await
        .expect("another address connects");
    drop(first);
    assert!(
        eventually(Duration::from_secs(5), async || {
            connect_from(&wisp, here, "/ws").await.is_ok()
        })
        .await,
        "the place was not given back"
    );
}
