//! `/git/NAME.git/…`: each function's git remote, over git's smart HTTP
//! protocol, served by git's own `git http-backend` (a CGI program) on the
//! function's bare repository (see `build/repo.rs`). `git push` to the
//! deploy branch builds the pushed commit and deploys it before the branch
//! moves: the repository's `pre-receive` hook sends the commit's tree to
//! `POST /v1/functions/NAME/build` with a one-time push token and relays
//! the build as `remote:` lines; a failed build rejects the push.
//!
//! Git sends HTTP Basic: the password is the admin token, or a deploy
//! token of this function (any user name), as code hosts take tokens.
//! Without credentials git is answered `401` with a Basic challenge; with
//! another function's deploy token, `403`. A host without an admin token
//! (loopback only) asks for none. Pushes to one function run one at a
//! time; a push's pack is spooled to disk within the repository's quota
//! before git reads it.

use super::AdminApi;
use crate::runtime::body::{BoxError, ResponseBody, full};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Bytes of CGI headers read before giving up on them.
const MAX_CGI_HEADERS: usize = 64 << 10;
/// Bytes of git's stderr kept for the host log.
const MAX_GIT_STDERR: u64 = 16 << 10;

/// Who a push came from; a build the push started carries it (a request
/// extension), and a deploy token's push may not change the function's
/// route or settings through the tree's `wisp.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pusher {
    /// The admin token (or a host without one).
    Admin,
    /// A deploy token of the function.
    DeployToken,
}

/// One-time tokens a push's hook builds with: each allows
/// `POST /v1/functions/NAME/build` of its one function while its push runs.
#[derive(Default)]
pub(super) struct PushTokens {
    /// Token → (function, pushed with the admin token).
    live: Mutex<HashMap<String, (String, bool)>>,
}

/// A push token, withdrawn when dropped.
struct PushToken {
    tokens: Arc<PushTokens>,
    token: String,
}

impl Drop for PushToken {
    fn drop(&mut self) {
        self.tokens
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.token);
    }
}

impl PushTokens {
    fn issue(self: &Arc<Self>, name: &str, admin: bool) -> std::io::Result<PushToken> {
        let token = format!("wisp_push_{}", super::random_hex()?);
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.clone(), (name.to_owned(), admin));
        Ok(PushToken {
            tokens: self.clone(),
            token,
        })
    }

    /// Who pushed, if `token` is a live push token of function `name`.
    pub(super) fn admits(&self, token: &[u8], name: &str) -> Option<Pusher> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut admitted = None;
        for (candidate, (owner, admin)) in live.iter() {
            if super::constant_time_eq(candidate.as_bytes(), token) && owner == name {
                admitted = Some(if *admin {
                    Pusher::Admin
                } else {
                    Pusher::DeployToken
                });
            }
        }
        admitted
    }
}

/// The function a `/v1/functions/NAME/build` POST builds, if that is what
/// `request` is.
pub(super) fn build_target<B>(request: &http::Request<B>) -> Option<&str> {
    if request.method() != Method::POST {
        return None;
    }
    let rest = request.uri().path().strip_prefix("/v1/functions/")?;
    rest.strip_suffix("/build")
        .filter(|name| !name.contains('/'))
}

/// Answers one request under `/git/`.
pub(super) async fn serve(
    api: &AdminApi,
    request: http::Request<Incoming>,
    client: std::net::IpAddr,
) -> http::Response<ResponseBody> {
    match route(api, request, client).await {
        Ok(response) => response,
        Err(refusal) => refusal.response().map(full),
    }
}

/// A request refused, and why.
struct Refusal {
    status: StatusCode,
    message: String,
    /// Ask for HTTP Basic credentials (git then prompts or uses its
    /// credential helper).
    challenge: bool,
}

impl Refusal {
    /// As git shows it: plain text.
    fn response(self) -> http::Response<Bytes> {
        let mut response = http::Response::new(Bytes::from(format!("{}\n", self.message)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"wisp\""),
            );
        }
        response
    }
}

fn refuse(status: StatusCode, message: &str) -> Refusal {
    Refusal {
        status,
        message: message.to_owned(),
        challenge: false,
    }
}

