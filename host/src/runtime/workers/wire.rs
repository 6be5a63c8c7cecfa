//! What the front process and a guest worker say to each other.
//!
//! A worker is started with two Unix sockets: its stdin carries the
//! front's calls (first one [`Assignment`], length-prefixed, with the
//! sealed memory file of its compiled code and its function's directories
//! riding along, open (`SCM_RIGHTS`), answered with one [`READY`] byte;
//! then the compact framing of `link.rs`, each call's
//! [`CallHead`] in its first frame) and its stdout carries the worker's
//! calls back (HTTP/2, the worker the client: key-value operations,
//! outbound and chained calls, finished-run reports, each naming its call
//! in [`CALL_HEADER`]). Everything the worker reports rides in its answer
//! or in [`Finished`].

use crate::observe::meter::GuestCost;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{IoSlice, Read};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;
use wisp_spec::inspect::Abi;
use wisp_spec::settings::RawSettings;

/// The byte a worker writes once it can serve.
pub(crate) const READY: u8 = b'R';

/// Largest assignment the worker reads (settings, secrets).
const MAX_ASSIGNMENT_BYTES: usize = 4 << 20;

/// Most directories a worker is handed open (each a descriptor riding
/// with its assignment, well under the kernel's 253 per message).
pub(crate) const MAX_GRANTED_DIRS: usize = 64;

/// Header of a worker's call back: the number of the call it is for.
pub(crate) const CALL_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-wisp-worker-call");

/// Response header of a worker's error answer: the limit it breached.
pub(crate) const LIMIT_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-wisp-worker-limit");

/// Response header of a worker's answer to a call that ran no guest: no
/// report follows.
pub(crate) const DONE_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-wisp-worker-done");

/// Trailer of a worker's answer: its run's [`Finished`] report.
pub(crate) const REPORT_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-wisp-worker-report");

/// Response header of a worker's answer: how long its sandbox took to
/// create, in microseconds.
pub(crate) const INSTANTIATE_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-wisp-worker-instantiate-us");

/// Header of an outbound call a worker asks the front to make: its URI.
pub(crate) const URI_HEADER: http::HeaderName = http::HeaderName::from_static("x-wisp-worker-uri");

/// Response header of an outbound call the front refused or could not
/// make: the error, as wasi:http names it.
pub(crate) const FAILED_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-wisp-worker-failed");

/// Removes what only a worker may say to its front from a guest's
/// response headers or trailers: a guest (or a client whose trailers an
/// echoing guest sends back) must not settle calls, forge a run's cost and
/// output, or claim a breach.
pub(crate) fn strip_worker_headers(headers: &mut http::HeaderMap) {
    for name in [
        &LIMIT_HEADER,
        &DONE_HEADER,
        &INSTANTIATE_HEADER,
        &REPORT_HEADER,
    ] {
        headers.remove(name);
    }
}

/// What a worker is told to be: one version of one function.
#[derive(Serialize, Deserialize)]
pub(crate) struct Assignment {
    pub(crate) function: String,
    pub(crate) version: u32,
    pub(crate) abi: Abi,
    pub(crate) settings: RawSettings,
    /// Its own secrets, and nothing else's.
    pub(crate) secrets: BTreeMap<String, String>,
    /// Sandboxes it may run at once (its engine's pool).
    pub(crate) max_instances: u32,
    /// Bytes of guest memory its sandboxes may hold at once.
    pub(crate) max_guest_memory: u64,
    /// Bytes of request bodies it may buffer at once.
    pub(crate) max_buffered: u64,
    /// Bytes of the guest memory budget granted with the assignment, so
    /// its first call need not ask the front for them.
    pub(crate) granted_memory: u64,
    /// The mounts in its settings' `dirs` whose directories the front
    /// opened for it, in the order their descriptors follow its code's.
    pub(crate) granted_dirs: Vec<usize>,
}

/// One call to a worker: what the request path knows of it.
#[derive(Serialize, Deserialize)]
pub(crate) struct CallHead {
    /// Its number, for the worker's calls back and its report.
    pub(crate) call: u64,
    /// The request's URI as the client sent it.
    pub(crate) uri: String,
    /// Its HTTP version: 10, 11, 20 or 30.
    pub(crate) http: u8,
    pub(crate) route: String,
    pub(crate) path_info: String,
    pub(crate) remote: std::net::SocketAddr,
    pub(crate) local: std::net::SocketAddr,
    pub(crate) trigger: wisp_spec::api::Trigger,
    pub(crate) request_id: String,
    /// How long ago it was routed: its deadline counts from then.
    pub(crate) elapsed_us: u64,
}

