//! The admin API: deploy, inspect, release and observe functions — JSON,
//! versioned under `/v1`, on its own listener.
//!
//! | method | path | does |
//! | --- | --- | --- |
//! | `PUT` | `/v1/functions/{name}?route=/x&…` | deploy the body (raw `.wasm`) as a new version (`no-traffic=true`: without traffic) |
//! | `GET` | `/v1/functions` | list functions |
//! | `GET` | `/v1/functions/{name}` | one function, its versions and effective settings |
//! | `DELETE` | `/v1/functions/{name}` | remove a function, with its own key-value bucket and its secrets |
//! | `GET` | `/v1/functions/{name}/versions` | its versions |
//! | `GET` | `/v1/functions/{name}/source?version=N` | a version's uploaded `.wasm` (default: the one with most traffic) |
//! | `POST` | `/v1/functions/{name}/build?route=/x&…` | build the body (a tar archive of a source tree) on the host and deploy it; streams the build (feature `build`) |
//! | `GET` | `/v1/functions/{name}/build` | the last build's output |
//! | `POST` `GET` | `/v1/functions/{name}/tokens` | make a deploy token (shown once) or list them |
//! | `DELETE` | `/v1/functions/{name}/tokens/{id}` | remove a deploy token |
//! | `GET` `POST` | `/git/{name}.git/…` | the function's git remote (smart HTTP; Basic auth: admin or deploy token) |
//! | `DELETE` | `/v1/functions/{name}/versions/{n}` | retire version `n` (`3` or `v3`); 409 while it holds traffic |
//! | `PUT` | `/v1/functions/{name}/traffic` | split traffic: `[{"version": 3, "weight": 90}, …]` |
//! | `POST` | `/v1/functions/{name}/rollback` | restore the previous traffic split |
//! | `GET` | `/v1/functions/{name}/logs?since=5m&limit=N&follow=true` | guest logs, one JSON object per line |
//! | `GET` | `/v1/functions/{name}/usage` | cumulative usage (wall, CPU, fuel, memory-time) |
//! | `GET` | `/v1/functions/{name}/stats?window=60` | recent traffic (req/s, error rate, p50/p99, instantiate), and second by second |
//! | `GET` | `/v1/stats?window=10` | every function's recent traffic |
//! | `GET` | `/v1/functions/{name}/kv?after=&limit=` | keys of its own bucket (`/v1/buckets/{bucket}/kv` for an app bucket) |
//! | `GET` `PUT` `DELETE` | `/v1/functions/{name}/kv/{key}` | read (raw bytes), write (raw body) or delete a key (likewise under `/v1/buckets/{bucket}`) |
//! | `GET` | `/v1/functions/{name}/secrets` | names of its secrets (values are never shown) |
//! | `PUT` `DELETE` | `/v1/functions/{name}/secrets/{secret}` | set (raw body) or remove a secret |
//! | any | `/v1/functions/{name}/invoke/{path}` | run the function on a request for `/{path}` |
//! | `GET` | `/v1/calls?function=&state=&before=&limit=` | async calls, newest first (without response bodies) |
//! | `GET` | `/v1/calls/{id}` | one async call: state, attempts, times, and its response once finished |
//! | `POST` | `/v1/functions/{name}/publish` (and Pushpin's `…/publish/`) | GRIP items to the subscribers of the function's channels (admin or publish token) |
//! | `GET` | `/healthz` | liveness (no token needed) |
//! | `GET` | `/metrics` | Prometheus text |
//!
//! When the host has an admin token, every request but `/healthz` must carry
//! `Authorization: Bearer <token>`; the comparison takes constant time. The
//! web console (`/`, see `console.rs`) signs in with the same token and then
//! uses a session cookie plus an anti-CSRF token. Before any of that,
//! `access.rs` refuses foreign `Host`s (without a token), cross-origin
//! changes, and clients locked out after failed authentications.

mod access;
#[cfg(feature = "build")]
mod build;
mod calls;
mod console;
#[cfg(feature = "build")]
mod git;
mod logs;
mod state;
mod upload;

