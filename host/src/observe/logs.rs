//! Guest logs: what each function's guests print, kept in a bounded buffer.
//!
//! After every request, the lines a guest wrote to stdout and stderr (already
//! capped per request) are appended to its function's [`LogBook`] with the
//! version and request id. The book holds at most [`LOG_BOOK_BYTES`]; the
//! oldest lines are dropped, and counted, so printing can never grow host
//! memory without bound. Followers (`wisp logs --follow`) get new lines as
//! they arrive through a bounded broadcast channel; a follower too slow to
//! keep up skips lines and is told how many.

use crate::observe::trace::RequestTrace;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
pub use wisp_spec::api::{LogLine, Stream};

/// Bytes of log text kept per function.
pub const LOG_BOOK_BYTES: usize = 1 << 20;
/// Longest line kept, in bytes; longer lines are truncated.
pub const MAX_LINE_BYTES: usize = 4096;
/// Lines buffered for each follower.
const FOLLOW_BUFFER_LINES: usize = 1024;

struct Book {
    lines: VecDeque<LogLine>,
    bytes: usize,
    next_seq: u64,
    dropped: u64,
}

/// One function's log buffer.
pub struct LogBook {
    book: Mutex<Book>,
    /// Created on the first follow: an idle function holds no channel buffer.
    followers: Mutex<Option<broadcast::Sender<LogLine>>>,
}

impl Default for LogBook {
    fn default() -> Self {
        LogBook {
            book: Mutex::new(Book {
                lines: VecDeque::new(),
                bytes: 0,
                next_seq: 1,
                dropped: 0,
            }),
            followers: Mutex::new(None),
        }
    }
}

/// What [`LogBook::read`] returns.
#[derive(Debug, Clone, Serialize)]
pub struct LogPage {
    /// Lines recorded at or after the asked time, oldest first.
    pub lines: Vec<LogLine>,
    /// Lines dropped so far to stay within the bound.
    pub dropped: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl LogBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic while holding the lock leaves a consistent (if partial) book.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records what a guest wrote to `stream` during request `request_id`.
    pub fn record(
        &self,
        version: u32,
        request: &RequestTrace,
        request_id: &str,
        stream: Stream,
        output: &[u8],
    ) {
        if output.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(output);
        let time_unix_ms = now_ms();
        let mut book = self.lock();
        for raw in text.lines() {
            let mut line = raw.to_owned();
            if line.len() > MAX_LINE_BYTES {
                let mut cut = MAX_LINE_BYTES;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
                line.push('…');
            }
            let entry = LogLine {
                seq: book.next_seq,
                time_unix_ms,
                version,
                request_id: request_id.to_owned(),
                trigger: request.trigger,
                trace_id: request.trace_id.as_deref().map(str::to_owned),
                stream,
                text: line,
            };
            book.next_seq += 1;
            book.bytes += entry.text.len();
            while book.bytes > LOG_BOOK_BYTES {
                let Some(old) = book.lines.pop_front() else {
                    break;
                };
                book.bytes -= old.text.len();
                book.dropped += 1;
            }
            self.publish(&entry);
            book.lines.push_back(entry);
        }
    }

    /// Lines recorded at or after `since_unix_ms`, at most the last `limit`.
    pub fn read(&self, since_unix_ms: u64, limit: usize) -> LogPage {
        let book = self.lock();
        let matching: Vec<&LogLine> = book
            .lines
            .iter()
            .filter(|l| l.time_unix_ms >= since_unix_ms)
            .collect();
        let skip = matching.len().saturating_sub(limit);
        LogPage {
            lines: matching.into_iter().skip(skip).cloned().collect(),
            dropped: book.dropped,
        }
    }

    /// A receiver of lines recorded from now on.
    pub fn follow(&self) -> broadcast::Receiver<LogLine> {
        let mut followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        followers
            .get_or_insert_with(|| broadcast::channel(FOLLOW_BUFFER_LINES).0)
            .subscribe()
    }

    /// Sends a new line to the followers, if there are any.
    fn publish(&self, line: &LogLine) {
        let followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = followers.as_ref()
            && sender.receiver_count() > 0
        {
            // A follower gone between the check and the send is not an error.
            let _ = sender.send(line.clone());
        }
    }

    /// Bytes of text held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_tagged() {
        let book = LogBook::default();
        book.record(
            2,
            &RequestTrace::default(),
            "req-1",
            Stream::Stderr,
            b"one\ntwo\n",
        );
        let page = book.read(0, 100);
        assert_eq!(page.lines.len(), 2);
        assert_eq!(page.lines[0].text, "one");
        assert_eq!(page.lines[1].seq, 2);
        assert_eq!(page.lines[1].version, 2);
        assert_eq!(page.lines[1].request_id, "req-1");
    }

    #[test]
    fn the_book_stays_within_its_bound_and_counts_drops() {
        let book = LogBook::default();
        let line = "x".repeat(1000) + "\n";
        for _ in 0..3000 {
            book.record(
                1,
                &RequestTrace::default(),
                "r",
                Stream::Stdout,
                line.as_bytes(),
            );
        }
        assert!(book.bytes() <= LOG_BOOK_BYTES);
        let page = book.read(0, usize::MAX);
        assert!(page.dropped > 0);
        assert_eq!(page.dropped + page.lines.len() as u64, 3000);
        assert_eq!(
            page.lines.last().unwrap().seq,
            3000,
            "the newest lines are kept"
        );
    }

    #[test]
    fn long_lines_are_truncated() {
        let book = LogBook::default();
        book.record(
            1,
            &RequestTrace::default(),
            "r",
            Stream::Stdout,
            "é".repeat(5000).as_bytes(),
        );
        let text = &book.read(0, 1).lines[0].text;
        assert!(text.len() <= MAX_LINE_BYTES + 3);
        assert!(text.ends_with('…'));
    }

    #[test]
    fn limit_keeps_the_newest() {
        let book = LogBook::default();
        book.record(
            1,
            &RequestTrace::default(),
            "r",
            Stream::Stdout,
            b"a\nb\nc\n",
        );
        let page = book.read(0, 2);
        let texts: Vec<&str> = page.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["b", "c"]);
    }

    #[tokio::test]
    async fn followers_receive_new_lines() {
        let book = LogBook::default();
        let mut follower = book.follow();
        book.record(1, &RequestTrace::default(), "r", Stream::Stdout, b"hello\n");
        assert_eq!(follower.recv().await.unwrap().text, "hello");
    }
}
