//! {{name}}: a chat room over WebSockets (a wasi:http component, WASI 0.3).
//!
//! The host holds each connection and calls this function once per batch
//! of its events, each call in a fresh instance (deploy with
//! `--websocket on --allow-outbound http://wisp.internal`). A message is
//! published to the room's channel, so every listener hears it — on every
//! host of a cluster: WebSockets, server-sent events at `/events`, and
//! long-polls at `/poll`. A client's name is kept on its connection.

use wisp_sdk::websocket::{self, Kind, Reply};
use wisp_sdk::{Error, IntoResponse, Request, RequestExt, Response};

/// The room's channel.
const ROOM: &str = "lobby";

async fn handle(mut request: Request) -> Result<Response, Error> {
    if !websocket::is_events(&request) {
        return Ok(match request.path_info() {
            "/events" => listen("stream", "text/event-stream", ": listening\n\n"),
            "/poll" => listen("response", "text/plain", "no message yet\n"),
            _ => page(),
        });
    }
    let mut name = websocket::meta(&request, "name").unwrap_or("anonymous").to_owned();
    let mut reply = Reply::new().grip();
    for event in websocket::events(&mut request).await? {
        match event.kind {
            Kind::Open => {
                reply = reply
                    .open()
                    .subscribe(ROOM)
                    .text("welcome to the lobby; /name NAME sets your name");
            }
            Kind::Text => {
                let text = String::from_utf8_lossy(&event.content).into_owned();
                match text.strip_prefix("/name ") {
                    Some(new) => {
                        name = new.trim().to_owned();
                        reply = reply.meta("name", &name).text(&format!("you are {name}"));
                    }
                    None => websocket::publish(ROOM, &format!("{name}: {text}")).await?,
                }
            }
            Kind::Close => reply = reply.close(1000, "bye"),
            _ => {}
        }
    }
    Ok(reply.into_response())
}

/// A request held open on the room: a stream of its messages, or the
/// next one.
fn listen(hold: &str, content_type: &str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", content_type.parse().expect("a header"));
    headers.insert("grip-hold", hold.parse().expect("a header"));
    headers.insert("grip-channel", ROOM.parse().expect("a header"));
    response
}

/// A page that joins the room from a browser.
fn page() -> Response {
    let mut response = PAGE.into_response();
    response
        .headers_mut()
        .insert("content-type", "text/html; charset=utf-8".parse().expect("a header"));
    response
}

const PAGE: &str = r#"<!doctype html>
<title>{{name}}</title>
<pre id="log"></pre>
<form id="say"><input id="text" autofocus placeholder="say something, or /name NAME"></form>
<script>
const url = location.href.replace(/^http/, "ws").replace(/\/$/, "");
const socket = new WebSocket(url);
const log = (line) => { document.getElementById("log").textContent += line + "\n"; };
socket.onmessage = (event) => log(event.data);
socket.onclose = (event) => log(`(closed: ${event.code} ${event.reason})`);
document.getElementById("say").onsubmit = (event) => {
  event.preventDefault();
  const text = document.getElementById("text");
  socket.send(text.value);
  text.value = "";
};
</script>
"#;

wisp_sdk::v3::export!(async handle);