async fn route(
    api: &AdminApi,
    request: http::Request<Incoming>,
    client: std::net::IpAddr,
) -> Result<http::Response<ResponseBody>, Refusal> {
    let host = &api.host;
    let path = request.uri().path().to_owned();
    let rest = path.strip_prefix("/git/").unwrap_or("");
    let Some((repo, action)) = rest.split_once(".git/") else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "no such repository: a function's remote is http://HOST:PORT/git/NAME.git",
        ));
    };
    let name = repo.to_owned();
    if let Err(e) = wisp_spec::name::validate_name(&name) {
        return Err(refuse(StatusCode::NOT_FOUND, &e));
    }
    let Some(builds) = host.builds().cloned() else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "this host does not build functions from source (`wisp serve --builds true`)",
        ));
    };
    let service = match (request.method(), action) {
        (&Method::GET, "info/refs") => {
            let query = request.uri().query().unwrap_or("");
            match form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "service") {
                Some((_, s)) if s == "git-receive-pack" => Service::Push,
                Some((_, s)) if s == "git-upload-pack" => Service::Fetch,
                _ => {
                    return Err(refuse(
                        StatusCode::FORBIDDEN,
                        "wisp speaks git's smart HTTP protocol only (git 1.6.6 or newer)",
                    ));
                }
            }
        }
        (&Method::POST, "git-receive-pack") => Service::Push,
        (&Method::POST, "git-upload-pack") => Service::Fetch,
        _ => {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "wisp speaks git's smart HTTP protocol only",
            ));
        }
    };
    let pusher = match authenticate(api, &request, &builds, &name) {
        Ok(pusher) => pusher,
        Err(refusal) => {
            if refusal.status == StatusCode::UNAUTHORIZED
                && request.headers().contains_key(header::AUTHORIZATION)
            {
                api.failed(client);
            }
            return Err(refusal);
        }
    };
    // Only the admin token clears a lockout's count: a deploy token's
    // holder may not alternate guesses of it with good pushes.
    if pusher == Pusher::Admin {
        api.access.succeeded(client);
    }
    match service {
        Service::Push => {
            let (builds, making) = (builds.clone(), name.clone());
            let made = tokio::task::spawn_blocking(move || builds.repository(&making))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            if let Err(e) = made {
                tracing::error!(function = %name, error = %e, "preparing the git repository failed");
                return Err(refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "preparing the repository failed (see the host log)",
                ));
            }
        }
        Service::Fetch => {
            if !builds.repository_top(&name).join("repo.git/HEAD").is_file() {
                return Err(refuse(
                    StatusCode::NOT_FOUND,
                    &format!("function `{name}` has no repository on this host: push to it first"),
                ));
            }
        }
    }
    let turn = if service == Service::Push && request.method() == Method::POST {
        Some(builds.push_turn(&name).await)
    } else {
        None
    };
    let local = request
        .extensions()
        .get::<crate::runtime::connection::ConnectionInfo>()
        .copied()
        .unwrap_or_default()
        .local;
    let push_token = match &turn {
        Some(_) => match api.pushes.issue(&name, pusher == Pusher::Admin) {
            Ok(token) => Some(token),
            Err(e) => {
                tracing::error!(error = %e, "making a push token failed");
                return Err(refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "starting the push failed (see the host log)",
                ));
            }
        },
        None => None,
    };
    let limit = match service {
        Service::Push => builds
            .options()
            .repo_quota
            .saturating_sub(builds.repository_size(&name)),
        Service::Fetch => 1 << 20,
    };
    let mut request_env = RequestEnv::of(&request);
    // Where the function will answer: the name the pusher reached this
    // host by, and the public port.
    request_env.public_url = builds.options().public_port.and_then(|port| {
        let authority = super::access::authority_of(&request)?;
        Some(format!(
            "http://{}:{port}",
            super::access::host_part(&authority)
        ))
    });
    let spool = builds.spool(&name);
    let input = spool_body(request.method() == Method::POST, request, &spool, limit).await?;
    let mut command = backend(&builds, &name, action, local, &request_env);
    if let Some(token) = &push_token {
        command.env("WISP_PUSH_TOKEN", &token.token);
        // git enforces the quota on the pack as it unpacks it: a request
        // body may be compressed (`Content-Encoding: gzip`), so its size
        // above bounds only what was sent.
        command
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "receive.maxInputSize")
            .env("GIT_CONFIG_VALUE_0", limit.max(1).to_string())
            // The hook's `git archive` is capped at what the host accepts.
            .env("WISP_MAX_ARCHIVE", api.host.config().max_upload.to_string());
    }
    spawn_cgi(command, input, (turn, push_token)).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Push,
    Fetch,
}

