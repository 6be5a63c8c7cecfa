//! The host's errors at its public edge, and the one place they become HTTP.
//!
//! [`DeployError`] covers the admin side (a rejected upload, an unknown
//! function); [`InvokeError`] covers one request (a limit, a trap, a bad CGI
//! response). Each variant maps to exactly one status code, and every error
//! response has the same JSON shape: `{"error": "...", "kind": "..."}`, plus
//! `"limit"` when a limit was breached.
//!
//! A message sent to a client may quote what that client sent, never a path
//! the host chose (the data dir, an artifact, a temp file, a directory
//! granted to a guest): failures of the host's own files are a
//! [`HostFailure`], which logs the detail where it is made and tells the
//! client only what failed.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use std::fmt;
use wisp_spec::api::ErrorBody;
use wisp_spec::inspect::InspectError;
use wisp_spec::settings::SettingsError;

/// Why a deploy, delete or lookup on the admin side failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The function name is not acceptable.
    #[error("{0}")]
    InvalidName(String),
    /// A setting is wrong.
    #[error(transparent)]
    InvalidSettings(#[from] SettingsError),
    /// The upload is not a deployable function.
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// The module imports something wisp does not provide.
    #[error("unsupported import: {0}")]
    UnsupportedImport(String),
    /// Cranelift could not compile it.
    #[error("compiling the function failed: {0}")]
    Compile(String),
    /// Compiling it would pass the host's compile budget.
    #[error("the function is too costly to compile: {0}")]
    CompileLimit(String),
    /// It compiled, but instantiating it failed (e.g. it needs more
    /// instances, memories or tables than the host allows).
    #[error("the function cannot be instantiated: {0}")]
    Instantiate(String),
    /// The upload is larger than the host accepts.
    #[error(
        "the upload is larger than the limit of {} (raise it with `wisp serve --max-upload`)",
        wisp_spec::units::format_size(*limit)
    )]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// Another function already serves this route.
    #[error(
        "route `{route}` is already served by function `{owner}`; remove it or choose another route"
    )]
    RouteTaken {
        /// The contested route.
        route: String,
        /// The function that has it.
        owner: String,
    },
    /// A deploy names another route than the function's without saying it
    /// means to move the function.
    #[error(
        "function `{name}` is served at `{from}`; deploying it at `{to}` would move every version of it, live traffic included: add `--move-route` (`move-route=true`) to move it, or leave `--route` out to keep `{from}`"
    )]
    RouteMove {
        /// The function.
        name: String,
        /// Its route.
        from: String,
        /// The route the deploy named.
        to: String,
    },
    /// No such function.
    #[error("no function named `{0}` is deployed")]
    UnknownFunction(String),
    /// The function has no such version (never had, or retired, or
    /// collected by retention).
    #[error("function `{name}` has no version {version}")]
    UnknownVersion {
        /// The function.
        name: String,
        /// The version asked for.
        version: u32,
    },
    /// The version takes traffic, so it cannot be retired.
    #[error(
        "version {version} of function `{name}` holds traffic; shift traffic away first: {remedy}"
    )]
    VersionServing {
        /// The function.
        name: String,
        /// The version.
        version: u32,
        /// What to run first, e.g. ``wisp traffic hello v2=100``.
        remedy: String,
    },
    /// A traffic split is not valid.
    #[error("invalid traffic split: {0}")]
    InvalidTraffic(String),
    /// The request to the admin API itself is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// Writing to or reading from the data dir failed.
    #[error("storage error: {0}")]
    Storage(HostFailure),
    /// The key-value bucket has no such key.
    #[error("{bucket} has no key `{key}`")]
    NoSuchKey {
        /// The bucket, as [`crate::BucketId`] shows it.
        bucket: String,
        /// The key.
        key: String,
    },
    /// No async call has this id (or it has expired).
    #[error("no async call `{0}`: it never existed or has expired (see `--call-retention`)")]
    NoSuchCall(String),
    /// A key-value write (or a secret) over a size limit of the store;
    /// nothing changed.
    #[error("{0}")]
    StateLimit(String),
    /// Another host changed the function first; nothing was written.
    #[error(
        "function `{0}` was changed by another write at the same time; nothing was written: read it again and retry"
    )]
    Conflict(String),
    /// Cluster mode, and the cluster cannot take writes now; the host keeps
    /// serving its last known state.
    #[error("{0}; writes are refused until it is back (functions keep serving)")]
    ClusterUnavailable(String),
    /// The host's storage is full; nothing was written (507).
    #[error("{0}")]
    InsufficientStorage(String),
    /// Building a source tree failed (its log says why); the serving
    /// version is untouched (422).
    #[error("the build failed: {0}")]
    Build(String),
}

