//! SQLite databases for guests (`spin:sqlite`): one embedded database file
//! per function (`default`, deleted with it) and per app-wide name, under
//! the data dir's `sqlite/`, kept by the front process alone.
//!
//! [`SqlBackend`] is what guests' bindings call (a worker's goes through
//! its front); [`SqlDatabases`] keeps the files. Each database has one
//! connection, taken by one statement at a time, and every statement is
//! bounded: its run time (a progress handler interrupts it), the bytes of
//! rows it returns, the database's size (`max_page_count`), and the memory
//! SQLite holds in the process (sorts and temporary results stay in
//! memory, under one process-wide heap limit, never on disk). What
//! could reach beyond its own file is refused as it is prepared: `ATTACH`
//! and `DETACH` (and so `VACUUM`, which attaches), `PRAGMA`, temporary
//! tables, views, triggers and indexes (they live outside the size limit),
//! and transactions (`BEGIN`, `SAVEPOINT`: a connection is shared, so
//! each statement commits on its own). Defensive mode keeps a statement
//! from corrupting the file, and extensions cannot be loaded.

use crate::disk::private;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wisp_spec::name::{OWN_BUCKET, is_bucket_name, validate_name};
use wisp_spec::units::format_size;

/// Default cap on one database's file, in bytes (64 MiB).
pub const DEFAULT_MAX_DATABASE_BYTES: u64 = 64 << 20;

/// Longest statement text, in bytes.
const MAX_STATEMENT_BYTES: i32 = 1 << 20;

/// Largest string or blob a statement may make, in bytes (1 MiB, a
/// key-value value's size): it bounds the work of one function call, which
/// no deadline interrupts.
const MAX_VALUE_BYTES: i32 = 1 << 20;

/// Longest `LIKE` or `GLOB` pattern, in bytes: their cost grows with the
/// pattern times the text.
const MAX_PATTERN_BYTES: i32 = 1000;

/// Each open database's page cache, in KiB.
const CACHE_KIB: i64 = 1024;

/// Most a database's write-ahead log keeps once checkpointed, in bytes.
const MAX_JOURNAL_BYTES: i64 = 4 << 20;

/// Most bytes SQLite may hold in the front process, across every database
/// (`hard_heap_limit`, process-wide): sorts and temporary results are kept
/// in memory (`temp_store`), never spilled to disk, so a statement that
/// would hold more fails with "out of memory" instead of filling a disk.
const MAX_HEAP_BYTES: i64 = 256 << 20;

/// Where SQLite starts giving back cached pages (`soft_heap_limit`).
const SOFT_HEAP_BYTES: i64 = 192 << 20;

/// Bytes a row value counts besides its text or blob: what holds it.
const VALUE_OVERHEAD: usize = std::mem::size_of::<SqlValue>();

/// Bytes a row counts besides its values: what holds them.
const ROW_OVERHEAD: usize = std::mem::size_of::<Vec<SqlValue>>();

/// What a backend's calls return.
pub type SqlFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SqlError>> + Send + 'a>>;

/// A database: one function's own, or an app-wide one by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DatabaseId {
    /// The `default` database of the function of this name.
    Function(String),
    /// The app-wide database of this name, opened by functions granted it.
    App(String),
}

impl DatabaseId {
    /// The database `label` opens for `function`: `default` is its own.
    pub fn of(function: &str, label: &str) -> DatabaseId {
        if label == OWN_BUCKET {
            DatabaseId::Function(function.to_owned())
        } else {
            DatabaseId::App(label.to_owned())
        }
    }

    /// True when `function`, granted the databases `granted` (its `sqlite`
    /// setting), may open this one: its own only if granted `default`.
    pub fn is_granted_to(&self, function: &str, granted: &BTreeSet<String>) -> bool {
        match self {
            DatabaseId::Function(name) => name == function && granted.contains(OWN_BUCKET),
            DatabaseId::App(name) => granted.contains(name),
        }
    }

