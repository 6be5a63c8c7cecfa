//! A WebSocket client for the tests (`tokio-tungstenite`): connect to a
//! `wisp serve`, say things, and read what comes back within bounds.

use crate::support::Wisp;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client's connection.
pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `path` with extra handshake `headers`: the
/// client, or the handshake's refusal.
pub async fn connect(
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

/// The next message, within 10 s.
pub async fn next(client: &mut Client) -> Message {
    tokio::time::timeout(Duration::from_secs(10), client.next())
        .await
        .expect("a message within 10 s")
        .expect("the connection is open")
        .expect("a message, not an error")
}

/// The next message, which must be text.
pub async fn next_text(client: &mut Client) -> String {
    match next(client).await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// The close the host sent: its code and reason.
pub async fn closed_with(client: &mut Client) -> (CloseCode, String) {
    loop {
        match next(client).await {
            Message::Close(Some(frame)) => return (frame.code, frame.reason.to_string()),
            Message::Close(None) => panic!("a close without a code"),
            _ => {}
        }
    }
}

/// Sends `text`.
pub async fn say(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.expect("sent");
}

/// A chat client of the chat template at `path`, past its welcome.
pub async fn join_chat(wisp: &Wisp, path: &str) -> Client {
    let (mut client, _) = connect(wisp, path, &[]).await.expect("connects");
    let welcome = next_text(&mut client).await;
    assert!(welcome.starts_with("welcome to the lobby"), "{welcome}");
    client
}
