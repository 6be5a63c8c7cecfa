//! `spin:sqlite/sqlite@3.1.0` (what `spin-sdk` 7 components import),
//! `spin:sqlite/sqlite@3.0.0` (`spin-sdk` 3 to 5's `sqlite3`) and
//! `fermyon:spin/sqlite@2.0.0` (`spin-sdk` 2 to 5's `sqlite`), on the
//! shared code in `sqlite.rs`.
//!
//! A `connection` names a database the function was granted (`default`
//! is its own) and keeps what its last statement changed, as Spin's
//! `last-insert-rowid` and `changes` report. 3.1.0's `async func`s run
//! only on the concurrent engine; the plain `func`s of every version wait
//! for the store the same way. `execute-async` gathers every row first,
//! within the statement's bounds, and answers them as a stream; the rows of
//! all the streams one request is handed add up to at most its memory
//! limit.

use super::GuestServices;
use super::keyvalue::KvHeld;
use super::sqlite::{ConnectionHandle, GuestSqlError};
use crate::state::{SqlRows, SqlValue};
use std::sync::Arc;
use wasmtime::component::{
    Accessor, FutureReader, HasData, Linker, Resource, ResourceTable, StreamReader,
};

/// Converts between one version's generated types and the shared ones;
/// expanded inside each version's module, where `wit` names its interface.
macro_rules! conversions {
    () => {
        use crate::runtime::services::sqlite::GuestSqlError;
        use crate::state::{SqlRows, SqlValue};

        /// A guest's parameters.
        pub(super) fn params(values: Vec<wit::Value>) -> Vec<SqlValue> {
            values
                .into_iter()
                .map(|value| match value {
                    wit::Value::Integer(n) => SqlValue::Integer(n),
                    wit::Value::Real(x) => SqlValue::Real(x),
                    wit::Value::Text(text) => SqlValue::Text(text),
                    wit::Value::Blob(blob) => SqlValue::Blob(blob),
                    wit::Value::Null => SqlValue::Null,
                })
                .collect()
        }

        /// Rows for the guest.
        pub(super) fn rows(rows: Vec<Vec<SqlValue>>) -> Vec<wit::RowResult> {
            let value = |value| match value {
                SqlValue::Integer(n) => wit::Value::Integer(n),
                SqlValue::Real(x) => wit::Value::Real(x),
                SqlValue::Text(text) => wit::Value::Text(text),
                SqlValue::Blob(blob) => wit::Value::Blob(blob),
                SqlValue::Null => wit::Value::Null,
            };
            rows.into_iter()
                .map(|row| wit::RowResult {
                    values: row.into_iter().map(value).collect(),
                })
                .collect()
        }

        /// An error for the guest.
        pub(super) fn error(error: GuestSqlError) -> wit::Error {
            match error {
                GuestSqlError::AccessDenied => wit::Error::AccessDenied,
                GuestSqlError::Full => wit::Error::DatabaseFull,
                GuestSqlError::Io(message) => wit::Error::Io(message),
            }
        }

        /// A statement's outcome for the guest.
        pub(super) fn answer(
            result: Result<SqlRows, GuestSqlError>,
        ) -> Result<wit::QueryResult, wit::Error> {
            let found = result.map_err(error)?;
            Ok(wit::QueryResult {
                columns: found.columns,
                rows: rows(found.rows),
            })
        }
    };
}

/// One interface version's module: its bindings, with `connection` as a
/// [`ConnectionHandle`], its interface as `wit`, and its conversions.
macro_rules! version {
    ($module:ident, $inline:tt, $path:tt, $resource:tt, $($wit:ident)::+) => {
        mod $module {
            mod generated {
                wasmtime::component::bindgen!({
                    inline: $inline,
                    path: $path,
                    imports: { default: async | trappable },
                    with: { $resource: crate::runtime::services::sqlite::ConnectionHandle },
                });
            }
            pub(super) use generated::$($wit)::+ as wit;
            conversions!();
        }
    };
}

version!(
    v3,
    "package wisp:spin-sqlite; world imports { import spin:sqlite/sqlite@3.1.0; }",
    "../wit/spin-sqlite-3.1.0",
    "spin:sqlite/sqlite.connection",
    spin::sqlite::sqlite
);
version!(
    v30,
    "package wisp:spin-sqlite30; world imports { import spin:sqlite/sqlite@3.0.0; }",
    "../wit/spin-sqlite-3.0.0",
    "spin:sqlite/sqlite.connection",
    spin::sqlite::sqlite
);
version!(
    v2,
    "package wisp:spin2-sqlite; world imports { import fermyon:spin/sqlite@2.0.0; }",
    "../wit/fermyon-spin-2.0.0",
    "fermyon:spin/sqlite.connection",
    fermyon::spin::sqlite
);

/// The `HasData` of every version's bindings: a [`SqlView`].
pub(super) struct SqlData;

impl HasData for SqlData {
    type Data<'a> = SqlView<'a>;
}

/// A request's SQLite view: its version's services, the store's resource
/// table, and the bytes the host holds for the request.
pub(super) struct SqlView<'a> {
    pub(super) services: &'a Arc<GuestServices>,
    pub(super) table: &'a mut ResourceTable,
    pub(super) held: &'a mut KvHeld,
}

/// Links `spin:sqlite@3.1.0` (concurrent engine only).
pub(super) fn add_v3_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> SqlView<'_>,
) -> wasmtime::Result<()> {
    v3::wit::add_to_linker::<T, SqlData>(linker, view)
}

/// Links `fermyon:spin/sqlite@2.0.0` and `spin:sqlite@3.0.0` (whose
/// importers the concurrent engine's 3.1.0 serves too, as a compatible
/// version).
pub(super) fn add_sync_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> SqlView<'_>,
) -> wasmtime::Result<()> {
    v2::wit::add_to_linker::<T, SqlData>(linker, view)?;
    v30::wit::add_to_linker::<T, SqlData>(linker, view)
}