/// A failure of the host's own files (the data dir, a directory granted to
/// a guest), as a client is told it: what failed, never where.
///
/// The only way to make one, [`HostFailure::logged`], writes the detail —
/// paths, the OS error — to the host log at once, so the message can send
/// the reader there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFailure {
    summary: String,
}

impl HostFailure {
    /// Logs `detail` (which may name any path) as an error and keeps
    /// `summary` for the client. `summary` says what failed in the client's
    /// terms (``storing the upload of `hello` failed``) and names no path
    /// the host chose.
    pub(crate) fn logged(summary: impl Into<String>, detail: impl fmt::Display) -> HostFailure {
        let summary = summary.into();
        tracing::error!(error = %detail, "{summary}");
        HostFailure { summary }
    }

    /// What failed, without the hint to the log.
    pub fn summary(&self) -> &str {
        &self.summary
    }
}

impl fmt::Display for HostFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (see the host log)", self.summary)
    }
}

impl From<HostFailure> for DeployError {
    fn from(failure: HostFailure) -> Self {
        DeployError::Storage(failure)
    }
}

impl DeployError {
    /// The HTTP status this error is reported with.
    pub fn status(&self) -> StatusCode {
        match self {
            DeployError::TooLarge { .. } => StatusCode::BAD_REQUEST,
            DeployError::RouteTaken { .. }
            | DeployError::RouteMove { .. }
            | DeployError::VersionServing { .. }
            | DeployError::Conflict(_) => StatusCode::CONFLICT,
            DeployError::ClusterUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            DeployError::UnknownFunction(_)
            | DeployError::UnknownVersion { .. }
            | DeployError::NoSuchKey { .. }
            | DeployError::NoSuchCall(_) => StatusCode::NOT_FOUND,
            DeployError::StateLimit(_) => StatusCode::PAYLOAD_TOO_LARGE,
            DeployError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            DeployError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            DeployError::Build(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A short machine-readable kind, e.g. `not-wasm`.
    pub fn kind(&self) -> &'static str {
        match self {
            DeployError::InvalidName(_) => "invalid-name",
            DeployError::InvalidSettings(_) => "invalid-settings",
            DeployError::Inspect(InspectError::NotWasm) => "not-wasm",
            DeployError::Inspect(InspectError::Malformed(_)) => "invalid-wasm",
            DeployError::Inspect(InspectError::NoHttpHandler(_) | InspectError::NoStart) => {
                "missing-export"
            }
            DeployError::UnsupportedImport(_) => "unsupported-import",
            DeployError::Compile(_) => "compile-failed",
            DeployError::CompileLimit(_) => "compile-limit",
            DeployError::Instantiate(_) => "instantiate-failed",
            DeployError::TooLarge { .. } => "upload-too-large",
            DeployError::RouteTaken { .. } => "route-taken",
            DeployError::RouteMove { .. } => "route-move",
            DeployError::UnknownFunction(_) => "unknown-function",
            DeployError::UnknownVersion { .. } => "unknown-version",
            DeployError::VersionServing { .. } => "version-serving",
            DeployError::InvalidTraffic(_) => "invalid-traffic",
            DeployError::BadRequest(_) => "bad-request",
            DeployError::Storage(_) => "storage",
            DeployError::InsufficientStorage(_) => "insufficient-storage",
            DeployError::NoSuchKey { .. } => "no-such-key",
            DeployError::NoSuchCall(_) => "no-such-call",
            DeployError::StateLimit(_) => "state-limit",
            DeployError::Conflict(_) => "conflict",
            DeployError::ClusterUnavailable(_) => "cluster-unavailable",
            DeployError::Build(_) => "build-failed",
        }
    }
}

/// A limit a request can breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Linear memory.
    Memory,
    /// Wall-clock time.
    Timeout,
    /// Concurrent instances.
    Concurrency,
    /// Request body size.
    RequestBody,
    /// Response body size.
    ResponseBody,
    /// Instruction budget.
    Fuel,
    /// The pace of the request body (it stalled, trickled, or did not
    /// arrive within the function's timeout).
    RequestBodyTime,
    /// The host's budget for request bodies held in memory.
    Buffer,
    /// The host's budget for guest memory, across all sandboxes.
    HostMemory,
    /// A key-value key over the host's key size limit (the guest gets an
    /// error from `wasi:keyvalue`, not a failed request).
    KvKey,
    /// A key-value value over the host's value size limit.
    KvValue,
    /// A write that would take a bucket over the host's bucket size limit.
    KvBucket,
    /// A key-value read (`get-many`) that would return more bytes than the
    /// guest's memory limit holds.
    KvRead,
}

impl Limit {
    /// Every limit.
    pub const ALL: [Limit; 13] = [
        Limit::Memory,
        Limit::Timeout,
        Limit::Concurrency,
        Limit::RequestBody,
        Limit::ResponseBody,
        Limit::Fuel,
        Limit::RequestBodyTime,
        Limit::Buffer,
        Limit::HostMemory,
        Limit::KvKey,
        Limit::KvValue,
        Limit::KvBucket,
        Limit::KvRead,
    ];