    /// Its file under `dir`; `None` for a name no function or grant can
    /// have (so no name leaves `dir`).
    fn path(&self, dir: &Path) -> Option<PathBuf> {
        let (kind, name) = match self {
            DatabaseId::Function(name) => ("fn", name),
            DatabaseId::App(name) => ("app", name),
        };
        let valid = match self {
            DatabaseId::Function(name) => validate_name(name).is_ok(),
            DatabaseId::App(name) => is_bucket_name(name),
        };
        valid.then(|| dir.join(kind).join(format!("{name}.db")))
    }
}

impl std::fmt::Display for DatabaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseId::Function(name) => write!(f, "function `{name}`'s own database"),
            DatabaseId::App(name) => write!(f, "app database `{name}`"),
        }
    }
}

/// One value of a row or a parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SqlValue {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

/// A statement to run, and its bounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SqlStatement {
    /// One SQL statement.
    pub sql: String,
    /// Its `?` parameters, in order.
    pub params: Vec<SqlValue>,
    /// Most bytes its rows may add up to.
    pub max_bytes: u64,
    /// Longest it may run (waiting for the database included).
    pub time_limit: Duration,
}

/// What a statement returned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SqlRows {
    /// The names of its columns.
    pub columns: Vec<String>,
    /// Its rows, each a value per column.
    pub rows: Vec<Vec<SqlValue>>,
    /// Rows it inserted, updated or deleted; `None` when it wrote nothing
    /// (the connection's count is then another statement's).
    pub changes: Option<u64>,
    /// The rowid of the row it inserted; `None` when it inserted none.
    pub last_insert_rowid: Option<i64>,
    /// The bytes its rows were counted as, against the statement's
    /// `max_bytes`.
    pub bytes: u64,
}

/// Why a statement failed. All but [`SqlError::Stopped`] are the guest's
/// to read.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum SqlError {
    /// The database is at its size limit.
    #[error("the database is full: it may hold at most {}", format_size(*.limit))]
    Full {
        /// The limit, in bytes.
        limit: u64,
    },
    /// Its rows add up to more than the statement may return.
    #[error("the statement's rows add up to more than {}, the most one statement may return (the function's memory limit)", format_size(*.limit))]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// It ran (or waited for the database) past its time limit.
    #[error("the statement ran past its {}-second limit (the function's timeout) and was stopped", .limit.as_secs_f64())]
    TimedOut {
        /// The limit.
        limit: Duration,
    },
    /// It asked for something no guest may do.
    #[error("{0}")]
    Refused(String),
    /// SQLite's own error (a syntax error, a constraint, …).
    #[error("{0}")]
    Failed(String),
    /// The host is shutting down, or its storage failed.
    #[error("the SQLite store is unavailable: {0}")]
    Stopped(String),
}

/// Runs statements on databases.
pub trait SqlBackend: Send + Sync + 'static {
    /// Runs `statement` on `database`, creating the database if new.
    fn execute<'a>(
        &'a self,
        database: &'a DatabaseId,
        statement: SqlStatement,
    ) -> SqlFuture<'a, SqlRows>;
}

/// One database's connection, opened on first use.
type Slot = Arc<tokio::sync::Mutex<Option<Connection>>>;

/// The databases of a host, as files under one directory.
pub struct SqlDatabases {
    dir: PathBuf,
    max_bytes: u64,
    open: Mutex<HashMap<DatabaseId, Slot>>,
    /// Statements that may run at once, whatever their databases: one a
    /// CPU, so guests' SQL never takes every thread of the host.
    running: Arc<tokio::sync::Semaphore>,
}

impl SqlDatabases {
    /// The databases under `dir` (created when the first one is), each at
    /// most `max_bytes`.
    pub fn new(dir: PathBuf, max_bytes: u64) -> SqlDatabases {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        SqlDatabases {
            dir,
            max_bytes,
            open: Mutex::default(),
            running: Arc::new(tokio::sync::Semaphore::new(cpus)),
        }
    }

