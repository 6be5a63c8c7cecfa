//! A client of the admin API, used by the CLI's verbs (`deploy`, `ls`, `rm`…).
//!
//! It speaks plain HTTP/1.1 to the admin listener, sends the bearer token when
//! one is configured, and turns the API's JSON errors back into their message,
//! so the CLI prints what the host said.

use bytes::Bytes;
use http::{Method, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use std::time::Duration;
use wisp_spec::api::{
    BuildEvent, CallInfo, CallList, DeployReport, DeployTokenInfo, ErrorBody, FunctionInfo,
    FunctionUsage, KeyList, Removed, Retired, SecretNames, VersionSummary,
};
use wisp_spec::settings::RawSettings;
use wisp_spec::traffic::TrafficShare;

/// Default admin API address.
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:8081";

/// Time allowed for one admin call (deploys compile, so it is generous).
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The admin URL is malformed.
    #[error("invalid admin URL `{0}`: expected e.g. `http://127.0.0.1:8081`")]
    BadUrl(String),
    /// Nothing answered.
    #[error(
        "cannot reach the wisp admin API at {url}: {reason} (is `wisp serve` running? point at it with `--admin URL`)"
    )]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What the connection said.
        reason: String,
    },
    /// The URL is a host's public listener, which routes to functions.
    #[error(
        "{url} is a wisp public listener (it serves functions), not the admin API: the admin API listens on its own address, which `wisp serve` prints as it starts (127.0.0.1:8081 unless `wisp serve --admin-listen ADDR` moved it); point at it with `--admin URL`"
    )]
    PublicListener {
        /// The URL tried.
        url: String,
    },
    /// The host answered with an error.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The host's error message.
        message: String,
    },
}

/// A client for one host's admin API.
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
}

/// How a deploy places its version, besides its settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeployHow<'a> {
    /// The route; `None` keeps the function's.
    pub route: Option<&'a str>,
    /// Give the new version all traffic.
    pub take_traffic: bool,
    /// Start from the default settings, not the previous version's.
    pub reset_settings: bool,
    /// Let another route move the function.
    pub move_route: bool,
    /// Where the binary came from.
    pub origin: Option<&'a str>,
}

impl AdminClient {
    /// A client for the admin API at `base` (e.g. `http://127.0.0.1:8081`).
    pub fn new(base: &str, token: Option<String>) -> Result<AdminClient, ClientError> {
        let trimmed = base.trim_end_matches('/');
        let uri: Uri = trimmed
            .parse()
            .map_err(|_| ClientError::BadUrl(base.to_owned()))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(ClientError::BadUrl(base.to_owned()));
        }
        Ok(AdminClient {
            base: trimmed.to_owned(),
            token,
            http: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Sends a request and returns the whole response, whatever its status.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: http::HeaderMap,
        body: Bytes,
    ) -> Result<http::Response<Bytes>, ClientError> {
        let url = format!("{}{path_and_query}", self.base);
        let mut request = http::Request::builder().method(method).uri(&url);
        if let Some(map) = request.headers_mut() {
            *map = headers;
        }
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(body))
            .map_err(|_| ClientError::BadUrl(url.clone()))?;
        let unreachable = |reason: String| ClientError::Unreachable {
            url: self.base.clone(),
            reason,
        };
        let response = tokio::time::timeout(CALL_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|e| unreachable(error_chain(&e)))?;
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        if is_public_listener(parts.status, &bytes) {
            return Err(ClientError::PublicListener {
                url: self.base.clone(),
            });
        }
        Ok(http::Response::from_parts(parts, bytes))
    }