use crate::error::{DeployError, json_error};
use crate::host::Host;
use crate::runtime::body::{ResponseBody, full};
use crate::runtime::connection::ConnectionInfo;
use crate::server::Handler;
use bytes::Bytes;
use http::{Method, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use std::convert::Infallible;
use std::sync::Arc;
use wisp_spec::api::{FunctionUsage, Health};
use wisp_spec::traffic::{self, TrafficShare};

/// Default window of the traffic figures, seconds.
const DEFAULT_STATS_WINDOW: u64 = 60;

/// The `window=SECONDS` of a stats request (1 to 600).
fn window(query: Option<&str>) -> Result<u64, DeployError> {
    let value = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(name, _)| name == "window")
        .map(|(_, value)| value.into_owned());
    match value {
        None => Ok(DEFAULT_STATS_WINDOW),
        Some(text) => match text.parse::<u64>() {
            Ok(seconds @ 1..=600) => Ok(seconds),
            _ => Err(DeployError::BadRequest(format!(
                "`window={text}` is not a number of seconds from 1 to 600"
            ))),
        },
    }
}

/// Largest JSON body the admin API reads (traffic splits and the like).
const MAX_JSON_BODY_BYTES: usize = 64 << 10;

/// The admin API of one host, as a service: mount it on a listener of your
/// own (or pass [`AdminApi::handler`] to [`crate::serve`]), or leave it out.
///
/// ```no_run
/// # async fn run(host: wisp_host::Host) {
/// let admin = wisp_host::AdminApi::new(host, Some("s3cret".into()));
/// let request = http::Request::get("/healthz").body(()).unwrap();
/// # let _ = (admin, request);
/// # }
/// ```
#[derive(Clone)]
pub struct AdminApi {
    host: Host,
    token: Option<Arc<[u8]>>,
    /// A token that may publish to channels and do nothing else.
    publish_token: Option<Arc<[u8]>>,
    sessions: Arc<console::Sessions>,
    access: Arc<access::Access>,
    #[cfg(feature = "build")]
    pushes: Arc<git::PushTokens>,
}

impl AdminApi {
    /// The admin API of `host`; with `token`, every request but `/healthz`
    /// must carry `Authorization: Bearer <token>` (or a console session).
    /// Without one, it answers only requests for a loopback host name.
    pub fn new(host: Host, token: Option<String>) -> AdminApi {
        AdminApi {
            host,
            token: token.map(|t| Arc::from(t.into_bytes())),
            publish_token: None,
            sessions: Arc::default(),
            access: Arc::default(),
            #[cfg(feature = "build")]
            pushes: Arc::default(),
        }
    }

    /// Also accepts `token` on the publish endpoints (`/v1/publish`,
    /// `/publish/`), and nowhere else: what a publisher holds cannot
    /// deploy or read anything.
    pub fn with_publish_token(mut self, token: Option<String>) -> AdminApi {
        self.publish_token = token.map(|t| Arc::from(t.into_bytes()));
        self
    }

    /// Also answers requests for these host names (without port) when the
    /// API has no token; loopback names are always answered.
    pub fn with_allowed_hosts(mut self, hosts: impl IntoIterator<Item = String>) -> AdminApi {
        let hosts = hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect();
        self.access = Arc::new(access::Access::allowing(hosts, self.access.origins.clone()));
        self
    }

    /// Lets pages of these origins (`https://ops.example.com`) change state
    /// through the API from a browser; by default only the API's own may.
    pub fn with_allowed_origins(mut self, origins: impl IntoIterator<Item = String>) -> AdminApi {
        let origins = origins
            .into_iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        self.access = Arc::new(access::Access::allowing(self.access.hosts.clone(), origins));
        self
    }

    /// Answers one admin request.
    pub async fn handle(&self, request: http::Request<Incoming>) -> http::Response<ResponseBody> {
        if request.uri().path() == "/healthz" {
            return route(&self.host, request).await;
        }
        let client = request
            .extensions()
            .get::<ConnectionInfo>()
            .copied()
            .unwrap_or_default()
            .remote
            .ip();
        if let Some(remaining) = self.access.locked_out(client) {
            // Counted, but no longer than the lockout it already earned.
            self.host.metrics().record_admin_auth_failure();
            return access::locked_out_response(remaining).map(full);
        }
        if let Some(refused) = self.access.screen(&request, self.token.is_none()) {
            return refused.map(full);
        }
        #[cfg(feature = "build")]
        if request.uri().path().starts_with("/git/") {
            return git::serve(self, request, client).await;
        }
        if console::is_console_path(request.uri().path()) {
            let (response, sign_in) =
                console::serve(request, self.token.as_deref(), &self.sessions).await;
            match sign_in {
                console::SignIn::Failed => self.failed(client),
                console::SignIn::Succeeded => self.access.succeeded(client),
                console::SignIn::None => {}
            }
            return response;
        }
        #[cfg(feature = "build")]
        if let Some(name) = git::build_target(&request)
            && let Some(token) = bearer(&request)
            && let Some(pusher) = self.pushes.admits(token, name)
        {
            let mut request = request;
            request.extensions_mut().insert(pusher);
            return route(&self.host, request).await;
        }
        if is_publish(&request)
            && let (Some(token), Some(presented)) =
                (self.publish_token.as_deref(), bearer(&request))
            && constant_time_eq(presented, token)
        {
            return route(&self.host, request).await;
        }
        match refusal(&request, self.token.as_deref(), &self.sessions) {
            None => route(&self.host, request).await,
            Some(response) => {
                self.failed(client);
                response.map(full)
            }
        }
    }