    fn slot(&self, database: &DatabaseId) -> Slot {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.entry(database.clone()).or_default().clone()
    }

    /// Deletes `database`'s files; a missing database is not an error.
    pub async fn delete(&self, database: &DatabaseId) -> std::io::Result<()> {
        let Some(path) = database.path(&self.dir) else {
            return Ok(());
        };
        let slot = self.slot(database);
        let mut connection = slot.lock().await;
        connection.take();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// The names of the functions that have an own database.
    pub fn function_databases(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("fn")) else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                Some(name.strip_suffix(".db")?.to_owned())
            })
            .collect()
    }
}

impl SqlBackend for SqlDatabases {
    fn execute<'a>(
        &'a self,
        database: &'a DatabaseId,
        statement: SqlStatement,
    ) -> SqlFuture<'a, SqlRows> {
        Box::pin(async move {
            let path = database.path(&self.dir).ok_or_else(|| {
                SqlError::Refused(format!("{database} cannot exist: its name is not valid"))
            })?;
            let deadline = Instant::now() + statement.time_limit;
            let slot = self.slot(database);
            let timed_out = SqlError::TimedOut {
                limit: statement.time_limit,
            };
            let turn = async {
                let connection = slot.lock_owned().await;
                let running = self.running.clone().acquire_owned().await;
                (connection, running)
            };
            let (mut connection, running) = tokio::time::timeout(statement.time_limit, turn)
                .await
                .map_err(|_| timed_out.clone())?;
            let running =
                running.map_err(|_| SqlError::Stopped("the SQLite store has stopped".into()))?;
            let max_bytes = self.max_bytes;
            let run = tokio::task::spawn_blocking(move || {
                let _running = running;
                if connection.is_none() {
                    *connection = Some(open(&path, max_bytes)?);
                }
                let connection = connection.as_mut().expect("opened above");
                run(connection, &statement, deadline, &path, max_bytes)
            });
            run.await
                .map_err(|e| SqlError::Stopped(format!("the statement's thread failed: {e}")))?
        })
    }
}

/// Opens (creating) the database at `path`, bounded and guarded.
fn open(path: &Path, max_bytes: u64) -> Result<Connection, SqlError> {
    let failed =
        |e: rusqlite::Error| SqlError::Stopped(format!("opening the database failed: {e}"));
    // The data dir's modes (`0700` directories, `0600` files), which
    // SQLite gives its `-wal` and `-shm` files too.
    let io = |e: std::io::Error| SqlError::Stopped(format!("creating its file failed: {e}"));
    if let Some(parent) = path.parent() {
        private::create(parent).map_err(io)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(private::FILE_MODE)
        .open(path)
        .map_err(io)?;
    let mut connection = Connection::open(path).map_err(failed)?;
    connection
        .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get::<_, String>(0))
        .map_err(failed)?;
    for (pragma, value) in [
        ("hard_heap_limit", MAX_HEAP_BYTES),
        ("soft_heap_limit", SOFT_HEAP_BYTES),
    ] {
        connection
            .pragma_update(None, pragma, value)
            .map_err(failed)?;
    }
    connection
        .pragma_update(None, "temp_store", "MEMORY")
        .map_err(failed)?;
    connection
        .pragma_update(None, "journal_size_limit", MAX_JOURNAL_BYTES)
        .map_err(failed)?;
    // Every open database keeps a page cache under the shared heap limit:
    // a small one each (KiB, as SQLite takes a negative size).
    connection
        .pragma_update(None, "cache_size", -CACHE_KIB)
        .map_err(failed)?;
    let page_size: i64 = connection
        .pragma_query_value(None, "page_size", |row| row.get(0))
        .map_err(failed)?;
    connection
        .pragma_update(
            None,
            "max_page_count",
            (i64::try_from(max_bytes).unwrap_or(i64::MAX) / page_size.max(512)).max(1),
        )
        .map_err(failed)?;
    for (limit, value) in [
        (Limit::SQLITE_LIMIT_ATTACHED, 0),
        (Limit::SQLITE_LIMIT_SQL_LENGTH, MAX_STATEMENT_BYTES),
        (Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES),
        (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, MAX_PATTERN_BYTES),
    ] {
        connection.set_limit(limit, value).map_err(failed)?;
    }
    use rusqlite::config::DbConfig;
    connection
        .set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
        .map_err(failed)?;
    connection
        .set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)
        .map_err(failed)?;
    super::sqlite_functions::install(&connection, MAX_VALUE_BYTES as usize).map_err(failed)?;
    connection.authorizer(Some(authorize)).map_err(failed)?;
    Ok(connection)
}

