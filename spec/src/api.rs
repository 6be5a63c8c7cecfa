//! The admin API's bodies, as types the server writes and the client reads.
//!
//! Every JSON body of `/v1` is one of these structs, so the host and the CLI
//! cannot drift apart: a field renamed here is renamed on both sides, and the
//! CLI never indexes untyped JSON by string keys.

use crate::inspect::Abi;
use crate::settings::RawSettings;
use crate::traffic::TrafficShare;
use serde::{Deserialize, Serialize};

/// `PUT /v1/functions/{name}`: what a deploy did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployReport {
    /// The function.
    pub name: String,
    /// Its route.
    pub route: String,
    /// The new version's number.
    pub version: u32,
    /// Its ABI.
    pub abi: Abi,
    /// Hash of the uploaded binary.
    pub source: String,
    /// Whether it was compiled now (false: an identical binary's artifact
    /// was reused).
    pub compiled: bool,
    /// Compile time, when compiled.
    pub compile_ms: Option<u64>,
    /// Size of the compiled artifact.
    pub artifact_bytes: u64,
    /// The settings it runs with, canonical text.
    pub settings: RawSettings,
    /// The version whose settings this one kept where the deploy gave
    /// none (a redeploy without `reset-settings`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_from: Option<u32>,
    /// The settings kept from [`DeployReport::kept_from`] that are not the
    /// defaults, e.g. `["timeout", "allow-outbound", "config"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_settings: Vec<String>,
    /// The function's route before this deploy moved it (`move-route`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
    /// Functions that use this one as middleware, each composed again into
    /// a new version (`NAME vN`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recomposed: Vec<String>,
}

/// One version of a function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionSummary {
    /// Its number.
    pub number: u32,
    /// Hash of its binary.
    pub source: String,
    /// Its ABI.
    pub abi: Abi,
    /// Deploy time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// Its effective settings.
    pub settings: RawSettings,
    /// Percent of traffic it takes.
    pub weight: u8,
    /// False when it cannot serve: it could not be loaded at start-up, or
    /// the last load of its code failed (see the host log).
    pub loaded: bool,
    /// True while its compiled code is in memory. Code loads on a version's
    /// first request and is evicted, least recently used first, past
    /// `wisp serve --max-loaded`.
    #[serde(default)]
    pub resident: bool,
    /// Where its binary came from, when the deploy said: e.g. the OCI
    /// artifact `oci://registry/repo@sha256:…` it was pulled from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// `GET /v1/functions/{name}`: a function, its versions and traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionInfo {
    /// Its name.
    pub name: String,
    /// Its route.
    pub route: String,
    /// Its versions, oldest first.
    pub versions: Vec<VersionSummary>,
    /// How traffic splits.
    pub traffic: Vec<TrafficShare>,
    /// Why it serves nothing, when it cannot: a damaged record, a missing
    /// source, a route another function claims too, or no loadable version
    /// that takes traffic. Absent when it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// Its cron schedules (those of the versions holding traffic).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<ScheduleInfo>,
}

/// A cron schedule of a function, and when it runs next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleInfo {
    /// The schedule, e.g. `*/5 * * * *` (UTC).
    pub schedule: String,
    /// What each tick requests: `POST` to this path.
    pub target: String,
    /// When it runs next, in seconds since the Unix epoch; absent if never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_unix: Option<u64>,
}

impl FunctionInfo {
    /// True when one version takes all traffic at `route`, and it runs the
    /// binary with hash `source` under exactly `settings`: deploying them
    /// again would change nothing. Never true of an unavailable function.
    pub fn serves(&self, route: &str, source: &str, settings: &RawSettings) -> bool {
        let [only] = self.traffic.as_slice() else {
            return false;
        };
        if self.unavailable.is_some() {
            return false;
        }
        // Compared validated, so `64MiB` and `67108864`, or an env list and
        // table with the same pairs, are the same settings.
        let wanted = settings.check();
        self.route == route
            && self
                .versions
                .iter()
                .find(|v| v.number == only.version)
                .is_some_and(|v| {
                    v.source == source && wanted.is_ok() && v.settings.check() == wanted
                })
    }
}