    fn failed(&self, client: std::net::IpAddr) {
        self.host.metrics().record_admin_auth_failure();
        self.access.failed(client);
    }

    /// This API as a [`Handler`] for [`crate::serve`].
    pub fn handler(self) -> Handler {
        Arc::new(move |request| {
            let api = self.clone();
            Box::pin(async move { api.handle(request).await })
        })
    }
}

impl hyper::service::Service<http::Request<Incoming>> for AdminApi {
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        let api = self.clone();
        Box::pin(async move { Ok(api.handle(request).await) })
    }
}

/// The 401 for a request without the right token (or a console session);
/// `None` lets it through.
fn refusal(
    request: &http::Request<Incoming>,
    token: Option<&[u8]>,
    sessions: &console::Sessions,
) -> Option<http::Response<Bytes>> {
    let token = token?;
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if let Some(csrf) = sessions.admits(request.headers())
        && (reads || console::carries_csrf(request.headers(), &csrf))
    {
        return None;
    }
    if bearer(request).is_some_and(|p| constant_time_eq(p, token)) {
        return None;
    }
    let mut response = json_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong admin token: send `Authorization: Bearer <token>` (the CLI reads `--token` or `WISP_ADMIN_TOKEN`)",
        None,
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    Some(response)
}

/// The bearer token a request presents.
fn bearer<B>(request: &http::Request<B>) -> Option<&[u8]> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
}