/// What a guest's statement may do: everything within its own file.
fn authorize(context: AuthContext<'_>) -> Authorization {
    match context.action {
        AuthAction::Attach { .. }
        | AuthAction::Detach { .. }
        | AuthAction::Pragma { .. }
        | AuthAction::Transaction { .. }
        | AuthAction::Savepoint { .. }
        | AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. } => Authorization::Deny,
        AuthAction::Function {
            function_name: "load_extension",
        } => Authorization::Deny,
        _ => Authorization::Allow,
    }
}

/// Runs one statement on `connection` (the database at `path`), within its
/// bounds.
fn run(
    connection: &mut Connection,
    statement: &SqlStatement,
    deadline: Instant,
    path: &Path,
    max_database_bytes: u64,
) -> Result<SqlRows, SqlError> {
    connection
        .progress_handler(1000, Some(move || Instant::now() > deadline))
        .map_err(|e| SqlError::Stopped(e.to_string()))?;
    let explain = |e: rusqlite::Error| explain(e, statement, path, max_database_bytes);
    let before = (connection.total_changes(), connection.last_insert_rowid());
    let mut prepared = connection.prepare(&statement.sql).map_err(explain)?;
    let columns: Vec<String> = prepared.column_names().map(str::to_owned).collect();
    let params = statement.params.iter().map(|value| match value {
        SqlValue::Integer(n) => rusqlite::types::Value::Integer(*n),
        SqlValue::Real(x) => rusqlite::types::Value::Real(*x),
        SqlValue::Text(text) => rusqlite::types::Value::Text(text.clone()),
        SqlValue::Blob(blob) => rusqlite::types::Value::Blob(blob.clone()),
        SqlValue::Null => rusqlite::types::Value::Null,
    });
    let mut found = prepared
        .query(rusqlite::params_from_iter(params))
        .map_err(explain)?;
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let max_bytes = usize::try_from(statement.max_bytes).unwrap_or(usize::MAX);
    while let Some(row) = found.next().map_err(explain)? {
        bytes = bytes.saturating_add(ROW_OVERHEAD);
        let mut values = Vec::with_capacity(columns.len());
        for index in 0..columns.len() {
            let value = match row.get_ref(index).map_err(explain)? {
                ValueRef::Integer(n) => SqlValue::Integer(n),
                ValueRef::Real(x) => SqlValue::Real(x),
                ValueRef::Text(text) => SqlValue::Text(String::from_utf8_lossy(text).into_owned()),
                ValueRef::Blob(blob) => SqlValue::Blob(blob.to_vec()),
                ValueRef::Null => SqlValue::Null,
            };
            bytes = bytes.saturating_add(VALUE_OVERHEAD + value_bytes(&value));
            if bytes > max_bytes {
                return Err(SqlError::TooLarge {
                    limit: statement.max_bytes,
                });
            }
            values.push(value);
        }
        rows.push(values);
    }
    drop(found);
    drop(prepared);
    connection
        .progress_handler(0, None::<fn() -> bool>)
        .map_err(|e| SqlError::Stopped(e.to_string()))?;
    // The connection serves every request: its counts are this
    // statement's only if it moved them (an INSERT that reuses the rowid
    // last inserted, into another table, reads as none).
    let wrote = connection.total_changes() != before.0;
    let rowid = connection.last_insert_rowid();
    Ok(SqlRows {
        columns,
        rows,
        bytes: bytes as u64,
        changes: wrote.then(|| connection.changes()),
        last_insert_rowid: (wrote && rowid != before.1).then_some(rowid),
    })
}