/// `DELETE /v1/functions/{name}`: what was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// The function removed.
    pub removed: String,
    /// Bytes its own key-value bucket held: the bucket was deleted with it,
    /// and so were its secrets.
    #[serde(default)]
    pub bucket_bytes: u64,
}

/// `DELETE /v1/functions/{name}/versions/{n}`: what was retired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    /// The function.
    pub function: String,
    /// The version retired.
    pub retired: u32,
    /// True when it was part of the rollback target, which is then dropped:
    /// rollback has nothing to go back to until the next traffic change.
    pub rollback_cleared: bool,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` when the host answers.
    pub status: String,
    /// Functions deployed.
    pub functions: usize,
    /// Ahead-of-time compilations since start.
    pub compilations: u64,
    /// In cluster mode, how this host stands with the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterHealth>,
    /// State files the host cannot use now (damaged), each named under the
    /// data dir with why: calls that need one fail until the operator
    /// repairs or removes it; every function keeps serving.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<String>,
    /// When the host builds source trees, each language's builder: whether
    /// this host has its toolchain, and its version or why not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builders: Vec<BuilderHealth>,
}

/// One builder of a host that builds source trees, in `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuilderHealth {
    /// `rust`, `c`, `python` or `javascript`.
    pub language: String,
    /// Whether this host can build it.
    pub available: bool,
    /// The toolchain's version, or why it is missing.
    pub detail: String,
}

/// A function's deploy token (`/v1/functions/{name}/tokens`): a credential
/// that may push to that function's git remote and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployTokenInfo {
    /// Its id (the first characters of its hash), to remove it by.
    pub id: String,
    /// When it was made, seconds since the epoch.
    pub created: u64,
    /// The token itself: only in the answer that made it (the host keeps
    /// only its hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// One line of a build's progress (`POST /v1/functions/{name}/build`
/// answers a stream of these, one JSON object per line): the build's own
/// output (and the host's notes, prefixed `wisp: `), then exactly one
/// `deployed` or `failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildEvent {
    /// A line of output.
    Log(String),
    /// Built and deployed.
    Deployed(Box<DeployReport>),
    /// Nothing to build: this commit (the push's `origin`) already serves
    /// all of the function's traffic — another host of the cluster built
    /// it.
    Unchanged {
        /// The version that serves it.
        version: u32,
        /// The function's route.
        route: String,
    },
    /// The build or the deploy failed: the error, as the API reports
    /// errors (`kind`, `message`).
    Failed {
        /// Machine-readable kind, e.g. `build-failed`.
        kind: String,
        /// What went wrong.
        message: String,
    },
}

/// A host's standing with its cluster, in `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterHealth {
    /// The NATS server it uses.
    pub url: String,
    /// Connected to it now.
    pub connected: bool,
    /// Caught up with the desired state since it last (re)connected.
    pub synced: bool,
    /// The last revision of the desired state this host applied.
    pub revision: u64,
    /// Revisions of the desired state it has not applied yet (as of the
    /// last it heard from NATS).
    pub behind: u64,
}

/// What started a function's run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// A client's HTTP request.
    #[default]
    Http,
    /// A cron schedule's tick.
    Cron,
    /// Another function's call to `http://NAME.wisp.internal`.
    Chain,
    /// A stored async call (`Prefer: respond-async`).
    Async,
    /// A batch of a WebSocket connection's events, from the host's gateway.
    #[serde(rename = "websocket")]
    WebSocket,
}

impl Trigger {
    /// Every trigger, in order.
    pub const ALL: [Trigger; 5] = [
        Trigger::Http,
        Trigger::Cron,
        Trigger::Chain,
        Trigger::Async,
        Trigger::WebSocket,
    ];