/// 32 random bytes from the kernel, as hex.
fn random_hex() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares in time that depends only on the lengths, not on where the
/// inputs first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn route(host: &Host, request: http::Request<Incoming>) -> http::Response<ResponseBody> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = request.method().clone();
    let result = match (&method, segments.as_slice()) {
        (_, ["v1", "functions", name, "invoke", ..]) => return invoke(host, name, request).await,
        (_, ["v1", "functions", name, "kv", rest @ ..]) => {
            state::kv(host, host.function_bucket(name), rest, request).await
        }
        (_, ["v1", "buckets", bucket, "kv", rest @ ..]) => {
            state::kv(host, host.app_bucket(bucket), rest, request).await
        }
        (_, ["v1", "functions", name, "secrets", rest @ ..]) => {
            state::secrets(host, name, rest, request).await
        }
        (&Method::POST, ["v1", "functions", name, "publish"]) => {
            // Pushpin's publishers post to `CONTROL_URI/publish/`: with the
            // control URI `http://ADMIN/v1/functions/NAME` they work as
            // they are, and get Pushpin's answer.
            let pushpin = path.ends_with('/');
            return publish(host, name, request, pushpin).await;
        }
        (&Method::GET, ["v1", "calls"]) => calls::list(host, request.uri().query()).await,
        (&Method::GET, ["v1", "stats"]) => {
            window(request.uri().query()).map(|w| json(StatusCode::OK, &host.all_stats(w)))
        }
        (&Method::GET, ["v1", "functions", name, "stats"]) => window(request.uri().query())
            .and_then(|w| {
                host.stats(name, w)
                    .map(|stats| json(StatusCode::OK, &stats))
                    .ok_or_else(|| DeployError::UnknownFunction((*name).to_owned()))
            }),
        (&Method::GET, ["v1", "calls", id]) => calls::get(host, id).await,
        (&Method::GET, ["v1", "functions", name, "logs"]) => {
            return logs::logs(host, name, request.uri().query());
        }
        (&Method::GET, ["healthz"]) => Ok(json(
            StatusCode::OK,
            &Health {
                status: "ok".into(),
                functions: host.functions().len(),
                compilations: host.metrics().compilations(),
                cluster: host.cluster_health(),
                damaged: host.damage(),
                builders: builders(host).await,
            },
        )),
        (&Method::GET, ["metrics"]) => {
            let mut response = http::Response::new(Bytes::from(host.metrics().encode()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            Ok(response)
        }
        (&Method::GET, ["v1", "functions"]) => Ok(json(StatusCode::OK, &host.functions())),
        (&Method::GET, ["v1", "workers"]) => Ok(json(StatusCode::OK, &host.workers())),
        (&Method::GET, ["v1", "functions", name]) => host
            .function(name)
            .map(|info| json(StatusCode::OK, &info))
            .ok_or_else(|| DeployError::UnknownFunction((*name).to_owned())),
        (&Method::PUT, ["v1", "functions", name]) => {
            let name = (*name).to_owned();
            upload::deploy(host, &name, request).await
        }
        #[cfg(feature = "build")]
        (&Method::POST, ["v1", "functions", name, "build"]) => {
            let name = (*name).to_owned();
            return build::build(host, &name, request)
                .await
                .unwrap_or_else(|e| e.to_response().map(full));
        }
        #[cfg(feature = "build")]
        (&Method::GET, ["v1", "functions", name, "build"]) => {
            return build::last_log(host, name);
        }
        #[cfg(feature = "build")]
        (method, ["v1", "functions", name, "tokens", rest @ ..]) => {
            build::tokens(host, method, name, rest)
        }
        (&Method::DELETE, ["v1", "functions", name]) => host
            .remove(name)
            .await
            .map(|removed| json(StatusCode::OK, &removed)),
        (&Method::GET, ["v1", "functions", name, "source"]) => {
            let version = request.uri().query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "version")
                    .map(|(_, v)| v.into_owned())
            });
            match version.as_deref().map(traffic::parse_version) {
                Some(None) => Err(DeployError::BadRequest(
                    "`version` is not a version number: expected e.g. `v3` or `3`".into(),
                )),
                pinned => host.source(name, pinned.flatten()).await,
            }
            .map(|(number, wasm)| {
                let mut response = http::Response::new(Bytes::from(wasm));
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/wasm"),
                );
                headers.insert(
                    wisp_spec::headers::VERSION_HEADER,
                    http::HeaderValue::from(number),
                );
                response
            })
        }
        (&Method::GET, ["v1", "functions", name, "versions"]) => host
            .function(name)
            .map(|info| json(StatusCode::OK, &info.versions))
            .ok_or_else(|| DeployError::UnknownFunction((*name).to_owned())),
        (&Method::DELETE, ["v1", "functions", name, "versions", version]) => {
            match traffic::parse_version(version) {
                Some(version) => host
                    .retire(name, version)
                    .await
                    .map(|retired| json(StatusCode::OK, &retired)),
                None => Err(DeployError::BadRequest(format!(
                    "`{version}` is not a version number: expected e.g. `v3` or `3`"
                ))),
            }
        }
        (&Method::PUT, ["v1", "functions", name, "traffic"]) => {
            let name = (*name).to_owned();
            match read_json::<Vec<TrafficShare>>(request).await {
                Ok(shares) => host
                    .set_traffic(&name, shares)
                    .await
                    .map(|info| json(StatusCode::OK, &info)),
                Err(e) => Err(e),
            }
        }
        (&Method::POST, ["v1", "functions", name, "rollback"]) => host
            .rollback(name)
            .await
            .map(|info| json(StatusCode::OK, &info)),
        (&Method::GET, ["v1", "functions", name, "usage"]) => host
            .usage(name)
            .map(|usage| {
                json(
                    StatusCode::OK,
                    &FunctionUsage {
                        name: (*name).to_owned(),
                        usage,
                    },
                )
            })
            .ok_or_else(|| DeployError::UnknownFunction((*name).to_owned())),
        (
            _,
            ["healthz" | "metrics"]
            | ["v1", "calls" | "stats"]
            | ["v1", "calls", _]
            | ["v1", "functions"]
            | ["v1", "functions", _]
            | ["v1", "functions", _, "versions", _]
            | [
                "v1",
                "functions",
                _,
                "versions" | "traffic" | "rollback" | "logs" | "usage" | "stats" | "build",
            ],
        ) => {
            return json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                &format!("`{method}` is not supported on `{path}`"),
                None,
            )
            .map(full);
        }
        _ => {
            return json_error(
                StatusCode::NOT_FOUND,
                "not-found",
                &format!("no admin endpoint `{path}`; see `/v1/functions`"),
                None,
            )
            .map(full);
        }
    };
    result.unwrap_or_else(|e| e.to_response()).map(full)
}

