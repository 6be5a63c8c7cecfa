//! [`Backlog`]: the async calls a node has queued and not yet finished —
//! how many, and how many request-body bytes — per function and in all, so
//! a new call past a cap is refused (`429`) before anything is stored.
//!
//! Any public client can send `Prefer: respond-async`, so without a cap it
//! could fill the disk. The per-function caps are the function's settings
//! (`async-max-queued`, `async-max-queued-bytes`); the host's are
//! [`AsyncCalls::max_queued`](super::AsyncCalls) and
//! [`AsyncCalls::max_queued_bytes`](super::AsyncCalls). The counts live in
//! memory, rebuilt from the queue when it opens.

use std::collections::HashMap;
use std::sync::Mutex;
use wisp_spec::units::format_size;

/// The caps a new call is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    /// Most queued calls of the function.
    pub(crate) function_calls: u64,
    /// Most request-body bytes of the function's queued calls.
    pub(crate) function_bytes: u64,
    /// Most queued calls of the host.
    pub(crate) host_calls: u64,
    /// Most request-body bytes of the host's queued calls.
    pub(crate) host_bytes: u64,
}

/// Why a call was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    /// The function's own caps.
    #[error(
        "function `{function}` has {calls} async calls ({}) queued, its most (see its `async-max-queued` and `async-max-queued-bytes` settings); retry later",
        format_size(*.bytes)
    )]
    Function {
        /// The function.
        function: String,
        /// Its queued calls.
        calls: u64,
        /// Their request bodies' bytes.
        bytes: u64,
    },
    /// The host's caps.
    #[error(
        "the host has {calls} async calls ({}) queued, its most (`wisp serve --max-queued-calls`, `--max-queued-call-bytes`); retry later",
        format_size(*.bytes)
    )]
    Host {
        /// The host's queued calls.
        calls: u64,
        /// Their request bodies' bytes.
        bytes: u64,
    },
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    calls: u64,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.calls += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }

    fn remove(&mut self, bytes: u64) {
        self.calls = self.calls.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }

    fn would_exceed(&self, bytes: u64, max_calls: u64, max_bytes: u64) -> bool {
        self.calls >= max_calls || self.bytes.saturating_add(bytes) > max_bytes
    }
}

#[derive(Debug, Default)]
struct Counts {
    /// Call id → its function and request-body bytes.
    calls: HashMap<String, (String, u64)>,
    functions: HashMap<String, Tally>,
    total: Tally,
}

/// The queued calls of a node.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    counts: Mutex<Counts>,
}

impl Backlog {
    /// Counts call `id` of `function` with a body of `bytes`, if the caps
    /// leave room for it.
    pub(crate) fn admit(
        &self,
        id: &str,
        function: &str,
        bytes: u64,
        caps: Caps,
    ) -> Result<(), Full> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let own = counts.functions.get(function).copied().unwrap_or_default();
        if own.would_exceed(bytes, caps.function_calls, caps.function_bytes) {
            return Err(Full::Function {
                function: function.to_owned(),
                calls: own.calls,
                bytes: own.bytes,
            });
        }
        if counts
            .total
            .would_exceed(bytes, caps.host_calls, caps.host_bytes)
        {
            return Err(Full::Host {
                calls: counts.total.calls,
                bytes: counts.total.bytes,
            });
        }
        Self::count(&mut counts, id, function, bytes);
        Ok(())
    }

    /// Counts a call found queued when the queue opened (no caps: it was
    /// admitted before).
    pub(crate) fn note(&self, id: &str, function: &str, bytes: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        Self::count(&mut counts, id, function, bytes);
    }

    /// Stops counting call `id` (finished, or never stored).
    pub(crate) fn finish(&self, id: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let Some((function, bytes)) = counts.calls.remove(id) else {
            return;
        };
        counts.total.remove(bytes);
        if let Some(tally) = counts.functions.get_mut(&function) {
            tally.remove(bytes);
            if tally.calls == 0 {
                counts.functions.remove(&function);
            }
        }
    }

    fn count(counts: &mut Counts, id: &str, function: &str, bytes: u64) {
        if counts.calls.contains_key(id) {
            return;
        }
        counts
            .calls
            .insert(id.to_owned(), (function.to_owned(), bytes));
        counts.total.add(bytes);
        counts
            .functions
            .entry(function.to_owned())
            .or_default()
            .add(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Caps = Caps {
        function_calls: 2,
        function_bytes: 100,
        host_calls: 3,
        host_bytes: 1000,
    };

    #[test]
    fn a_function_past_its_caps_is_refused_and_others_are_not() {
        let backlog = Backlog::default();
        backlog.admit("1", "a", 10, CAPS).unwrap();
        backlog.admit("2", "a", 10, CAPS).unwrap();
        assert!(matches!(
            backlog.admit("3", "a", 10, CAPS),
            Err(Full::Function { calls: 2, .. })
        ));
        backlog.admit("3", "b", 10, CAPS).unwrap();
        assert!(matches!(
            backlog.admit("4", "c", 10, CAPS),
            Err(Full::Host { calls: 3, .. })
        ));
        backlog.finish("1");
        backlog.admit("4", "a", 10, CAPS).unwrap();
    }

    #[test]
    fn bytes_count_as_well_as_calls() {
        let backlog = Backlog::default();
        backlog.admit("1", "a", 60, CAPS).unwrap();
        assert!(backlog.admit("2", "a", 41, CAPS).is_err());
        backlog.admit("2", "a", 40, CAPS).unwrap();
        backlog.finish("2");
        backlog.finish("2");
        backlog.admit("3", "a", 40, CAPS).unwrap();
    }
}
