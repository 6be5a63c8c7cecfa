//! [`CallRecord`]: what is stored of one async call, and how it is shown
//! ([`CallRecord::info`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};
use wisp_spec::api::{CallInfo, CallResponse, CallState, CallbackInfo};

/// One async call as stored. Running is not a stored state (see
/// `queue.rs`): a running call is stored as queued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CallRecord {
    /// Time-ordered: 12 hex digits of the accept ms, 8 random.
    pub(crate) id: String,
    pub(crate) function: String,
    pub(crate) method: String,
    /// Path and query.
    pub(crate) uri: String,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) callback: Option<String>,
    pub(crate) state: CallState,
    pub(crate) attempts: u32,
    pub(crate) accepted_ms: u64,
    pub(crate) started_ms: Option<u64>,
    pub(crate) finished_ms: Option<u64>,
    /// When a queued call runs next.
    pub(crate) due_ms: u64,
    pub(crate) error: Option<String>,
    pub(crate) response: Option<StoredResponse>,
    pub(crate) callback_outcome: Option<String>,
}

/// The response of a call's last attempt; its body is stored apart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredResponse {
    pub(crate) status: u16,
    pub(crate) version: Option<u32>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) body_bytes: u64,
    pub(crate) truncated: bool,
}

/// Now, in ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh, time-ordered call id.
pub(crate) fn new_id(accepted_ms: u64) -> String {
    format!("{accepted_ms:012x}{:08x}", fastrand::u32(..))
}

/// True when `text` could be a call id (so it is safe in a path).
pub(crate) fn is_call_id(text: &str) -> bool {
    text.len() == 20 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `headers` as stored.
pub(crate) fn stored_headers(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

impl CallRecord {
    /// Its state as the API shows it: a queued call whose attempt is
    /// `running` now is running.
    pub(crate) fn state_now(&self, running: bool) -> CallState {
        if running && self.state == CallState::Queued {
            CallState::Running
        } else {
            self.state
        }
    }

    /// The call as the API shows it: `running_since` when an attempt is
    /// running now, `body` the kept result body (`None` leaves it out).
    pub(crate) fn info(&self, running_since: Option<u64>, body: Option<&Bytes>) -> CallInfo {
        let state = self.state_now(running_since.is_some());
        CallInfo {
            id: self.id.clone(),
            function: self.function.clone(),
            method: self.method.clone(),
            path: self.uri.clone(),
            state,
            attempts: self.attempts,
            accepted_unix_ms: self.accepted_ms,
            started_unix_ms: running_since.or(self.started_ms),
            finished_unix_ms: self.finished_ms,
            next_attempt_unix_ms: (state == CallState::Queued).then_some(self.due_ms),
            error: self.error.clone(),
            response: self.response.as_ref().map(|r| r.info(body)),
            callback: self.callback.as_ref().map(|url| CallbackInfo {
                url: url.clone(),
                outcome: self.callback_outcome.clone(),
            }),
        }
    }
}

impl StoredResponse {
    fn info(&self, body: Option<&Bytes>) -> CallResponse {
        let (text, base64) = match body.map(|b| std::str::from_utf8(b).map_err(|_| b)) {
            None => (None, None),
            Some(Ok(text)) => (Some(text.to_owned()), None),
            Some(Err(bytes)) => (None, Some(STANDARD.encode(bytes))),
        };
        CallResponse {
            status: self.status,
            version: self.version,
            headers: self
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), String::from_utf8_lossy(value).into_owned()))
                .collect(),
            body: text,
            body_base64: base64,
            body_bytes: self.body_bytes,
            truncated: self.truncated,
        }
    }
}
