//! [`Books`]: what all versions of each function share — its usage
//! totals, its log book and its recent traffic — and the meter each
//! version reports to. Touched when a version is loaded or a function
//! removed, never per request (each version's meter holds its own handles).

use crate::observe::history::History;
use crate::observe::logs::LogBook;
use crate::observe::meter::{Meter, Usage};
use crate::observe::metrics::Metrics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Usage and logs of one function, across its versions.
#[derive(Clone, Default)]
pub(crate) struct FunctionBooks {
    pub(crate) usage: Arc<Usage>,
    pub(crate) logs: Arc<LogBook>,
    pub(crate) history: Arc<History>,
}

/// Books of every function, by name, and the host's metrics.
pub(crate) struct Books {
    books: Mutex<HashMap<String, FunctionBooks>>,
    metrics: Arc<Metrics>,
}

impl Books {
    /// No books yet; versions' series go to `metrics`.
    pub(crate) fn new(metrics: Arc<Metrics>) -> Books {
        Books {
            books: Mutex::default(),
            metrics,
        }
    }

    /// The books of function `name`, created on first use.
    pub(crate) fn of(&self, name: &str) -> FunctionBooks {
        let mut map = self.books.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.to_owned()).or_default().clone()
    }

    /// The meter of version `version` of function `name`.
    pub(crate) fn meter(&self, name: &str, version: u32) -> Meter {
        let books = self.of(name);
        Meter {
            metrics: Arc::new(self.metrics.for_version(name, version)),
            usage: books.usage,
            logs: books.logs,
            history: books.history,
            version,
            relay: None,
        }
    }

    /// Forgets the usage, logs and metric series of a removed function.
    pub(crate) fn forget(&self, name: &str) {
        let mut map = self.books.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(name);
        self.metrics.forget_function(name);
    }
}