/// What a worker reports when a run is over: what the front's meter
/// records.
#[derive(Serialize, Deserialize)]
pub(crate) struct Finished {
    pub(crate) call: u64,
    pub(crate) wall_us: u64,
    pub(crate) cpu_us: u64,
    pub(crate) fuel: u64,
    pub(crate) peak_memory_bytes: u64,
    #[serde(with = "serde_bytes_b64")]
    pub(crate) stdout: Vec<u8>,
    #[serde(with = "serde_bytes_b64")]
    pub(crate) stderr: Vec<u8>,
    /// The worker's counts so far.
    pub(crate) counts: Counts,
    /// The front dropped the call before its answer (its client left) and
    /// the run was dropped with it: nothing to record, as an in-process run
    /// dropped with its request records nothing; its slots come back.
    #[serde(default)]
    pub(crate) dropped: bool,
}

/// What a worker has counted since it started, sent with each report (and
/// on its own when it changes between reports); the front adds what is
/// new to its own series.
#[derive(Serialize, Deserialize, Default, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Limit breaches, in `Limit::ALL`'s order.
    pub(crate) breaches: Vec<u64>,
    pub(crate) prepared: u64,
    pub(crate) prepared_used: u64,
}

impl Finished {
    /// The report of call `call`, dropped before its run reported.
    pub(crate) fn dropped(call: u64, counts: Counts) -> Finished {
        Finished {
            call,
            wall_us: 0,
            cpu_us: 0,
            fuel: 0,
            peak_memory_bytes: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
            counts,
            dropped: true,
        }
    }

    /// The run's cost.
    pub(crate) fn cost(&self) -> GuestCost {
        GuestCost {
            wall: Duration::from_micros(self.wall_us),
            cpu: Duration::from_micros(self.cpu_us),
            fuel: self.fuel,
            peak_memory_bytes: usize::try_from(self.peak_memory_bytes).unwrap_or(usize::MAX),
        }
    }
}

/// Bytes as base64 text in JSON.
mod serde_bytes_b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <&str>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// A value as the text of a header: its JSON (whose control characters
/// are escaped: only DEL, which JSON leaves bare, is escaped here).
pub(crate) fn encode_header<T: Serialize>(value: &T) -> Option<http::HeaderValue> {
    let mut json = serde_json::to_vec(value).ok()?;
    if json.contains(&0x7f) {
        json = json.iter().fold(Vec::new(), |mut out, &byte| {
            match byte {
                0x7f => out.extend_from_slice(br"\u007f"),
                byte => out.push(byte),
            }
            out
        });
    }
    http::HeaderValue::from_maybe_shared(bytes::Bytes::from(json)).ok()
}

/// The value of a header written by [`encode_header`].
pub(crate) fn decode_header<T: for<'de> Deserialize<'de>>(value: &http::HeaderValue) -> Option<T> {
    serde_json::from_slice(value.as_bytes()).ok()
}

/// Sends `assignment` on a spare's calls socket, length-prefixed, with
/// `code` (its sealed compiled code) and `dirs` (its function's granted
/// directories, opened read-only) riding along with the first byte: the
/// worker maps the very code the front checked, and is handed nothing else.
pub(crate) async fn send_assignment(
    socket: &mut tokio::net::UnixStream,
    assignment: &Assignment,
    code: BorrowedFd<'_>,
    dirs: &[std::fs::File],
) -> std::io::Result<()> {
    use std::os::fd::AsFd;
    use tokio::io::AsyncWriteExt;
    let json = serde_json::to_vec(assignment).map_err(std::io::Error::other)?;
    let len = u32::try_from(json.len()).map_err(std::io::Error::other)?;
    let mut head = len.to_le_bytes().to_vec();
    head.extend_from_slice(&json);
    let fds: Vec<BorrowedFd<'_>> = std::iter::once(code)
        .chain(dirs.iter().map(AsFd::as_fd))
        .collect();
    let sent = socket
        .async_io(tokio::io::Interest::WRITABLE, || {
            let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
            let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
            control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
            Ok(rustix::net::sendmsg(
                &*socket,
                &[IoSlice::new(&head)],
                &mut control,
                rustix::net::SendFlags::NOSIGNAL,
            )?)
        })
        .await?;
    socket.write_all(&head[sent..]).await
}

