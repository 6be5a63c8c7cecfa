//! Named crash points on the write path, so the tests can prove that a crash
//! inside each window of a deploy leaves the data dir whole.
//!
//! A debug build (what `cargo test` runs) reads `WISP_CRASH_POINT` once; when
//! the write path reaches the point it names, the process writes one line to
//! stderr, `crash point `NAME` reached; aborting`, and aborts: no destructor
//! runs, no file is closed or cleaned up, and no core file is written. A
//! release build ignores the variable: every point compiles to nothing.
//!
//! The points, in the order a deploy reaches them, and what a restart must
//! find after a crash at each (`tests/all/crash.rs` checks every one):
//!
//! * `temp-written` — a file's temp copy under `artifacts/tmp/` is written
//!   and fsynced, not yet renamed (in a deploy, the uploaded source). The old
//!   state, whole; start-up removes the temp file.
//! * `source-written` — the deploy's source is renamed into place. The old
//!   state; start-up removes the source, which no record names.
//! * `compiled-written` — the compiled artifact is renamed into place, its
//!   checksum not yet written. The old state; start-up removes the source
//!   and the unsummed artifact.
//! * `artifact-written` — the deploy's artifact and checksum are in place,
//!   its record not yet written. The old state; start-up removes all three.
//! * `record-written` — a function's record is replaced (a deploy, a traffic
//!   change, a rollback or a retire), the change not yet published or its
//!   garbage collected. The new state, whole; start-up removes the files of
//!   versions the record dropped.
//! * `gc-midway` — garbage collection has removed one file, the first of
//!   those it found unused (sources are collected before artifacts). The
//!   state the records name, whole; start-up removes the rest.
//! * `record-removed` — `wisp rm` removed the function's record, not yet its
//!   key-value bucket or secrets. The function is gone; start-up deletes its
//!   bucket and secrets, so a new function of that name starts empty.
//!
//! A point aborts the first time it is reached after start, so the server a
//! test arms must have nothing to write before the step under test.

/// A step of the write path after which a test may crash the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CrashPoint {
    /// A temp file is written and fsynced, not renamed.
    TempWritten,
    /// A deploy's source is in place.
    SourceWritten,
    /// A compiled artifact is in place, without its checksum.
    CompiledWritten,
    /// A deploy's artifact and checksum are in place, its record is not.
    ArtifactWritten,
    /// A record is replaced, the change not published.
    RecordWritten,
    /// Garbage collection removed a file.
    GcMidway,
    /// A removed function's record is gone, its state not yet.
    RecordRemoved,
}

#[cfg(debug_assertions)]
impl CrashPoint {
    /// The name `WISP_CRASH_POINT` gives it.
    fn name(self) -> &'static str {
        match self {
            CrashPoint::TempWritten => "temp-written",
            CrashPoint::SourceWritten => "source-written",
            CrashPoint::CompiledWritten => "compiled-written",
            CrashPoint::ArtifactWritten => "artifact-written",
            CrashPoint::RecordWritten => "record-written",
            CrashPoint::GcMidway => "gc-midway",
            CrashPoint::RecordRemoved => "record-removed",
        }
    }

    /// The write path is at this point: abort if `WISP_CRASH_POINT` names it.
    pub(crate) fn reached(self) {
        static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let armed = ARMED.get_or_init(|| std::env::var("WISP_CRASH_POINT").ok());
        if armed.as_deref() != Some(self.name()) {
            return;
        }
        eprintln!("crash point `{}` reached; aborting", self.name());
        // A deliberate crash should not leave a core file in the working
        // directory of whoever ran the tests.
        let no_core = rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        };
        let _ = rustix::process::setrlimit(rustix::process::Resource::Core, no_core);
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
impl CrashPoint {
    /// Release builds have no crash points.
    #[inline(always)]
    pub(crate) fn reached(self) {}
}
