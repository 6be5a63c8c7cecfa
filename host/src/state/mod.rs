//! Platform state: the key-value store that `wasi:keyvalue` guests see.
//!
//! [`KvBackend`] is the contract (`store.rs`); [`RedbStore`] keeps it in one
//! embedded redb file on a single node (`redb_store.rs`, with its
//! group-commit writer in `group_commit.rs`). A cluster backend goes behind the
//! same trait, so nothing above it knows which one it runs on. Which bucket
//! a guest may open is decided in `grant.rs`, before any backend is asked.
//! Each function's secrets (read through `wasi:config`) live in
//! `secrets.rs`; the SQLite databases `spin:sqlite` guests use, in
//! `sqlite.rs`.

pub(crate) mod db_slot;
mod grant;
pub(crate) mod group_commit;
mod redb_store;
mod redb_writer;
mod secrets;
pub(crate) mod sqlite;
mod sqlite_functions;
pub(crate) mod store;

pub use grant::{AccessDenied, resolve_bucket};
pub(crate) use group_commit::is_out_of_space;
pub use redb_store::RedbStore;
pub use secrets::{
    FunctionSecrets, MAX_SECRET_NAME_BYTES, MAX_SECRET_VALUE_BYTES, SecretError, SecretStore,
};
pub use sqlite::{
    DEFAULT_MAX_DATABASE_BYTES, DatabaseId, SqlBackend, SqlDatabases, SqlError, SqlFuture, SqlRows,
    SqlStatement, SqlValue,
};
pub use store::{BucketId, KeyPage, KvBackend, KvError, KvFuture, KvLimits};
