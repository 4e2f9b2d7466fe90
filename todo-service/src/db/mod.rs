//! Storage: one connection pool over PostgreSQL or SQLite, chosen by `DATABASE_URL`, and the
//! query functions in [`todos`].
//!
//! Both backends run the same query code: a [`Connection`] is an enum of the two pooled
//! connection types, and [`with_connection!`] expands one query body for each arm, so every
//! query is written once and type-checked against both backends.

/// Runs `$body` with `$c` bound to the concrete `&mut` connection of whichever backend `$conn`
/// holds. The body is written once and compiled for both backends.
macro_rules! with_connection {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Connection::Postgres($c) => {
                let $c: &mut ::diesel_async::AsyncPgConnection = &mut **$c;
                $body
            }
            $crate::db::Connection::Sqlite($c) => {
                let $c: &mut $crate::db::SqliteAsyncConnection = &mut **$c;
                $body
            }
        }
    };
}

pub mod schema;
pub mod todos;

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use diesel::SqliteConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseUrl;
use crate::error::Error;

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Per-connection SQLite settings. `busy_timeout` makes concurrent writers wait for the write
/// lock instead of failing; `synchronous = NORMAL` is the durable-enough setting for WAL.
const SQLITE_CONNECTION_PRAGMAS: &str =
    "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

/// SQLite through diesel's sync connection, run on tokio's blocking pool.
pub type SqliteAsyncConnection = SyncConnectionWrapper<SqliteConnection>;

/// A pool of connections to one database.
#[derive(Clone)]
pub enum Pool {
    /// `postgres://…`
    Postgres(DeadPool<AsyncPgConnection>),
    /// `sqlite://PATH`
    Sqlite(DeadPool<SqliteAsyncConnection>),
}

/// A connection checked out of a [`Pool`]; returned to it on drop.
// One lives per RPC, checked out once and never moved in a loop: boxing would only add an
// allocation per RPC.
#[allow(clippy::large_enum_variant)]
pub enum Connection {
    /// A PostgreSQL connection.
    Postgres(Object<AsyncPgConnection>),
    /// A SQLite connection.
    Sqlite(Object<SqliteAsyncConnection>),
}

impl Pool {
    /// Opens the database, applies pending migrations, and returns a pool of `max_size`
    /// connections. For SQLite the file (and its folder) is created if missing, and WAL mode is
    /// switched on so readers do not block the writer.
    pub async fn connect(url: &DatabaseUrl, max_size: usize) -> anyhow::Result<Self> {
        match url {
            DatabaseUrl::Postgres(url) => {
                let connection = AsyncPgConnection::establish(url)
                    .await
                    .context("connecting to PostgreSQL")?;
                run_migrations(connection, POSTGRES_MIGRATIONS).await?;
                let mut config = ManagerConfig::default();
                // On checkout a connection whose socket the server closed (a restart, an idle
                // timeout) is dropped for a new one. `Fast` reads that state without a round
                // trip; `Verified` would add a `SELECT 1` to every RPC (one bench run: 15% fewer
                // ListTodos per second under load).
                config.recycling_method = RecyclingMethod::Fast;
                let manager = AsyncDieselConnectionManager::new_with_config(url.as_str(), config);
                let pool = DeadPool::builder(manager)
                    .max_size(max_size)
                    .build()
                    .context("building the PostgreSQL pool")?;
                Ok(Self::Postgres(pool))
            }
            DatabaseUrl::Sqlite(path) => {
                create_parent_folder(path)?;
                let path = path
                    .to_str()
                    .context("the SQLite path must be valid UTF-8")?
                    .to_owned();
                let mut connection = SqliteAsyncConnection::establish(&path)
                    .await
                    .with_context(|| format!("opening SQLite database {path}"))?;
                // WAL is a property of the database file: set once, it stays.
                connection
                    .batch_execute("PRAGMA journal_mode = WAL;")
                    .await
                    .context("enabling SQLite WAL mode")?;
                connection
                    .batch_execute(SQLITE_CONNECTION_PRAGMAS)
                    .await
                    .context("configuring SQLite")?;
                run_migrations(connection, SQLITE_MIGRATIONS).await?;
                let mut config = ManagerConfig::<SqliteAsyncConnection>::default();
                config.recycling_method = RecyclingMethod::Fast;
                config.custom_setup = Box::new(|url| {
                    Box::pin(async move {
                        let mut connection = SqliteAsyncConnection::establish(url).await?;
                        connection
                            .batch_execute(SQLITE_CONNECTION_PRAGMAS)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(connection)
                    })
                });
                let manager = AsyncDieselConnectionManager::new_with_config(path, config);
                let pool = DeadPool::builder(manager)
                    .max_size(max_size)
                    .build()
                    .context("building the SQLite pool")?;
                Ok(Self::Sqlite(pool))
            }
        }
    }

    /// Checks a connection out, or fails with [`Error::Unavailable`] within `timeout`.
    pub async fn get(&self, timeout: Duration) -> Result<Connection, Error> {
        let checkout = async {
            match self {
                Self::Postgres(pool) => pool.get().await.map(Connection::Postgres),
                Self::Sqlite(pool) => pool.get().await.map(Connection::Sqlite),
            }
        };
        match tokio::time::timeout(timeout, checkout).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(Error::from(error)),
            Err(_) => Err(Error::Unavailable(
                "timed out waiting for a database connection".into(),
            )),
        }
    }

    /// The pool's usage now (for the metrics gauges).
    pub fn status(&self) -> PoolStatus {
        let status = match self {
            Self::Postgres(pool) => pool.status(),
            Self::Sqlite(pool) => pool.status(),
        };
        PoolStatus {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        }
    }

    /// Which backend this pool talks to, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }
}

/// A snapshot of a [`Pool`]'s usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// The most connections the pool opens.
    pub max_size: usize,
    /// Connections open now, idle or checked out.
    pub size: usize,
    /// Open connections not checked out.
    pub available: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

fn create_parent_folder(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the folder {}", parent.display()))?;
    }
    Ok(())
}

/// Applies pending migrations. diesel's migration harness is synchronous, so it runs on the
/// blocking pool, driving the async connection through `AsyncConnectionWrapper`.
async fn run_migrations<C>(connection: C, migrations: EmbeddedMigrations) -> anyhow::Result<()>
where
    C: AsyncConnection + Send + 'static,
    AsyncConnectionWrapper<C>:
        diesel::Connection<Backend = C::Backend> + MigrationHarness<C::Backend>,
{
    tokio::task::spawn_blocking(move || {
        let mut wrapper = AsyncConnectionWrapper::<C>::from(connection);
        wrapper
            .run_pending_migrations(migrations)
            .map(|applied| applied.len())
            .map_err(|e| anyhow::anyhow!("running migrations: {e}"))
    })
    .await
    .context("the migration task panicked")??;
    Ok(())
}