/// The host's builders, for `/healthz` (none when it does not build).
async fn builders(host: &Host) -> Vec<wisp_spec::api::BuilderHealth> {
    #[cfg(feature = "build")]
    if let Some(builds) = host.builds() {
        return builds
            .builders()
            .await
            .iter()
            .map(|b| wisp_spec::api::BuilderHealth {
                language: b.language.name().to_owned(),
                available: b.available,
                detail: b.detail.clone(),
            })
            .collect();
    }
    let _ = host;
    Vec::new()
}

/// Runs function `name` on the request, with the path after `/invoke`.
async fn invoke(
    host: &Host,
    name: &str,
    request: http::Request<Incoming>,
) -> http::Response<ResponseBody> {
    let prefix = format!("/v1/functions/{name}/invoke");
    let (mut parts, body) = request.into_parts();
    let rest = parts.uri.path().strip_prefix(&prefix).unwrap_or("");
    let rest = if rest.is_empty() { "/" } else { rest };
    let target = match parts.uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    match target.parse() {
        Ok(uri) => parts.uri = uri,
        Err(_) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                &format!("invalid path `{target}`"),
                None,
            )
            .map(full);
        }
    }
    parts.headers.remove(header::AUTHORIZATION);
    host.handle_with(name, http::Request::from_parts(parts, body))
        .await
}

async fn read_json<T: serde::de::DeserializeOwned>(
    request: http::Request<Incoming>,
) -> Result<T, DeployError> {
    let body = read_limited(request, MAX_JSON_BODY_BYTES, || {
        DeployError::BadRequest(format!(
            "the JSON body is over the {} limit",
            wisp_spec::units::format_size(MAX_JSON_BODY_BYTES as u64)
        ))
    })
    .await?;
    serde_json::from_slice(&body)
        .map_err(|e| DeployError::BadRequest(format!("invalid JSON body: {e}")))
}

/// True for a publish request (`POST /v1/functions/NAME/publish`, with or
/// without Pushpin's trailing slash).
fn is_publish<B>(request: &http::Request<B>) -> bool {
    let segments: Vec<&str> = request.uri().path().trim_matches('/').split('/').collect();
    request.method() == Method::POST
        && matches!(segments.as_slice(), ["v1", "functions", _, "publish"])
}

/// `POST /v1/functions/NAME/publish` (Pushpin's `…/publish/`): GRIP items
/// to every subscriber of NAME's channels — JSON counts, or Pushpin's
/// `Published`.
async fn publish(
    host: &Host,
    function: &str,
    request: http::Request<Incoming>,
    pushpin: bool,
) -> http::Response<ResponseBody> {
    let limit = crate::channels::MAX_PUBLISH_BYTES;
    let body = match read_limited(request, limit, || {
        DeployError::BadRequest(format!("a publish is at most {limit} bytes"))
    })
    .await
    {
        Ok(body) => body,
        Err(error) => return error.to_response().map(full),
    };
    match host.publish(function, body).await {
        Ok(_) if pushpin => http::Response::new(full("Published\n")),
        Ok((items, delivered)) => json(
            StatusCode::OK,
            &serde_json::json!({"items": items, "delivered": delivered}),
        )
        .map(full),
        Err(crate::channels::PublishError::Invalid(why)) => {
            DeployError::BadRequest(why).to_response().map(full)
        }
        Err(crate::channels::PublishError::Unavailable(why)) => {
            DeployError::ClusterUnavailable(why).to_response().map(full)
        }
        Err(crate::channels::PublishError::UnknownFunction(name)) => {
            DeployError::UnknownFunction(name).to_response().map(full)
        }
    }
}

/// The whole body of `request`; past `limit` bytes, `too_large()`.
async fn read_limited(
    request: http::Request<Incoming>,
    limit: usize,
    too_large: impl FnOnce() -> DeployError,
) -> Result<Bytes, DeployError> {
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(DeployError::BadRequest(format!(
            "reading the request body failed: {e}"
        ))),
    }
}

pub(super) fn json(status: StatusCode, value: &impl Serialize) -> http::Response<Bytes> {
    let mut body = serde_json::to_vec_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}").into_bytes());
    body.push(b'\n');
    let mut response = http::Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secrets"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