    /// Its name in headers, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::Cron => "cron",
            Trigger::Chain => "chain",
            Trigger::Async => "async",
            Trigger::WebSocket => "websocket",
        }
    }
}

/// Guest runs of one function, by what started them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerRuns {
    /// Client HTTP requests.
    pub http: u64,
    /// Cron ticks.
    pub cron: u64,
    /// Chained calls from other functions.
    pub chain: u64,
    /// Async calls.
    #[serde(rename = "async")]
    pub async_calls: u64,
    /// Batches of WebSocket events.
    #[serde(default)]
    pub websocket: u64,
}

impl TriggerRuns {
    /// The runs `trigger` started.
    pub fn get(&self, trigger: Trigger) -> u64 {
        match trigger {
            Trigger::Http => self.http,
            Trigger::Cron => self.cron,
            Trigger::Chain => self.chain,
            Trigger::Async => self.async_calls,
            Trigger::WebSocket => self.websocket,
        }
    }
}

/// A function's traffic over a recent window (the console's live figures).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrafficStats {
    /// The window, in seconds, ending now.
    pub window_seconds: u64,
    /// Requests per second over the window.
    pub requests_per_second: f64,
    /// Share of requests answered 5xx (0 to 1).
    pub error_rate: f64,
    /// Median latency to the response head, µs (a power of two: the upper
    /// bound of its histogram bucket); absent without traffic.
    pub p50_us: Option<u64>,
    /// 99th-percentile latency, µs, likewise.
    pub p99_us: Option<u64>,
    /// Mean time to create a sandbox, µs.
    pub instantiate_us: Option<u64>,
}

/// One second of a function's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// The second (Unix time).
    pub at_unix: u64,
    /// Requests answered in it.
    pub requests: u32,
    /// Of those, answered 5xx.
    pub errors: u32,
    /// Median latency, µs.
    pub p50_us: Option<u64>,
    /// 99th-percentile latency, µs.
    pub p99_us: Option<u64>,
    /// Mean instantiation time, µs.
    pub instantiate_us: Option<u64>,
}

/// `GET /v1/functions/{name}/stats?window=SECONDS`: recent traffic, and
/// the same second by second (at most the last 600 s are kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionStats {
    /// The function.
    pub name: String,
    /// Totals over the window.
    pub stats: TrafficStats,
    /// One point per second of the window, oldest first.
    pub history: Vec<HistoryPoint>,
}

/// Cumulative usage of one function since the host started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    /// Requests that reached a guest.
    pub requests: u64,
    /// Those requests by what started them.
    #[serde(default)]
    pub runs: TriggerRuns,
    /// Wall time in guests, seconds.
    pub wall_seconds: f64,
    /// CPU time in guests, seconds.
    pub cpu_seconds: f64,
    /// Fuel consumed (metered functions only).
    pub fuel: u64,
    /// Peak memory × wall time, GB·s.
    pub memory_gb_seconds: f64,
    /// The largest linear memory any one request reached, in bytes.
    pub peak_memory_bytes: u64,
}

/// `GET /v1/functions/{name}/usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionUsage {
    /// The function.
    pub name: String,
    /// Its usage.
    pub usage: UsageReport,
}

/// Which output stream a guest line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output (components only; a CGI guest's stdout is its response).
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The stream's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line a guest printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Position in the book, increasing from 1.
    pub seq: u64,
    /// When it was recorded, milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
    /// The version that printed it.
    pub version: u32,
    /// The request it belongs to.
    pub request_id: String,
    /// What started that request.
    #[serde(default)]
    pub trigger: Trigger,
    /// The distributed trace of that request, when the host traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Which stream.
    pub stream: Stream,
    /// The text, without the newline.
    pub text: String,
}

/// One line of `GET /v1/functions/{name}/logs` (JSON lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LogEvent {
    /// A guest's line.
    Line(LogLine),
    /// Older lines were dropped to stay within the log bound.
    Dropped {
        /// How many.
        dropped: u64,
    },
    /// A follower fell behind and missed lines.
    Skipped {
        /// How many.
        skipped: u64,
    },
}

