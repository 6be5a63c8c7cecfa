//! Compiled code by artifact, resident only while it is used: a version's
//! code is loaded (mmap + pre-link) on its first request, shared by every
//! version with the same binary, and evicted least-recently-used first when
//! more is loaded than the host's budget allows ([`Residency`]).
//!
//! An idle function therefore costs its record and its metric series, not
//! its code. Eviction only drops the cache's reference: a request that
//! started on the code keeps it until it ends, and the next request loads
//! it again. Loads of one artifact take turns ([`LoadTurn`]), so concurrent
//! first requests load it once; a load that failed is not retried for
//! [`LOAD_RETRY_AFTER`], so a broken artifact cannot make every request
//! re-read it.

use crate::error::DeployError;
use crate::runtime::function::{Linkers, LoadedCode};
use arc_swap::ArcSwapOption;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wisp_spec::inspect::Abi;
use wisp_spec::source::SourceHash;

/// Default number of artifacts loaded at once.
pub const DEFAULT_MAX_LOADED: usize = 256;
/// Default bytes of compiled artifacts loaded at once.
pub const DEFAULT_MAX_LOADED_BYTES: u64 = 512 << 20;

/// How long after a failed load requests are refused without trying again.
pub(crate) const LOAD_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A slot's turn to load, held while its code loads; it holds when the last
/// load failed.
pub(crate) type LoadTurn = tokio::sync::OwnedMutexGuard<Option<Instant>>;

/// How much compiled code may stay loaded; past either bound the least
/// recently used is evicted.
#[derive(Debug, Clone, Copy)]
pub struct Residency {
    /// Artifacts loaded at once (at least 1).
    pub max_loaded: usize,
    /// Bytes of compiled artifacts loaded at once (their file sizes). The
    /// artifact just loaded always stays, even when it alone is bigger.
    pub max_loaded_bytes: u64,
}

impl Default for Residency {
    fn default() -> Self {
        Residency {
            max_loaded: DEFAULT_MAX_LOADED,
            max_loaded_bytes: DEFAULT_MAX_LOADED_BYTES,
        }
    }
}

/// One artifact's code, loaded or not. Versions hold it by `Arc`.
pub(crate) struct CodeSlot {
    /// The artifact key.
    pub(crate) key: String,
    /// How the code is called.
    pub(crate) abi: Abi,
    /// The source it is compiled from (to recompile a corrupt artifact).
    pub(crate) source: SourceHash,
    /// A function that uses it, for log lines.
    pub(crate) function: Arc<str>,
    loaded: ArcSwapOption<LoadedCode>,
    /// The artifact's size while loaded.
    bytes: AtomicU64,
    /// The host's use clock when a request last took it.
    last_used: AtomicU64,
    /// Set when its last load failed.
    broken: AtomicBool,
    /// Taken while it loads.
    loading: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl CodeSlot {
    /// The loaded code, if resident.
    pub(crate) fn get(&self) -> Option<Arc<LoadedCode>> {
        self.loaded.load_full()
    }

    /// True when its last load failed.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    /// Waits for its turn to load.
    pub(crate) async fn turn(&self) -> LoadTurn {
        self.loading.clone().lock_owned().await
    }

    /// Waits for its turn to load (blocking).
    pub(crate) fn blocking_turn(&self) -> LoadTurn {
        self.loading.clone().blocking_lock_owned()
    }

    /// True when its last load failed less than [`LOAD_RETRY_AFTER`] ago.
    pub(crate) fn failed_recently(turn: &LoadTurn) -> bool {
        turn.is_some_and(|at| at.elapsed() < LOAD_RETRY_AFTER)
    }
}

/// What a load did, for the metrics.
pub(crate) struct Loaded {
    /// The code.
    pub(crate) code: Arc<LoadedCode>,
    /// Set when this call loaded it (`None`: it was resident already).
    pub(crate) admitted: Option<Admission>,
}

/// How the resident set stands after a load.
pub(crate) struct Admission {
    /// Artifacts evicted to make room.
    pub(crate) evicted: usize,
    /// Artifacts loaded now.
    pub(crate) resident: usize,
    /// Their bytes.
    pub(crate) bytes: u64,
}

/// Every artifact's slot, and the loaded ones.
pub(crate) struct CodeCache {
    budget: Residency,
    slots: Mutex<HashMap<String, Weak<CodeSlot>>>,
    resident: Mutex<Vec<Weak<CodeSlot>>>,
    clock: AtomicU64,
}

impl CodeCache {
    /// An empty cache keeping at most `budget` loaded.
    pub(crate) fn new(budget: Residency) -> CodeCache {
        CodeCache {
            budget,
            slots: Mutex::default(),
            resident: Mutex::default(),
            clock: AtomicU64::new(0),
        }
    }

    /// The slot of artifact `key`, shared with every version that uses it;
    /// created (unloaded) when none is alive.
    pub(crate) fn slot(
        &self,
        key: &str,
        abi: Abi,
        source: SourceHash,
        function: &str,
    ) -> Arc<CodeSlot> {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(key).and_then(Weak::upgrade) {
            return slot;
        }
        let slot = Arc::new(CodeSlot {
            key: key.to_owned(),
            abi,
            source,
            function: Arc::from(function),
            loaded: ArcSwapOption::empty(),
            bytes: AtomicU64::new(0),
            last_used: AtomicU64::new(0),
            broken: AtomicBool::new(false),
            loading: Arc::default(),
        });
        if slots.len().is_power_of_two() {
            // Now and then, so creating n slots stays O(n).
            slots.retain(|_, slot| slot.strong_count() > 0);
        }
        slots.insert(key.to_owned(), Arc::downgrade(&slot));
        slot
    }