type Opened = wasmtime::Result<Result<Resource<ConnectionHandle>, GuestSqlError>>;

impl SqlView<'_> {
    /// Opens database `label`, if granted.
    fn open_label(&mut self, label: &str) -> Opened {
        Ok(match self.services.sql.open(label) {
            Ok(handle) => Ok(self.table.push(handle)?),
            Err(error) => Err(error),
        })
    }

    /// Runs a statement on `connection`'s database, keeping what it changed.
    async fn run(
        &mut self,
        connection: &Resource<ConnectionHandle>,
        sql: String,
        params: Vec<SqlValue>,
    ) -> wasmtime::Result<Result<SqlRows, GuestSqlError>> {
        let database = self.table.get(connection)?.database.clone();
        let scope = &self.services.sql;
        let budget = self.held.left(scope.max_read_bytes());
        let result = scope.execute(&database, sql, params, budget).await;
        if let Ok(rows) = &result {
            self.table.get_mut(connection)?.record(rows);
        }
        Ok(result)
    }

    fn handle(
        &self,
        connection: &Resource<ConnectionHandle>,
    ) -> wasmtime::Result<&ConnectionHandle> {
        Ok(self.table.get(connection)?)
    }
}

impl v2::wit::Host for SqlView<'_> {}

impl v2::wit::HostConnection for SqlView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, v2::wit::Error>> {
        Ok(self.open_label(&database)?.map_err(v2::error))
    }

    async fn execute(
        &mut self,
        connection: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<v2::wit::Value>,
    ) -> wasmtime::Result<Result<v2::wit::QueryResult, v2::wit::Error>> {
        let result = self
            .run(&connection, statement, v2::params(parameters))
            .await?;
        Ok(v2::answer(result))
    }

    async fn drop(&mut self, connection: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

/// The plain `func`s of `spin:sqlite@3`, the same in 3.0.0 and 3.1.0.
macro_rules! connection_methods {
    ($version:ident) => {
        impl $version::wit::Host for SqlView<'_> {}

        impl $version::wit::HostConnection for SqlView<'_> {
            async fn open(
                &mut self,
                database: String,
            ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, $version::wit::Error>> {
                Ok(self.open_label(&database)?.map_err($version::error))
            }

            async fn execute(
                &mut self,
                connection: Resource<ConnectionHandle>,
                statement: String,
                parameters: Vec<$version::wit::Value>,
            ) -> wasmtime::Result<Result<$version::wit::QueryResult, $version::wit::Error>> {
                let params = $version::params(parameters);
                let result = self.run(&connection, statement, params).await?;
                Ok($version::answer(result))
            }

            async fn last_insert_rowid(
                &mut self,
                connection: Resource<ConnectionHandle>,
            ) -> wasmtime::Result<i64> {
                Ok(self.handle(&connection)?.last_insert_rowid)
            }

            async fn changes(
                &mut self,
                connection: Resource<ConnectionHandle>,
            ) -> wasmtime::Result<u64> {
                Ok(self.handle(&connection)?.changes)
            }

            async fn drop(
                &mut self,
                connection: Resource<ConnectionHandle>,
            ) -> wasmtime::Result<()> {
                self.table.delete(connection)?;
                Ok(())
            }
        }
    };
}

connection_methods!(v3);
connection_methods!(v30);

/// What 3.1.0's `async func`s return from a statement: its columns, a
/// stream of its rows and a future of its outcome.
type Streamed = (
    Vec<String>,
    StreamReader<v3::wit::RowResult>,
    FutureReader<Result<(), v3::wit::Error>>,
);

impl<U: 'static> v3::wit::HostConnectionWithStore<U> for SqlData {
    async fn open_async(
        accessor: &Accessor<U, Self>,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, v3::wit::Error>> {
        accessor.with(|mut access| Ok(access.get().open_label(&database)?.map_err(v3::error)))
    }

    async fn execute_async(
        accessor: &Accessor<U, Self>,
        connection: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<v3::wit::Value>,
    ) -> wasmtime::Result<Result<Streamed, v3::wit::Error>> {
        let (services, database, budget) = accessor.with(|mut access| {
            let view = access.get();
            let database = view.handle(&connection)?.database.clone();
            let budget = view.held.left(view.services.sql.max_read_bytes());
            Ok::<_, wasmtime::Error>((Arc::clone(view.services), database, budget))
        })?;
        let params = v3::params(parameters);
        let rows = match services
            .sql
            .execute(&database, statement, params, budget)
            .await
        {
            Ok(rows) => rows,
            Err(error) => return Ok(Err(v3::error(error))),
        };
        accessor.with(|mut access| {
            let view = access.get();
            view.table.get_mut(&connection)?.record(&rows);
            // A stream stays in the store until the guest reads it, if
            // ever: its rows count against the request for its rest.
            view.held.add(rows.bytes);
            let stream = StreamReader::new(&mut access, v3::rows(rows.rows))?;
            let done = FutureReader::new(&mut access, async { Ok::<_, wasmtime::Error>(Ok(())) })?;
            Ok(Ok((rows.columns, stream, done)))
        })
    }

    async fn last_insert_rowid_async(
        accessor: &Accessor<U, Self>,
        connection: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<i64> {
        accessor.with(|mut access| Ok(access.get().handle(&connection)?.last_insert_rowid))
    }

    async fn changes_async(
        accessor: &Accessor<U, Self>,
        connection: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<u64> {
        accessor.with(|mut access| Ok(access.get().handle(&connection)?.changes))
    }
}
