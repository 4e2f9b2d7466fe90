//! Fresh PostgreSQL databases for tests: one new database per call, dropped when the returned
//! [`TestDatabase`] is dropped.
//!
//! The server comes from `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached the tests that need
//! it are skipped, unless `REQUIRE_POSTGRES=1` (CI), which makes that an error.

use std::env;
use std::time::Duration;

use anyhow::Context;
use tokio_postgres::{Client, NoTls};

use crate::unique_suffix;

/// The server used when `TEST_DATABASE_URL` is not set.
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// PostgreSQL's identifier limit, in bytes.
const MAX_NAME_LEN: usize = 63;

/// A database created for one test. Dropping it drops the database (best effort, forcing out
/// open connections).
#[derive(Debug)]
pub struct TestDatabase {
    /// `postgres://…/<name>`: the admin URL with this database's name.
    pub url: String,
    /// The database name (`<prefix>_<unique>`).
    pub name: String,
    admin_url: String,
}

/// Creates a new, empty database named `<name_prefix>_<unique>` and returns its URL.
///
/// Returns `Ok(None)` (and says so on stderr) when PostgreSQL cannot be reached and
/// `REQUIRE_POSTGRES` is not `1`, so tests can skip themselves.
///
/// # Errors
///
/// When PostgreSQL cannot be reached and `REQUIRE_POSTGRES=1`, or when the database cannot be
/// created.
pub async fn fresh_database(name_prefix: &str) -> anyhow::Result<Option<TestDatabase>> {
    let admin_url = env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned());
    let required = env::var("REQUIRE_POSTGRES").is_ok_and(|value| value == "1");
    fresh_database_on(&admin_url, name_prefix, required).await
}

/// [`fresh_database`] against an explicit server, for tests that must not read the environment.
async fn fresh_database_on(
    admin_url: &str,
    name_prefix: &str,
    required: bool,
) -> anyhow::Result<Option<TestDatabase>> {
    let client = match connect(admin_url).await {
        Ok(client) => client,
        Err(error) if !required => {
            eprintln!(
                "PostgreSQL not reachable at {}: skipping ({error:#})",
                redact_password(admin_url)
            );
            return Ok(None);
        }
        Err(error) => {
            return Err(error.context(format!(
                "PostgreSQL not reachable at {} and REQUIRE_POSTGRES=1",
                redact_password(admin_url)
            )));
        }
    };
    let name = database_name(name_prefix);
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .with_context(|| format!("cannot create test database {name}"))?;
    Ok(Some(TestDatabase {
        url: url_with_database(admin_url, &name)?,
        name,
        admin_url: admin_url.to_owned(),
    }))
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside or outside a runtime: use a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = connect(&admin_url).await?;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop test database {}: {error:#}", self.name),
            Err(_) => eprintln!(
                "could not drop test database {}: thread panicked",
                self.name
            ),
        }
    }
}

/// Connects and drives the connection on the current runtime.
async fn connect(url: &str) -> anyhow::Result<Client> {
    let mut config: tokio_postgres::Config = url.parse().context("invalid PostgreSQL URL")?;
    config.connect_timeout(Duration::from_secs(3));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        // Ends when the client is dropped; an error here shows up in the client's calls.
        let _ = connection.await;
    });
    Ok(client)
}

/// `<prefix>_<pid>_<nanos>_<counter>`, lower-case `[a-z0-9_]`, at most 63 bytes, so it never
/// needs more quoting than plain double quotes.
fn database_name(prefix: &str) -> String {
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    let prefix = if prefix.is_empty() || prefix.starts_with(|c: char| c.is_ascii_digit()) {
        format!("t_{prefix}")
    } else {
        prefix
    };
    let mut name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        unique_suffix().replace('-', "_")
    );
    name.truncate(MAX_NAME_LEN);
    name
}

/// The admin URL with its database name replaced (query parameters kept).
fn url_with_database(admin_url: &str, database: &str) -> anyhow::Result<String> {
    let scheme_end = admin_url
        .find("://")
        .context("TEST_DATABASE_URL must be a URL like postgres://user@host:port/db")?
        + "://".len();
    let (scheme, rest) = admin_url.split_at(scheme_end);
    let (authority_and_path, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    let authority = authority_and_path
        .split_once('/')
        .map_or(authority_and_path, |(authority, _)| authority);
    Ok(format!("{scheme}{authority}/{database}{query}"))
}

/// The URL with any password replaced by `***`, for messages.
fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|index| index + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _password)) => {
                format!("{}{user}:***{}", &url[..scheme_end], &rest[at..])
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn url_with_database_replaces_only_the_database_name() {
        assert_eq!(
            url_with_database("postgres://postgres@127.0.0.1:5432/postgres", "x_1").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x_1"
        );
        assert_eq!(
            url_with_database("postgresql://u:p@h/db?sslmode=disable", "x").unwrap(),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            url_with_database("postgres://h:5432", "x").unwrap(),
            "postgres://h:5432/x"
        );
    }

    #[test]
    fn database_names_are_unique_safe_identifiers() {
        let first = database_name("Auth Service-Tests");
        let second = database_name("Auth Service-Tests");
        assert_ne!(first, second);
        assert!(first.starts_with("auth_service_tests_"), "{first}");
        assert!(first.len() <= MAX_NAME_LEN);
        assert!(
            first
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
        assert!(database_name("1x").starts_with("t_1x_"));
        assert!(database_name(&"a".repeat(100)).len() <= MAX_NAME_LEN);
    }

    #[test]
    fn redact_password_hides_only_the_password() {
        assert_eq!(
            redact_password("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_password("postgres://postgres@h/db"),
            "postgres://postgres@h/db"
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_skipped_unless_postgres_is_required() {
        // Port 1 on loopback: nothing listens there.
        let url = "postgres://postgres@127.0.0.1:1/postgres";
        assert!(
            fresh_database_on(url, "skip", false)
                .await
                .unwrap()
                .is_none()
        );
        let error = fresh_database_on(url, "skip", true).await.unwrap_err();
        assert!(
            format!("{error:#}").contains("REQUIRE_POSTGRES=1"),
            "{error:#}"
        );
    }
}
