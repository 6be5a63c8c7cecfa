//! The version-independent half of `spin:sqlite`: which database an
//! `open` reaches (only those the function's `sqlite` setting grants,
//! denials logged), the connection handles a guest holds, and how a
//! statement is bounded (the function's timeout, its memory limit for the
//! rows) and answered. Every interface version (`spin_sqlite.rs`) calls
//! [`SqlScope`] here.

use crate::state::{DatabaseId, SqlBackend, SqlError, SqlRows, SqlStatement, SqlValue};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// The databases one function version may open, on its backend.
pub(super) struct SqlScope {
    function: Arc<str>,
    granted: BTreeSet<String>,
    backend: Arc<dyn SqlBackend>,
    time_limit: Duration,
    max_read_bytes: u64,
}

/// An open database, as the guest's `connection` resource: which one, and
/// what its last statement changed.
pub struct ConnectionHandle {
    pub(super) database: DatabaseId,
    pub(super) last_insert_rowid: i64,
    pub(super) changes: u64,
}

/// Why a guest's SQLite call failed, as both versions say it.
pub(super) enum GuestSqlError {
    /// The database was not granted.
    AccessDenied,
    /// The database is at its size limit.
    Full,
    /// Anything else, with its message.
    Io(String),
}

impl SqlScope {
    /// The scope of a version of `function` granted `granted`, its
    /// statements bounded by `time_limit` and `max_read_bytes`.
    pub(super) fn new(
        function: Arc<str>,
        granted: BTreeSet<String>,
        backend: Arc<dyn SqlBackend>,
        time_limit: Duration,
        max_read_bytes: u64,
    ) -> SqlScope {
        SqlScope {
            function,
            granted,
            backend,
            time_limit,
            max_read_bytes,
        }
    }

    /// Opens database `label` if the function was granted it.
    pub(super) fn open(&self, label: &str) -> Result<ConnectionHandle, GuestSqlError> {
        let database = DatabaseId::of(&self.function, label);
        if !database.is_granted_to(&self.function, &self.granted) {
            tracing::warn!(
                function = %self.function,
                database = label,
                "SQLite database denied: deploy the function with `--sqlite {label}` to grant it"
            );
            return Err(GuestSqlError::AccessDenied);
        }
        Ok(ConnectionHandle {
            database,
            last_insert_rowid: 0,
            changes: 0,
        })
    }

    /// Most bytes of rows one request may be handed (its memory limit).
    pub(super) fn max_read_bytes(&self) -> u64 {
        self.max_read_bytes
    }

    /// Runs `sql` with `params` on `database`, its rows at most `budget`
    /// bytes; a host failure is logged and answered without its detail.
    pub(super) async fn execute(
        &self,
        database: &DatabaseId,
        sql: String,
        params: Vec<SqlValue>,
        budget: u64,
    ) -> Result<SqlRows, GuestSqlError> {
        let statement = SqlStatement {
            sql,
            params,
            max_bytes: budget,
            time_limit: self.time_limit,
        };
        self.backend
            .execute(database, statement)
            .await
            .map_err(|error| match error {
                SqlError::Full { .. } => GuestSqlError::Full,
                SqlError::Stopped(_) => {
                    tracing::error!(function = %self.function, %database, "SQLite statement failed: {error}");
                    GuestSqlError::Io("the SQLite store failed (see the host log)".to_owned())
                }
                other => GuestSqlError::Io(other.to_string()),
            })
    }
}

impl ConnectionHandle {
    /// Keeps what `rows` says the statement changed (a statement that
    /// wrote nothing leaves the last one's counts).
    pub(super) fn record(&mut self, rows: &SqlRows) {
        if let Some(rowid) = rows.last_insert_rowid {
            self.last_insert_rowid = rowid;
        }
        if let Some(changes) = rows.changes {
            self.changes = changes;
        }
    }
}