/// Who may do what: the admin token (Basic password or Bearer), or a
/// deploy token of `name` (Basic password).
fn authenticate(
    api: &AdminApi,
    request: &http::Request<Incoming>,
    builds: &crate::build::Builds,
    name: &str,
) -> Result<Pusher, Refusal> {
    let Some(admin) = api.token.as_deref() else {
        return Ok(Pusher::Admin);
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            if let Some(bearer) = v.strip_prefix("Bearer ") {
                return Some(bearer.as_bytes().to_vec());
            }
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(v.strip_prefix("Basic ")?.trim())
                .ok()?;
            let at = decoded.iter().position(|&b| b == b':')?;
            Some(decoded[at + 1..].to_vec())
        });
    let Some(secret) = presented else {
        return Err(Refusal {
            challenge: true,
            ..refuse(
                StatusCode::UNAUTHORIZED,
                "authentication required: use the admin token or a deploy token of this function (`wisp token create NAME`) as the password",
            )
        });
    };
    if super::constant_time_eq(&secret, admin) {
        return Ok(Pusher::Admin);
    }
    match std::str::from_utf8(&secret)
        .ok()
        .and_then(|s| builds.tokens().owner(s))
    {
        Some(owner) if owner == name => Ok(Pusher::DeployToken),
        Some(_) => Err(refuse(
            StatusCode::FORBIDDEN,
            &format!("this deploy token is not for function `{name}`"),
        )),
        None => Err(Refusal {
            challenge: true,
            ..refuse(
                StatusCode::UNAUTHORIZED,
                "wrong token: use the admin token or a deploy token of this function",
            )
        }),
    }
}

/// The request body, spooled to `spool` within `limit` bytes (`None` for
/// a request without one).
async fn spool_body(
    has_body: bool,
    request: http::Request<Incoming>,
    spool: &std::path::Path,
    limit: u64,
) -> Result<Option<std::fs::File>, Refusal> {
    if !has_body {
        return Ok(None);
    }
    let failed = |e: std::io::Error| {
        tracing::error!(error = %e, "spooling a git request failed");
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storing the push failed (see the host log)",
        )
    };
    let _ = tokio::fs::remove_file(spool).await;
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(spool)
        .await
        .map_err(failed)?;
    // Unlinked at once: it lives as long as git reads it.
    let _ = tokio::fs::remove_file(spool).await;
    let mut body = request.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            refuse(
                StatusCode::BAD_REQUEST,
                &format!("reading the push failed: {e}"),
            )
        })?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        total += data.len() as u64;
        if total > limit {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "the push would take the repository past its quota of {} (`wisp serve --repo-quota`)",
                    wisp_spec::units::format_size(limit)
                ),
            ));
        }
        file.write_all(data).await.map_err(failed)?;
    }
    file.flush().await.map_err(failed)?;
    let mut file = file.into_std().await;
    use std::io::Seek;
    file.rewind().map_err(failed)?;
    Ok(Some(file))
}

/// What of the request the CGI program is told.
struct RequestEnv {
    method: String,
    query: String,
    content_type: Option<String>,
    content_encoding: Option<String>,
    git_protocol: Option<String>,
    public_url: Option<String>,
}

impl RequestEnv {
    fn of<B>(request: &http::Request<B>) -> RequestEnv {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        RequestEnv {
            method: request.method().to_string(),
            query: request.uri().query().unwrap_or("").to_owned(),
            content_type: header("content-type"),
            content_encoding: header("content-encoding"),
            git_protocol: header("git-protocol"),
            public_url: None,
        }
    }
}