    /// The limit's name in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Memory => "memory",
            Limit::Timeout => "timeout",
            Limit::Concurrency => "concurrency",
            Limit::RequestBody => "request-body",
            Limit::ResponseBody => "response-body",
            Limit::Fuel => "fuel",
            Limit::RequestBodyTime => "request-body-time",
            Limit::Buffer => "buffer",
            Limit::HostMemory => "host-memory",
            Limit::KvKey => "kv-key",
            Limit::KvValue => "kv-value",
            Limit::KvBucket => "kv-bucket",
            Limit::KvRead => "kv-read",
        }
    }
}

/// Why one request did not get the guest's response.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// No route matches the path.
    #[error("no function serves `{0}`")]
    NoRoute(String),
    /// A request named a function that is not deployed (`wisp invoke`, a
    /// chained call, a background run).
    #[error("no function named `{0}` is deployed")]
    UnknownFunction(String),
    /// The request named a version the function does not have.
    #[error("function `{name}` has no version {version}")]
    NoSuchVersion {
        /// The function.
        name: String,
        /// The version asked for.
        version: String,
    },
    /// A limit was breached.
    #[error("{message}")]
    LimitExceeded {
        /// Which limit.
        limit: Limit,
        /// What happened, with the limit's value.
        message: String,
    },
    /// The guest trapped (panic, `unreachable`, stack overflow …).
    #[error("the function failed: {0}")]
    Trap(String),
    /// The guest exited with a non-zero status.
    #[error("the function exited with status {0}")]
    Exit(i32),
    /// The guest answered with an error instead of a response.
    #[error("the function returned an error: {0}")]
    GuestError(String),
    /// A CGI guest wrote something that is not a CGI response.
    #[error("the function wrote an invalid CGI response: {0}")]
    BadCgiResponse(String),
    /// The function exists but none of its code could be loaded.
    #[error("function `{0}` is unavailable: its code could not be loaded (see the host log)")]
    Unavailable(String),
    /// The function's stored state is damaged (its record edited by hand, a
    /// source file gone, its route claimed twice); `wisp ls` says why.
    #[error(
        "function `{0}` is unavailable: its stored record is damaged (see `wisp ls` or the host log)"
    )]
    Damaged(String),
    /// The request itself is malformed (e.g. a bad `Content-Length`).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The host could not run the guest; the message is wasmtime's (a pool
    /// limit, a resource table), which names no path.
    #[error("internal error: {0}")]
    Internal(String),
    /// The host could not give the guest what its settings grant (a
    /// directory it cannot open); the host log has the detail.
    #[error("internal error: {0}")]
    Grant(HostFailure),
    /// A cap on queued async calls leaves no room for this one (429, with
    /// `Retry-After`).
    #[error("{0}")]
    QueueFull(String),
    /// The host's storage is full (507).
    #[error("{0}")]
    InsufficientStorage(String),
    /// The guest worker process running the function failed (it died, or
    /// could not start); the host log says why (502).
    #[error("{0}")]
    WorkerFailed(String),
}