/// The body of every error answer: `{"error": "...", "kind": "..."}`, plus the
/// limit when one was breached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong and what to do.
    pub error: String,
    /// A short machine-readable kind, e.g. `not-wasm`.
    pub kind: String,
    /// The limit breached, for `limit-exceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_events_read_back_as_what_they_are() {
        let line = LogLine {
            seq: 1,
            time_unix_ms: 2,
            version: 3,
            request_id: "r".into(),
            trigger: Trigger::Async,
            trace_id: None,
            stream: Stream::Stderr,
            text: "hi".into(),
        };
        let text = serde_json::to_string(&LogEvent::Line(line.clone())).unwrap();
        assert!(text.contains(r#""trigger":"async""#), "{text}");
        let untriggered = text.replace(r#""trigger":"async","#, "");
        let LogEvent::Line(old) = serde_json::from_str(&untriggered).unwrap() else {
            panic!("{untriggered} is a line");
        };
        assert_eq!(
            old.trigger,
            Trigger::Http,
            "a line without a trigger is http"
        );
        assert_eq!(
            serde_json::from_str::<LogEvent>(&text).unwrap(),
            LogEvent::Line(line)
        );
        let dropped: LogEvent = serde_json::from_str(r#"{"dropped": 4}"#).unwrap();
        assert_eq!(dropped, LogEvent::Dropped { dropped: 4 });
    }

    #[test]
    fn call_states_parse_from_their_names_only() {
        for state in CallState::ALL {
            assert_eq!(state.as_str().parse::<CallState>(), Ok(state));
        }
        let error = "finished".parse::<CallState>().unwrap_err();
        assert!(error.contains("queued, running, done or failed"), "{error}");
    }

    #[test]
    fn unavailable_is_written_only_when_set_and_optional_to_read() {
        let info = FunctionInfo {
            name: "f".into(),
            route: "/f".into(),
            versions: vec![],
            traffic: vec![],
            unavailable: None,
            schedules: Vec::new(),
        };
        let text = serde_json::to_string(&info).unwrap();
        assert!(!text.contains("unavailable"), "{text}");
        assert_eq!(serde_json::from_str::<FunctionInfo>(&text).unwrap(), info);
        let damaged = FunctionInfo {
            unavailable: Some("its record has no traffic split".into()),
            schedules: Vec::new(),
            ..info
        };
        let text = serde_json::to_string(&damaged).unwrap();
        assert_eq!(
            serde_json::from_str::<FunctionInfo>(&text).unwrap(),
            damaged
        );
    }

    #[test]
    fn serves_compares_route_source_and_validated_settings() {
        let settings = RawSettings::new().with("memory", "64MiB").unwrap();
        let info = FunctionInfo {
            name: "f".into(),
            route: "/f".into(),
            versions: vec![VersionSummary {
                number: 1,
                source: "abc".into(),
                abi: Abi::Cgi,
                created_unix: 0,
                settings: settings.check().unwrap().to_raw(),
                weight: 100,
                loaded: true,
                resident: false,
                origin: None,
            }],
            traffic: vec![TrafficShare {
                version: 1,
                weight: 100,
            }],
            unavailable: None,
            schedules: Vec::new(),
        };
        let same = RawSettings::new().with("memory", "67108864").unwrap();
        assert!(info.serves("/f", "abc", &same));
        assert!(!info.serves("/g", "abc", &same));
        assert!(!info.serves("/f", "abd", &same));
        assert!(!info.serves("/f", "abc", &RawSettings::new()));
        let damaged = FunctionInfo {
            unavailable: Some("its traffic split is invalid".into()),
            ..info
        };
        assert!(
            !damaged.serves("/f", "abc", &same),
            "redeploying repairs it"
        );
    }
}

/// `GET /v1/functions/{name}/kv` and `GET /v1/buckets/{bucket}/kv`: one page
/// of a key-value bucket's keys, in byte order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    /// The bucket, e.g. ``function `shop`'s own bucket``.
    pub bucket: String,
    /// The keys on this page.
    pub keys: Vec<String>,
    /// Pass as `?after=` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /v1/functions/{name}/secrets`: the names of a function's secrets
/// (their values are never shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretNames {
    /// The function.
    pub function: String,
    /// Its secrets' names, sorted.
    pub secrets: Vec<String>,
}

/// The state of an async call (`Prefer: respond-async`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    /// Accepted, waiting for a worker (or for its next retry).
    Queued,
    /// An attempt is running.
    Running,
    /// An attempt answered below 500; its response is kept.
    Done,
    /// Every attempt failed (5xx, trap or timeout): dead-lettered, kept
    /// for inspection with its last response.
    Failed,
}