/// Reads an assignment, the file of its compiled code and its granted
/// directories from the calls socket `from` (blocking), within the bounds.
pub(crate) fn read_assignment(
    from: BorrowedFd<'_>,
) -> Result<(Assignment, OwnedFd, Vec<std::fs::File>), String> {
    let failed = |e: std::io::Error| format!("reading the assignment failed: {e}");
    let mut len = [0u8; 4];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1 + MAX_GRANTED_DIRS))];
    let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        from,
        &mut [std::io::IoSliceMut::new(&mut len)],
        &mut control,
        rustix::net::RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| failed(e.into()))?;
    if received.bytes == 0 {
        return Err("the front left before the assignment".into());
    }
    let mut fds = Vec::new();
    for message in control.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(handed) = message {
            fds.extend(handed);
        }
    }
    // The rest of the head, read as a file is (the descriptors came with
    // its first byte).
    let mut rest = std::fs::File::from(from.try_clone_to_owned().map_err(failed)?);
    rest.read_exact(&mut len[received.bytes..])
        .map_err(failed)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_ASSIGNMENT_BYTES {
        return Err(format!("an assignment of {len} bytes is too large"));
    }
    let mut json = vec![0u8; len];
    rest.read_exact(&mut json).map_err(failed)?;
    let assignment: Assignment =
        serde_json::from_slice(&json).map_err(|e| format!("a bad assignment: {e}"))?;
    let mut fds = fds.into_iter();
    let code = fds.next().ok_or("the assignment came without its code")?;
    let dirs: Vec<std::fs::File> = fds.map(std::fs::File::from).collect();
    if dirs.len() != assignment.granted_dirs.len() {
        return Err(format!(
            "the assignment names {} directories and came with {}",
            assignment.granted_dirs.len(),
            dirs.len()
        ));
    }
    Ok((assignment, code, dirs))
}

/// A key-value operation a worker asks the front for, on a bucket its
/// function names; the front checks the bucket is the function's.
#[derive(Serialize, Deserialize)]
pub(crate) enum KvCall {
    Get(crate::state::BucketId, String),
    GetMany(crate::state::BucketId, Vec<String>, u64),
    Exists(crate::state::BucketId, String),
    ListKeys(crate::state::BucketId, Option<String>, u64),
    Set(crate::state::BucketId, String, Vec<u8>),
    SetMany(crate::state::BucketId, Vec<(String, Vec<u8>)>),
    Delete(crate::state::BucketId, String),
    DeleteMany(crate::state::BucketId, Vec<String>),
    Increment(crate::state::BucketId, String, i64),
    CompareAndSwap(crate::state::BucketId, String, Option<Vec<u8>>, Vec<u8>),
    BucketBytes(crate::state::BucketId),
}

impl KvCall {
    /// The bucket it names.
    pub(crate) fn bucket(&self) -> &crate::state::BucketId {
        match self {
            KvCall::Get(b, ..)
            | KvCall::GetMany(b, ..)
            | KvCall::Exists(b, ..)
            | KvCall::ListKeys(b, ..)
            | KvCall::Set(b, ..)
            | KvCall::SetMany(b, ..)
            | KvCall::Delete(b, ..)
            | KvCall::DeleteMany(b, ..)
            | KvCall::Increment(b, ..)
            | KvCall::CompareAndSwap(b, ..)
            | KvCall::BucketBytes(b) => b,
        }
    }
}

/// A SQLite statement a worker asks the front to run, on a database its
/// function names; the front checks the database is one it was granted
/// and bounds the statement by the function's own limits. Answered with a
/// postcard `Result<SqlRows, SqlError>`.
#[derive(Serialize, Deserialize)]
pub(crate) struct SqlCall {
    pub(crate) database: crate::state::DatabaseId,
    pub(crate) statement: crate::state::SqlStatement,
}

/// The front's answer to a [`KvCall`].
#[derive(Serialize, Deserialize)]
pub(crate) enum KvReply {
    Value(Option<Vec<u8>>),
    Values(Vec<Option<Vec<u8>>>),
    Bool(bool),
    Keys(Vec<String>, Option<String>),
    Done,
    Number(i64),
    Bytes(u64),
    /// A breach of a limit, or a failure, with its message; `limit` names
    /// the breach (as [`crate::error::Limit::as_str`]) when it is one.
    Failed {
        message: String,
        limit: Option<KvBreach>,
    },
}

/// A key-value limit breach, carried so the guest sees the same error.
#[derive(Serialize, Deserialize)]
pub(crate) enum KvBreach {
    KeyTooLarge { bytes: u64, limit: u64 },
    ValueTooLarge { key: String, bytes: u64, limit: u64 },
    BucketFull { would_hold: u64, limit: u64 },
    ReadTooLarge { limit: u64 },
    NotAnInteger { key: String },
    Overflow { key: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_text_survives_a_header_as_json() {
        let text = "tab\there, DEL\u{7f}, quote \", newline\n, é ✓".to_owned();
        let header = encode_header(&text).expect("a header value");
        assert_eq!(
            decode_header::<String>(&header).as_deref(),
            Some(text.as_str())
        );
        let forged = http::HeaderValue::from_static("not json");
        assert_eq!(decode_header::<String>(&forged), None);
    }
}