impl InvokeError {
    /// A limit breach with a message.
    pub fn limit(limit: Limit, message: impl Into<String>) -> Self {
        InvokeError::LimitExceeded {
            limit,
            message: message.into(),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            InvokeError::NoRoute(_)
            | InvokeError::UnknownFunction(_)
            | InvokeError::NoSuchVersion { .. } => StatusCode::NOT_FOUND,
            InvokeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            InvokeError::LimitExceeded { limit, .. } => match limit {
                Limit::Timeout => StatusCode::GATEWAY_TIMEOUT,
                Limit::Concurrency | Limit::Buffer | Limit::HostMemory => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                Limit::RequestBodyTime => StatusCode::REQUEST_TIMEOUT,
                Limit::RequestBody => StatusCode::PAYLOAD_TOO_LARGE,
                // Key-value breaches go back to the guest as errors and never
                // end a request on their own; a guest that gives up on one
                // answers for itself.
                Limit::Memory
                | Limit::ResponseBody
                | Limit::Fuel
                | Limit::KvKey
                | Limit::KvValue
                | Limit::KvBucket
                | Limit::KvRead => StatusCode::INTERNAL_SERVER_ERROR,
            },
            InvokeError::BadCgiResponse(_) => StatusCode::BAD_GATEWAY,
            InvokeError::Unavailable(_) | InvokeError::Damaged(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            InvokeError::QueueFull(_) => StatusCode::TOO_MANY_REQUESTS,
            InvokeError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            InvokeError::WorkerFailed(_) => StatusCode::BAD_GATEWAY,
            InvokeError::Trap(_)
            | InvokeError::Exit(_)
            | InvokeError::GuestError(_)
            | InvokeError::Internal(_)
            | InvokeError::Grant(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            InvokeError::NoRoute(_) => "no-route",
            InvokeError::UnknownFunction(_) => "unknown-function",
            InvokeError::NoSuchVersion { .. } => "no-such-version",
            InvokeError::LimitExceeded { .. } => "limit-exceeded",
            InvokeError::Trap(_) => "trap",
            InvokeError::Exit(_) => "exit",
            InvokeError::GuestError(_) => "guest-error",
            InvokeError::BadCgiResponse(_) => "bad-cgi-response",
            InvokeError::Unavailable(_) | InvokeError::Damaged(_) => "unavailable",
            InvokeError::BadRequest(_) => "bad-request",
            InvokeError::Internal(_) | InvokeError::Grant(_) => "internal",
            InvokeError::QueueFull(_) => "queue-full",
            InvokeError::InsufficientStorage(_) => "insufficient-storage",
            InvokeError::WorkerFailed(_) => "worker-failed",
        }
    }
}

/// Builds the JSON error response every error path uses.
pub fn json_error(
    status: StatusCode,
    kind: &str,
    message: &str,
    limit: Option<Limit>,
) -> http::Response<Bytes> {
    let body = ErrorBody {
        error: message.to_owned(),
        kind: kind.to_owned(),
        limit: limit.map(|l| l.as_str().to_owned()),
    };
    let mut text = serde_json::to_string(&body).unwrap_or_default();
    text.push('\n');
    let mut response = http::Response::new(Bytes::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if matches!(
        limit,
        Some(Limit::Concurrency | Limit::Buffer | Limit::HostMemory)
    ) {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

impl InvokeError {
    /// This error as its JSON response.
    pub fn to_response(&self) -> http::Response<Bytes> {
        let limit = match self {
            InvokeError::LimitExceeded { limit, .. } => Some(*limit),
            _ => None,
        };
        let mut response = json_error(self.status(), self.kind(), &self.to_string(), limit);
        if matches!(self, InvokeError::QueueFull(_)) {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

impl DeployError {
    /// This error as its JSON response.
    pub fn to_response(&self) -> http::Response<Bytes> {
        json_error(self.status(), self.kind(), &self.to_string(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_maps_to_one_status() {
        let cases = [
            (Limit::Timeout, 504),
            (Limit::Concurrency, 503),
            (Limit::RequestBody, 413),
            (Limit::Memory, 500),
            (Limit::ResponseBody, 500),
            (Limit::Fuel, 500),
            (Limit::RequestBodyTime, 408),
            (Limit::Buffer, 503),
            (Limit::HostMemory, 503),
        ];
        for (limit, status) in cases {
            assert_eq!(InvokeError::limit(limit, "x").status().as_u16(), status);
        }
    }

    #[test]
    fn error_bodies_are_json_naming_the_limit() {
        let response = InvokeError::limit(Limit::Concurrency, "too busy").to_response();
        assert_eq!(response.headers()["retry-after"], "1");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "too busy");
        assert_eq!(body["limit"], "concurrency");
        assert_eq!(body["kind"], "limit-exceeded");
    }

    #[test]
    fn a_host_failure_tells_the_client_what_failed_but_not_where() {
        let detail =
            "artifact store i/o on `/srv/wisp-data/artifacts/tmp/7-0.part`: Not a directory";
        let error = DeployError::from(HostFailure::logged(
            "storing the upload of `hello` failed",
            detail,
        ));
        let response = error.to_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            body["error"],
            "storage error: storing the upload of `hello` failed (see the host log)"
        );
        assert_eq!(body["kind"], "storage");
        let text = String::from_utf8_lossy(response.body()).into_owned();
        assert!(!text.contains("/srv") && !text.contains(".part"), "{text}");
    }
}
