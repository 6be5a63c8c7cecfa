//! Per-function resource limits: their defaults and their ceilings.
//!
//! Each limit is a named constant with its unit. A function's settings may
//! override each one (within the ceiling); a breach ends that one request with
//! one status code and one message (see the host's `InvokeError`). The
//! enforcement lives with the sandbox (its sandbox module); this module is
//! plain data, shared with the fuzz targets.

use std::time::Duration;

/// Default cap on a guest's linear memory (each memory, and all together).
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 128 << 20;
/// Highest memory cap a function may ask for: the pooling allocator's slot size.
pub const MAX_MEMORY_LIMIT_BYTES: u64 = 4 << 30;
/// Default wall-clock deadline for one request, guest start to last body byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest deadline a function may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default number of requests one function serves at once.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 256;
/// Default cap on a request body, in bytes; larger bodies get 413.
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 100 << 20;
/// Default cap on a response body, in bytes; the response is cut off there.
pub const DEFAULT_MAX_RESPONSE_BODY_BYTES: u64 = 100 << 20;
/// Default cap on the table elements of one instance.
pub const DEFAULT_TABLE_ELEMENTS_LIMIT: usize = 100_000;
/// How long a request waits for a free instance slot before it gets 503.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(1);

/// The limits one function runs under: the defaults above, overridden by its
/// settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock deadline per request.
    pub timeout: Duration,
    /// Requests served at once by this function.
    pub max_concurrency: u32,
    /// Request body cap, in bytes.
    pub max_request_body_bytes: u64,
    /// Response body cap, in bytes.
    pub max_response_body_bytes: u64,
    /// Instruction budget per request, when metering is on for the function.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
            timeout: DEFAULT_TIMEOUT,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_request_body_bytes: DEFAULT_MAX_REQUEST_BODY_BYTES,
            max_response_body_bytes: DEFAULT_MAX_RESPONSE_BODY_BYTES,
            fuel: None,
        }
    }
}