    /// A slot whose code is `code`, loaded for good: a guest worker's one
    /// function, whose code was handed to it.
    pub(crate) fn resident(
        &self,
        abi: Abi,
        source: SourceHash,
        function: &str,
        code: LoadedCode,
    ) -> Arc<CodeSlot> {
        let slot = self.slot(source.as_str(), abi, source.clone(), function);
        slot.loaded.store(Some(Arc::new(code)));
        slot
    }

    /// Marks `slot` as just used (by a request).
    pub(crate) fn touch(&self, slot: &CodeSlot) {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        slot.last_used.store(now, Ordering::Relaxed);
    }

    /// The code of `slot`, loading it in `turn` when it is not resident
    /// (blocking): `artifact` gives the verified compiled file. Then evicts
    /// the least recently used others until the budget holds.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        linkers: &Linkers,
        slot: &Arc<CodeSlot>,
        turn: &mut LoadTurn,
        artifact: impl FnOnce() -> Result<PathBuf, DeployError>,
    ) -> Result<Loaded, DeployError> {
        self.touch(slot);
        if let Some(code) = slot.get() {
            return Ok(Loaded {
                code,
                admitted: None,
            });
        }
        let loaded = artifact().and_then(|path| {
            let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
            LoadedCode::load(engine, linkers, slot.abi, &path).map(|code| (code, bytes))
        });
        let (code, bytes) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                **turn = Some(Instant::now());
                slot.broken.store(true, Ordering::Relaxed);
                return Err(e);
            }
        };
        **turn = None;
        slot.broken.store(false, Ordering::Relaxed);
        let code = Arc::new(code);
        slot.bytes.store(bytes, Ordering::Relaxed);
        slot.loaded.store(Some(code.clone()));
        let admission = self.admit(slot);
        Ok(Loaded {
            code,
            admitted: Some(admission),
        })
    }

    /// Adds `slot` to the resident set and evicts others, least recently
    /// used first, until the budget holds.
    fn admit(&self, slot: &Arc<CodeSlot>) -> Admission {
        let mut resident = lock(&self.resident);
        let mut live: Vec<Arc<CodeSlot>> = resident
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|s| s.get().is_some() && !Arc::ptr_eq(s, slot))
            .collect();
        let size = |s: &Arc<CodeSlot>| s.bytes.load(Ordering::Relaxed);
        let mut bytes: u64 = live.iter().map(size).sum::<u64>() + size(slot);
        let mut evicted = 0;
        // `live` holds the others; `slot` itself always stays.
        while live.len() + 1 > self.budget.max_loaded.max(1) || bytes > self.budget.max_loaded_bytes
        {
            let Some(oldest) =
                (0..live.len()).min_by_key(|&i| live[i].last_used.load(Ordering::Relaxed))
            else {
                break;
            };
            let gone = live.swap_remove(oldest);
            bytes -= size(&gone);
            gone.loaded.store(None);
            evicted += 1;
        }
        live.push(slot.clone());
        *resident = live.iter().map(Arc::downgrade).collect();
        Admission {
            evicted,
            resident: live.len(),
            bytes,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(cache: &CodeCache, key: &str) -> Arc<CodeSlot> {
        cache.slot(key, Abi::WasiHttp, SourceHash::of(key.as_bytes()), "f")
    }

    #[test]
    fn versions_with_one_binary_share_one_slot_while_any_holds_it() {
        let cache = CodeCache::new(Residency::default());
        let first = slot(&cache, "a");
        let second = slot(&cache, "a");
        assert!(Arc::ptr_eq(&first, &second), "one artifact, one slot");
        assert!(!Arc::ptr_eq(&first, &slot(&cache, "b")));
        assert!(first.get().is_none(), "a new slot holds no code");
        drop((first, second));
        let again = slot(&cache, "a");
        assert_eq!(
            Arc::strong_count(&again),
            1,
            "a fresh slot once none held it"
        );
    }

    #[test]
    fn the_use_clock_orders_slots_by_their_last_request() {
        let cache = CodeCache::new(Residency::default());
        let (a, b) = (slot(&cache, "a"), slot(&cache, "b"));
        cache.touch(&a);
        cache.touch(&b);
        cache.touch(&a);
        let used = |s: &CodeSlot| s.last_used.load(Ordering::Relaxed);
        assert!(used(&b) < used(&a), "a was used last: b goes first");
    }

    #[test]
    fn dead_slots_are_swept_as_the_map_grows() {
        let cache = CodeCache::new(Residency::default());
        for i in 0..100 {
            drop(slot(&cache, &format!("gone-{i}")));
        }
        let kept = slot(&cache, "kept");
        let live = lock(&cache.slots).len();
        assert!(live < 100, "{live} entries for 1 live slot");
        drop(kept);
    }
}