/// What a SQLite error is to the guest: its own statement's doing, or the
/// host's (a failing disk or file: logged, never detailed to the guest).
fn explain(
    error: rusqlite::Error,
    statement: &SqlStatement,
    path: &Path,
    max_database_bytes: u64,
) -> SqlError {
    match error.sqlite_error_code() {
        Some(ErrorCode::OperationInterrupted) => SqlError::TimedOut {
            limit: statement.time_limit,
        },
        // Full below its limit: the host's disk is.
        Some(ErrorCode::DiskFull)
            if std::fs::metadata(path).map_or(0, |m| m.len()) + (1 << 20) < max_database_bytes =>
        {
            SqlError::Stopped(format!("the host's disk is full: {error}"))
        }
        Some(ErrorCode::DiskFull) => SqlError::Full {
            limit: max_database_bytes,
        },
        Some(ErrorCode::AuthorizationForStatementDenied) => SqlError::Refused(
            "not allowed here: wisp refuses ATTACH, DETACH, VACUUM, PRAGMA, temporary tables \
             and transactions (each statement commits on its own)"
                .to_owned(),
        ),
        Some(
            ErrorCode::SystemIoFailure
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::CannotOpen
            | ErrorCode::NotADatabase
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::FileLockingProtocolFailed,
        ) => SqlError::Stopped(error.to_string()),
        _ => SqlError::Failed(error.to_string()),
    }
}