    /// Sends a request and returns the body of a 2xx answer; any other
    /// answer becomes the host's error message.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<Bytes, ClientError> {
        let response = self
            .send(method, path_and_query, http::HeaderMap::new(), body)
            .await?;
        let status = response.status();
        let bytes = response.into_body();
        if status.is_success() {
            return Ok(bytes);
        }
        Err(api_error(status, &bytes))
    }

    /// Calls the API and reads a 2xx answer as `T`.
    async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<T, ClientError> {
        let bytes = self.call(method, path_and_query, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Api {
            status: StatusCode::OK,
            message: format!(
                "the admin API answered with a body this wisp does not understand: {e}"
            ),
        })
    }

    /// Deploys `wasm` as function `name` at `route`.
    pub async fn deploy(
        &self,
        name: &str,
        wasm: Bytes,
        settings: &RawSettings,
        how: &DeployHow<'_>,
    ) -> Result<DeployReport, ClientError> {
        let query = deploy_query(settings, how);
        self.call_json(Method::PUT, &format!("/v1/functions/{name}?{query}"), wasm)
            .await
    }

    /// Sends `archive` (a tar archive of a source tree) to be built on the
    /// host and deployed as function `name`; passes each line of the
    /// build's output to `line` as it comes.
    pub async fn build(
        &self,
        name: &str,
        archive: Bytes,
        settings: &RawSettings,
        how: &DeployHow<'_>,
        mut line: impl FnMut(&str),
    ) -> Result<BuildOutcome, ClientError> {
        let query = deploy_query(settings, how);
        let mut body = self
            .open(
                Method::POST,
                &format!("/v1/functions/{name}/build?{query}"),
                archive,
            )
            .await?;
        let mut pending = Vec::new();
        let broken = |reason: String| ClientError::Unreachable {
            url: self.base.clone(),
            reason: format!("the build's stream broke off: {reason}"),
        };
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| broken(error_chain(&e)))?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            pending.extend_from_slice(data);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let text: Vec<u8> = pending.drain(..=end).collect();
                let event: BuildEvent = serde_json::from_slice(&text)
                    .map_err(|e| broken(format!("a line this wisp does not understand: {e}")))?;
                match event {
                    BuildEvent::Log(text) => line(&text),
                    BuildEvent::Deployed(report) => return Ok(BuildOutcome::Deployed(*report)),
                    BuildEvent::Unchanged { version, route } => {
                        return Ok(BuildOutcome::Unchanged { version, route });
                    }
                    BuildEvent::Failed { message, .. } => {
                        return Err(ClientError::Api {
                            status: StatusCode::UNPROCESSABLE_ENTITY,
                            message,
                        });
                    }
                }
            }
        }
        Err(broken("it ended before the build did".into()))
    }

    /// Makes a deploy token for function `name` (the answer holds the
    /// token, once).
    pub async fn create_token(&self, name: &str) -> Result<DeployTokenInfo, ClientError> {
        self.call_json(
            Method::POST,
            &format!("/v1/functions/{name}/tokens"),
            Bytes::new(),
        )
        .await
    }

    /// Function `name`'s deploy tokens.
    pub async fn tokens(&self, name: &str) -> Result<Vec<DeployTokenInfo>, ClientError> {
        self.call_json(
            Method::GET,
            &format!("/v1/functions/{name}/tokens"),
            Bytes::new(),
        )
        .await
    }

    /// Removes function `name`'s deploy token `id`.
    pub async fn remove_token(&self, name: &str, id: &str) -> Result<(), ClientError> {
        self.call(
            Method::DELETE,
            &format!("/v1/functions/{name}/tokens/{id}"),
            Bytes::new(),
        )
        .await
        .map(|_| ())
    }

    /// The last build's output of function `name`.
    pub async fn build_log(&self, name: &str) -> Result<String, ClientError> {
        let bytes = self
            .call(
                Method::GET,
                &format!("/v1/functions/{name}/build"),
                Bytes::new(),
            )
            .await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The uploaded `.wasm` of version `version` of function `name` (default:
    /// the one with most traffic), and its number.
    pub async fn source(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<(u32, Bytes), ClientError> {
        let path = match version {
            Some(v) => format!("/v1/functions/{name}/source?version={v}"),
            None => format!("/v1/functions/{name}/source"),
        };
        let response = self
            .send(Method::GET, &path, http::HeaderMap::new(), Bytes::new())
            .await?;
        if !response.status().is_success() {
            return Err(api_error(response.status(), response.body()));
        }
        let number = response
            .headers()
            .get(wisp_host::spec::headers::VERSION_HEADER)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        Ok((number, response.into_body()))
    }

    /// The host's `/healthz`.
    pub async fn health(&self) -> Result<wisp_spec::api::Health, ClientError> {
        self.call_json(Method::GET, "/healthz", Bytes::new()).await
    }

    /// Lists functions.
    pub async fn list(&self) -> Result<Vec<FunctionInfo>, ClientError> {
        self.call_json(Method::GET, "/v1/functions", Bytes::new())
            .await
    }

    /// The guest worker processes (`wisp serve --isolation process`).
    pub async fn workers(&self) -> Result<Vec<wisp_spec::api::WorkerInfo>, ClientError> {
        self.call_json(Method::GET, "/v1/workers", Bytes::new())
            .await
    }

    /// One function.
    pub async fn get(&self, name: &str) -> Result<FunctionInfo, ClientError> {
        self.call_json(Method::GET, &format!("/v1/functions/{name}"), Bytes::new())
            .await
    }

    /// Whether function `name` is deployed.
    pub async fn exists(&self, name: &str) -> Result<bool, ClientError> {
        match self.get(name).await {
            Ok(_) => Ok(true),
            Err(ClientError::Api {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One function's versions.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionSummary>, ClientError> {
        self.call_json(
            Method::GET,
            &format!("/v1/functions/{name}/versions"),
            Bytes::new(),
        )
        .await
    }

    /// Removes a function (with its bucket and secrets).
    pub async fn remove(&self, name: &str) -> Result<Removed, ClientError> {
        self.call_json(
            Method::DELETE,
            &format!("/v1/functions/{name}"),
            Bytes::new(),
        )
        .await
    }

    /// One page of `bucket`'s keys after `after`.
    pub async fn kv_keys(
        &self,
        bucket: &Bucket,
        after: Option<&str>,
    ) -> Result<KeyList, ClientError> {
        let mut path = bucket.path();
        if let Some(after) = after {
            path.push_str("?after=");
            path.extend(form_urlencoded::byte_serialize(after.as_bytes()));
        }
        self.call_json(Method::GET, &path, Bytes::new()).await
    }

    /// The value of `key` in `bucket`.
    pub async fn kv_get(&self, bucket: &Bucket, key: &str) -> Result<Bytes, ClientError> {
        self.call(Method::GET, &bucket.key_path(key), Bytes::new())
            .await
    }

    /// Sets `key` in `bucket` to `value`.
    pub async fn kv_set(
        &self,
        bucket: &Bucket,
        key: &str,
        value: Bytes,
    ) -> Result<(), ClientError> {
        self.call(Method::PUT, &bucket.key_path(key), value)
            .await
            .map(drop)
    }

    /// Deletes `key` from `bucket`.
    pub async fn kv_delete(&self, bucket: &Bucket, key: &str) -> Result<(), ClientError> {
        self.call(Method::DELETE, &bucket.key_path(key), Bytes::new())
            .await
            .map(drop)
    }

    /// Async call `id`.
    pub async fn call_info(&self, id: &str) -> Result<CallInfo, ClientError> {
        let path = format!(
            "/v1/calls/{}",
            percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
        );
        self.call_json(Method::GET, &path, Bytes::new()).await
    }

    /// One page of async calls; `query` is the listing's query string.
    pub async fn calls(&self, query: &str) -> Result<CallList, ClientError> {
        self.call_json(Method::GET, &format!("/v1/calls?{query}"), Bytes::new())
            .await
    }

    /// The names of function `name`'s secrets.
    pub async fn secret_names(&self, name: &str) -> Result<SecretNames, ClientError> {
        self.call_json(
            Method::GET,
            &format!("/v1/functions/{name}/secrets"),
            Bytes::new(),
        )
        .await
    }

    /// Sets secret `secret` of function `name`.
    pub async fn set_secret(
        &self,
        name: &str,
        secret: &str,
        value: Bytes,
    ) -> Result<(), ClientError> {
        let path = format!("/v1/functions/{name}/secrets/{}", segment(secret));
        self.call(Method::PUT, &path, value).await.map(drop)
    }

    /// Removes secret `secret` of function `name`; false when it had no
    /// such secret.
    pub async fn remove_secret(&self, name: &str, secret: &str) -> Result<bool, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            existed: bool,
        }
        let path = format!("/v1/functions/{name}/secrets/{}", segment(secret));
        let answer: Answer = self.call_json(Method::DELETE, &path, Bytes::new()).await?;
        Ok(answer.existed)
    }

    /// Retires version `version` of function `name`.
    pub async fn retire(&self, name: &str, version: u32) -> Result<Retired, ClientError> {
        self.call_json(
            Method::DELETE,
            &format!("/v1/functions/{name}/versions/{version}"),
            Bytes::new(),
        )
        .await
    }

    /// Sets function `name`'s traffic split.
    pub async fn set_traffic(
        &self,
        name: &str,
        shares: &[TrafficShare],
    ) -> Result<FunctionInfo, ClientError> {
        let body = serde_json::to_vec(shares).map_err(|e| ClientError::Api {
            status: StatusCode::BAD_REQUEST,
            message: e.to_string(),
        })?;
        self.call_json(
            Method::PUT,
            &format!("/v1/functions/{name}/traffic"),
            Bytes::from(body),
        )
        .await
    }

    /// Restores function `name`'s previous traffic split.
    pub async fn rollback(&self, name: &str) -> Result<FunctionInfo, ClientError> {
        self.call_json(
            Method::POST,
            &format!("/v1/functions/{name}/rollback"),
            Bytes::new(),
        )
        .await
    }

    /// Function `name`'s usage.
    pub async fn usage(&self, name: &str) -> Result<FunctionUsage, ClientError> {
        self.call_json(
            Method::GET,
            &format!("/v1/functions/{name}/usage"),
            Bytes::new(),
        )
        .await
    }

    /// Opens function `name`'s log stream (`query` as the admin API takes
    /// it); the body streams when following.
    pub async fn logs(
        &self,
        name: &str,
        query: &str,
    ) -> Result<hyper::body::Incoming, ClientError> {
        self.open(
            Method::GET,
            &format!("/v1/functions/{name}/logs?{query}"),
            Bytes::new(),
        )
        .await
    }

    /// Sends a request and returns the body of a 2xx answer as it streams
    /// (no time limit); any other answer becomes the host's error message.
    async fn open(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<hyper::body::Incoming, ClientError> {
        let url = format!("{}{path_and_query}", self.base);
        let mut request = http::Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(body))
            .map_err(|_| ClientError::BadUrl(url.clone()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                reason: error_chain(&e),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.into_body());
        }
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if is_public_listener(status, &bytes) {
            return Err(ClientError::PublicListener {
                url: self.base.clone(),
            });
        }
        Err(api_error(status, &bytes))
    }
}

/// How a build on the host ended well.
pub enum BuildOutcome {
    /// Built and deployed.
    Deployed(DeployReport),
    /// Nothing to build: the commit already serves, as this version.
    Unchanged {
        /// The version.
        version: u32,
        /// The function's route.
        route: String,
    },
}

/// A deploy's query: how it places its version, then its settings.
fn deploy_query(settings: &RawSettings, how: &DeployHow<'_>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(route) = how.route {
        query.append_pair("route", route);
    }
    if let Some(origin) = how.origin {
        query.append_pair("origin", origin);
    }
    if !how.take_traffic {
        query.append_pair("no-traffic", "true");
    }
    if how.reset_settings {
        query.append_pair("reset-settings", "true");
    }
    if how.move_route {
        query.append_pair("move-route", "true");
    }
    let mut query = query.finish();
    let settings = settings.to_query();
    if !settings.is_empty() {
        query.push('&');
        query.push_str(&settings);
    }
    query
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A key-value bucket, as the admin API addresses it.
#[derive(Debug, Clone)]
pub enum Bucket {
    /// A function's own bucket.
    Function(String),
    /// An app bucket.
    App(String),
}

impl Bucket {
    /// The path of the bucket's key listing.
    fn path(&self) -> String {
        match self {
            Bucket::Function(name) => format!("/v1/functions/{name}/kv"),
            Bucket::App(name) => format!("/v1/buckets/{name}/kv"),
        }
    }

    /// The path of one key.
    fn key_path(&self, key: &str) -> String {
        format!("{}/{}", self.path(), segment(key))
    }
}

/// `text` as one path segment: every byte but unreserved ones escaped.
fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Whether an answer is a public listener's "no function serves this
/// path": the admin API never routes by path, so never says it.
fn is_public_listener(status: StatusCode, bytes: &[u8]) -> bool {
    status == StatusCode::NOT_FOUND
        && serde_json::from_slice::<ErrorBody>(bytes).is_ok_and(|body| body.kind == "no-route")
}

/// The host's error message in a non-2xx answer.
fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<ErrorBody>(bytes)
        .map(|body| body.error)
        .unwrap_or_else(|_| {
            format!(
                "the admin API answered {status}: {}",
                String::from_utf8_lossy(bytes)
            )
        });
    ClientError::Api { status, message }
}
