//! What all versions of one function share: its usage totals, its log
//! book and its recent traffic. Touched when a version is loaded or a function removed, never per
//! request (each version's meter holds its own handles).

use crate::observe::history::History;
use crate::observe::logs::LogBook;
use crate::observe::meter::Usage;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Usage and logs of one function, across its versions.
#[derive(Clone, Default)]
pub(crate) struct FunctionBooks {
    pub(crate) usage: Arc<Usage>,
    pub(crate) logs: Arc<LogBook>,
    pub(crate) history: Arc<History>,
}

/// Books of every function, by name.
#[derive(Default)]
pub(crate) struct PerFunction {
    books: Mutex<HashMap<String, FunctionBooks>>,
}

impl PerFunction {
    /// The books of function `name`, created on first use.
    pub(crate) fn books(&self, name: &str) -> FunctionBooks {
        let mut map = self.books.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.to_owned()).or_default().clone()
    }

    /// Forgets the usage and logs of a removed function.
    pub(crate) fn forget(&self, name: &str) {
        let mut map = self.books.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(name);
    }
}