/// The bytes of a value's text or blob.
fn value_bytes(value: &SqlValue) -> usize {
    match value {
        SqlValue::Text(text) => text.len(),
        SqlValue::Blob(blob) => blob.len(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The heap limit is the process's: the test that reaches it runs
    /// alone.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// Databases of at most `max_bytes` in a new directory.
    fn databases(max_bytes: u64) -> (tempfile::TempDir, SqlDatabases) {
        let dir = tempfile::tempdir().unwrap();
        let databases = SqlDatabases::new(dir.path().to_owned(), max_bytes);
        (dir, databases)
    }

    fn statement(sql: &str, params: Vec<SqlValue>) -> SqlStatement {
        SqlStatement {
            sql: sql.to_owned(),
            params,
            max_bytes: 1 << 20,
            time_limit: Duration::from_secs(5),
        }
    }

    async fn exec(
        databases: &SqlDatabases,
        db: &DatabaseId,
        sql: &str,
    ) -> Result<SqlRows, SqlError> {
        databases.execute(db, statement(sql, Vec::new())).await
    }

    #[tokio::test]
    async fn statements_keep_their_rows_and_report_changes() {
        let _alone = ONE_AT_A_TIME.lock().await;
        let (dir, databases) = databases(DEFAULT_MAX_DATABASE_BYTES);
        let db = DatabaseId::of("shop", "default");
        exec(
            &databases,
            &db,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB)",
        )
        .await
        .unwrap();
        let insert = statement(
            "INSERT INTO t (name, data) VALUES (?, ?)",
            vec![SqlValue::Text("ada".into()), SqlValue::Blob(vec![1, 2])],
        );
        let inserted = databases.execute(&db, insert).await.unwrap();
        assert_eq!(
            (inserted.changes, inserted.last_insert_rowid),
            (Some(1), Some(1))
        );
        let rows = exec(&databases, &db, "SELECT id, name, data, 1.5, NULL FROM t")
            .await
            .unwrap();
        assert_eq!(rows.columns, ["id", "name", "data", "1.5", "NULL"]);
        assert_eq!(
            rows.rows,
            [vec![
                SqlValue::Integer(1),
                SqlValue::Text("ada".into()),
                SqlValue::Blob(vec![1, 2]),
                SqlValue::Real(1.5),
                SqlValue::Null
            ]]
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &str| {
            let metadata = std::fs::metadata(dir.path().join(path)).unwrap();
            metadata.permissions().mode() & 0o777
        };
        assert_eq!(
            (mode("fn"), mode("fn/shop.db"), mode("fn/shop.db-wal")),
            (0o700, 0o600, 0o600)
        );
        databases.delete(&db).await.unwrap();
        assert!(!dir.path().join("fn/shop.db").exists());
        let fresh = exec(&databases, &db, "SELECT count(*) FROM sqlite_schema")
            .await
            .unwrap();
        assert_eq!(fresh.rows, [vec![SqlValue::Integer(0)]]);
    }

    #[test]
    fn a_function_opens_only_the_databases_it_was_granted() {
        let granted: BTreeSet<String> = ["default".to_owned(), "orders".to_owned()].into();
        let none = BTreeSet::new();
        let own = DatabaseId::of("shop", "default");
        assert!(own.is_granted_to("shop", &granted));
        assert!(!own.is_granted_to("shop", &none), "its own needs `default`");
        assert!(!own.is_granted_to("cart", &granted), "another's own, never");
        assert!(DatabaseId::of("shop", "orders").is_granted_to("cart", &granted));
        assert!(!DatabaseId::of("shop", "ledger").is_granted_to("shop", &granted));
    }

    #[tokio::test]
    async fn a_statement_that_writes_nothing_reports_no_counts() {
        // The connection is shared: another's INSERT must not read as this
        // statement's.
        let _alone = ONE_AT_A_TIME.lock().await;
        let (_dir, databases) = databases(DEFAULT_MAX_DATABASE_BYTES);
        let db = DatabaseId::of("shop", "orders");
        exec(&databases, &db, "CREATE TABLE t (x)").await.unwrap();
        let insert = exec(&databases, &db, "INSERT INTO t VALUES (1), (2)")
            .await
            .unwrap();
        assert_eq!(
            (insert.changes, insert.last_insert_rowid),
            (Some(2), Some(2))
        );
        let read = exec(&databases, &db, "SELECT x FROM t").await.unwrap();
        assert_eq!((read.changes, read.last_insert_rowid), (None, None));
        let update = exec(&databases, &db, "UPDATE t SET x = 3").await.unwrap();
        assert_eq!((update.changes, update.last_insert_rowid), (Some(2), None));
    }

    #[tokio::test]
    async fn instr_and_replace_are_sqlites_in_linear_time() {
        let _alone = ONE_AT_A_TIME.lock().await;
        let (_dir, databases) = databases(DEFAULT_MAX_DATABASE_BYTES);
        let db = DatabaseId::of("shop", "default");
        let one = |sql: &'static str| {
            let databases = &databases;
            let db = &db;
            async move {
                exec(databases, db, sql)
                    .await
                    .map(|rows| rows.rows[0][0].clone())
            }
        };
        let text = |s: &str| SqlValue::Text(s.to_owned());
        for (sql, value) in [
            ("SELECT instr('héllo wörld', 'wö')", SqlValue::Integer(7)),
            ("SELECT instr(x'00c3a90102', x'0102')", SqlValue::Integer(4)),
            ("SELECT instr('abc', 'z')", SqlValue::Integer(0)),
            ("SELECT instr('abc', '')", SqlValue::Integer(1)),
            ("SELECT instr(12345, 34)", SqlValue::Integer(3)),
            ("SELECT instr(NULL, 'a')", SqlValue::Null),
            ("SELECT instr(CAST(1.5 AS TEXT), '.')", SqlValue::Integer(2)),
            ("SELECT replace('aaa', 'a', 'bb')", text("bbbbbb")),
            ("SELECT replace('abab', 'aba', 'x')", text("xb")),
            ("SELECT replace('abc', '', 'x')", text("abc")),
            ("SELECT replace(1200, 0, 9)", text("1299")),
            ("SELECT replace('abc', 'b', NULL)", SqlValue::Null),
        ] {
            assert_eq!(one(sql).await, Ok(value), "{sql}");
        }
        let real = one("SELECT instr(1.5, '.')").await.unwrap_err();
        assert!(
            matches!(&real, SqlError::Failed(m) if m.contains("CAST")),
            "{real:?}"
        );
        let big = one("SELECT replace(zeroblob(600000), x'00', x'0000')")
            .await
            .unwrap_err();
        assert!(
            matches!(&big, SqlError::Failed(m) if m.contains("too big")),
            "{big:?}"
        );
        // SQLite's own compare at every offset: ~5·10¹¹ byte compares.
        let started = Instant::now();
        let worst = "SELECT instr(zeroblob(1000000), zeroblob(500000) || x'01')";
        assert_eq!(one(worst).await, Ok(SqlValue::Integer(0)));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn what_reaches_beyond_the_file_is_refused() {
        let _alone = ONE_AT_A_TIME.lock().await;
        let (dir, databases) = databases(DEFAULT_MAX_DATABASE_BYTES);
        let db = DatabaseId::of("shop", "default");
        let outside = dir.path().join("outside.db");
        for sql in [
            format!("ATTACH DATABASE '{}' AS other", outside.display()),
            format!("VACUUM INTO '{}'", outside.display()),
            "VACUUM".to_owned(),
            "PRAGMA writable_schema = 1".to_owned(),
            "PRAGMA max_page_count = 100000000".to_owned(),
            "BEGIN".to_owned(),
            "SAVEPOINT a".to_owned(),
            "CREATE TEMP TABLE t (x)".to_owned(),
            "SELECT load_extension('/tmp/x.so')".to_owned(),
        ] {
            let error = exec(&databases, &db, &sql).await.unwrap_err();
            assert!(
                matches!(error, SqlError::Refused(_) | SqlError::Failed(_)),
                "{sql}: {error:?}"
            );
        }
        assert!(!outside.exists(), "nothing was written outside");
        let many = exec(&databases, &db, "SELECT 1; SELECT 2")
            .await
            .unwrap_err();
        assert!(matches!(many, SqlError::Failed(_)), "{many:?}");
        let path = DatabaseId::App("../x".into());
        let refused = exec(&databases, &path, "SELECT 1").await.unwrap_err();
        assert!(matches!(refused, SqlError::Refused(_)), "{refused:?}");
    }

    #[tokio::test]
    async fn size_time_memory_and_result_limits_hold() {
        let _alone = ONE_AT_A_TIME.lock().await;
        let (_dir, databases) = databases(256 << 10);
        let db = DatabaseId::of("shop", "orders");
        exec(&databases, &db, "CREATE TABLE t (data BLOB)")
            .await
            .unwrap();
        let full = exec(&databases, &db, "INSERT INTO t VALUES (zeroblob(1000000))")
            .await
            .unwrap_err();
        assert_eq!(full, SqlError::Full { limit: 256 << 10 });
        exec(&databases, &db, "INSERT INTO t VALUES (zeroblob(1000))")
            .await
            .unwrap();
        let mut slow = statement(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            Vec::new(),
        );
        slow.time_limit = Duration::from_millis(200);
        let started = Instant::now();
        let stopped = databases.execute(&db, slow).await.unwrap_err();
        assert!(matches!(stopped, SqlError::TimedOut { .. }), "{stopped:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // Temporary results past the heap limit fail; none go to disk.
        let sort = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 4000000) \
                    SELECT count(DISTINCT randomblob(1000)) FROM c";
        let no_memory = exec(&databases, &db, sort).await.unwrap_err();
        assert!(
            matches!(&no_memory, SqlError::Failed(m) if m.contains("out of memory")),
            "{no_memory:?}"
        );
        exec(&databases, &db, "SELECT count(*) FROM t")
            .await
            .unwrap();
        let mut big = statement("SELECT data FROM t", Vec::new());
        big.max_bytes = 500;
        let too_large = databases.execute(&db, big).await.unwrap_err();
        assert_eq!(too_large, SqlError::TooLarge { limit: 500 });
    }
}