/// `git http-backend` for `action` on function `name`'s repository, with
/// the CGI environment and what the hook needs (an empty environment
/// otherwise: no token of the host's reaches git).
fn backend(
    builds: &crate::build::Builds,
    name: &str,
    action: &str,
    local: std::net::SocketAddr,
    request: &RequestEnv,
) -> tokio::process::Command {
    let top = builds.repository_top(name);
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .current_dir(&top)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &top)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &top)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", &request.method)
        .env("PATH_INFO", format!("/repo.git/{action}"))
        .env("QUERY_STRING", &request.query)
        .env("REMOTE_USER", "wisp")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("WISP_FUNCTION", name)
        .env("WISP_PUSH_URL", format!("http://{local}"))
        .env("WISP_DEPLOY_BRANCH", &builds.options().deploy_branch)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group, so an answer cut short (the pusher left)
        // takes `receive-pack` and the hook with it, not `http-backend`
        // alone.
        .process_group(0);
    if let Some(value) = &request.content_type {
        command.env("CONTENT_TYPE", value);
    }
    if let Some(value) = &request.content_encoding {
        command.env("HTTP_CONTENT_ENCODING", value);
    }
    if let Some(value) = &request.git_protocol {
        command.env("GIT_PROTOCOL", value);
    }
    if let Some(value) = &request.public_url {
        command.env("WISP_PUBLIC_URL", value);
    }
    command
}

/// Runs the CGI program with `input` on its stdin and answers with what it
/// prints: its header block (`Status:` and headers), then its body as it
/// comes. `held` lives until the body ends.
async fn spawn_cgi<H: Send + 'static>(
    mut command: tokio::process::Command,
    input: Option<std::fs::File>,
    held: H,
) -> Result<http::Response<ResponseBody>, Refusal> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "{what}");
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("{what} (see the host log)"),
        )
    };
    if let Some(file) = input {
        command.env(
            "CONTENT_LENGTH",
            file.metadata().map_or(0, |m| m.len()).to_string(),
        );
        command.stdin(Stdio::from(file));
    } else {
        command.stdin(Stdio::null());
    }
    let mut child = command
        .spawn()
        .map_err(|e| failed("running git http-backend failed", &e))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(failed("running git http-backend failed", &"no pipes"));
    };
    tokio::spawn(async move {
        let mut text = String::new();
        let mut stderr = stderr;
        let _ = (&mut stderr)
            .take(MAX_GIT_STDERR)
            .read_to_string(&mut text)
            .await;
        // The rest is read and dropped: a closed pipe would kill git.
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        if !text.trim().is_empty() {
            tracing::warn!(stderr = %text.trim(), "git http-backend said");
        }
    });
    let mut reader = BufReader::new(stdout);
    let mut response = http::Response::builder();
    let mut read = 0usize;
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .await
            .map_err(|e| failed("reading git http-backend failed", &e))?;
        read += n;
        if n == 0 || read > MAX_CGI_HEADERS {
            return Err(failed(
                "git http-backend answered no header block",
                &"end or overflow",
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if key.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse().ok());
            response = response.status(code.unwrap_or(500));
        } else {
            response = response.header(key, value);
        }
    }
    let group = ProcessGroup(child.id());
    let body = tokio_util_stream(reader, child, (held, group));
    response
        .body(body)
        .map_err(|e| failed("git http-backend answered a bad header", &e))
}

/// Kills a CGI program's process group when dropped (when its answer ends
/// or is dropped): nothing of a push outlives its request.
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pid) = self
            .0
            .and_then(|id| rustix::process::Pid::from_raw(id as i32))
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// The rest of the CGI program's output as a body; the child (and `held`)
/// live until it ends.
fn tokio_util_stream<R, H>(reader: R, child: tokio::process::Child, held: H) -> ResponseBody
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    H: Send + 'static,
{
    let stream = futures_util::stream::unfold(
        (reader, Some((child, held))),
        |(mut reader, mut alive)| async move {
            let mut buffer = vec![0u8; 16 << 10];
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => {
                    if let Some((mut child, held)) = alive.take() {
                        let _ = child.wait().await;
                        drop(held);
                    }
                    None
                }
                Ok(n) => {
                    buffer.truncate(n);
                    Some((
                        Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(buffer))),
                        (reader, alive),
                    ))
                }
            }
        },
    );
    StreamBody::new(stream.boxed()).boxed_unsync()
}