impl CallState {
    /// Every state, in order.
    pub const ALL: [CallState; 4] = [
        CallState::Queued,
        CallState::Running,
        CallState::Done,
        CallState::Failed,
    ];

    /// Its name in the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Queued => "queued",
            CallState::Running => "running",
            CallState::Done => "done",
            CallState::Failed => "failed",
        }
    }

    /// True once the call will not run again.
    pub fn is_final(self) -> bool {
        matches!(self, CallState::Done | CallState::Failed)
    }
}

impl std::str::FromStr for CallState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        CallState::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                format!("`{text}` is not a call state: expected queued, running, done or failed")
            })
    }
}

/// `GET /v1/calls/{id}`: one async call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallInfo {
    /// The call id (also the `x-wisp-call-id` of its `202`).
    pub id: String,
    /// The function it calls.
    pub function: String,
    /// The request's method.
    pub method: String,
    /// The request's path and query, as the client sent them.
    pub path: String,
    /// Where it stands.
    pub state: CallState,
    /// Attempts finished so far (a run cut short by a host crash does not
    /// count).
    pub attempts: u32,
    /// When it was accepted (ms since the Unix epoch).
    pub accepted_unix_ms: u64,
    /// When its latest attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_unix_ms: Option<u64>,
    /// When it finished (done or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_unix_ms: Option<u64>,
    /// When a queued call runs next (after a retry's backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_unix_ms: Option<u64>,
    /// Why the latest attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The response of the last attempt, once the call is done or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<CallResponse>,
    /// Where the result is POSTed (`x-wisp-callback`), and how that went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackInfo>,
}

/// The response an async call's attempt got from its function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallResponse {
    /// Its status code.
    pub status: u16,
    /// The version that served it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Its headers, in order (values that are not UTF-8 are shown lossily).
    pub headers: Vec<(String, String)>,
    /// The body, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body in standard base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// The body's full length; only the first part is kept when it is over
    /// the cap.
    pub body_bytes: u64,
    /// True when the body was longer than the cap and is cut short here.
    pub truncated: bool,
}

/// An async call's callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackInfo {
    /// Where the result is POSTed.
    pub url: String,
    /// How delivery went: e.g. `delivered (204)`, or why it failed; absent
    /// until tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// `GET /v1/calls?function=&state=&before=&limit=`: async calls, newest
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallList {
    /// The calls on this page.
    pub calls: Vec<CallInfo>,
    /// Pass as `?before=` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The body of an async call's `202 Accepted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallAccepted {
    /// The call id.
    pub id: String,
    /// Where to poll it on the admin API.
    pub status_url: String,
}

/// A guest worker process (`wisp serve --isolation process`), as `GET
/// /v1/workers` and `wisp workers` show it: an operator checks its jail in
/// `/proc/PID/status` (`Seccomp: 2`, `NoNewPrivs: 1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The function it serves.
    pub function: String,
    /// The version it serves.
    pub version: u32,
    /// Its process id.
    pub pid: u32,
    /// Calls it is serving now.
    pub calls_in_flight: usize,
    /// Seconds since its last call.
    pub idle_seconds: u64,
}
