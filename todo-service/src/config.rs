//! Typed configuration: flags with environment fallbacks (DESIGN.md names), validated by clap
//! before anything starts. Tests build the struct directly.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use telemetry::LogFormat;

/// todo.v1.TodoService: per-user todos behind a Better Auth session check.
#[derive(Debug, Clone, Parser)]
#[command(name = "todo-service", version, about)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long = "listen",
        env = "TODO_LISTEN",
        default_value = "127.0.0.1:50052"
    )]
    pub listen: SocketAddr,

    /// `sqlite://PATH` (the file and its folder are created) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://.data/todos.db")]
    pub database_url: DatabaseUrl,

    /// Connections in the database pool.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub database_pool_size: u16,

    /// How long an RPC waits for a database connection before answering UNAVAILABLE.
    #[arg(long, env = "DATABASE_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub database_timeout_ms: u64,

    /// The auth-service that validates sessions (`http://host:port`).
    #[arg(long, env = "AUTH_SERVICE_URL", default_value = "http://127.0.0.1:50051",
          value_parser = parse_http_uri)]
    pub auth_service_url: http::Uri,

    /// Upper bound on one ValidateSession call; a shorter `grpc-timeout` from the caller wins.
    #[arg(long, env = "AUTH_TIMEOUT_MS", default_value_t = 3000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub auth_timeout_ms: u64,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Address of the Prometheus metrics endpoint (`GET /metrics`, plain HTTP, separate from
    /// the gRPC port; port 0 picks a free port).
    #[arg(long, env = "METRICS_LISTEN", default_value = "127.0.0.1:9052")]
    pub metrics_listen: SocketAddr,
}

impl Config {
    /// How long to wait for a pooled database connection.
    pub fn database_timeout(&self) -> Duration {
        Duration::from_millis(self.database_timeout_ms)
    }

    /// The ValidateSession deadline.
    pub fn auth_timeout(&self) -> Duration {
        Duration::from_millis(self.auth_timeout_ms)
    }
}

/// Where todos are stored.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `postgres://…` or `postgresql://…`, passed to the driver as is.
    Postgres(String),
    /// `sqlite://PATH`: a file path, relative to the working directory unless absolute.
    Sqlite(PathBuf),
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Ok(Self::Postgres(raw.to_owned()))
        } else if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://.data/todos.db".into());
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else {
            Err("expected sqlite://PATH, postgres://… or postgresql://…".into())
        }
    }
}

/// Never prints a PostgreSQL password.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(url) => {
                let redacted = match (url.find("://"), url.rfind('@')) {
                    (Some(scheme_end), Some(at)) if at > scheme_end => {
                        format!("{}://***@{}", &url[..scheme_end], &url[at + 1..])
                    }
                    _ => url.clone(),
                };
                write!(f, "Postgres({redacted:?})")
            }
            Self::Sqlite(path) => write!(f, "Sqlite({path:?})"),
        }
    }
}

fn parse_http_uri(raw: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = raw.parse().map_err(|e| format!("not a URI: {e}"))?;
    match (uri.scheme_str(), uri.authority()) {
        // Plain HTTP/2 only: the auth-service runs beside this service, not across a network.
        (Some("http"), Some(_)) => Ok(uri),
        _ => Err("expected http://host:port".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        use clap::CommandFactory as _;
        let command = Config::command();
        let default = |id: &str| {
            command
                .get_arguments()
                .find(|a| a.get_id() == id)
                .map(|a| a.get_default_values().to_vec())
        };
        assert_eq!(default("listen"), Some(vec!["127.0.0.1:50052".into()]));
        assert_eq!(
            default("database_url"),
            Some(vec!["sqlite://.data/todos.db".into()])
        );
        assert_eq!(
            default("auth_service_url"),
            Some(vec!["http://127.0.0.1:50051".into()])
        );
        assert_eq!(
            default("metrics_listen"),
            Some(vec!["127.0.0.1:9052".into()])
        );
    }

    #[test]
    fn database_urls_select_the_backend() {
        assert!(matches!(
            "postgres://u@h/db".parse(),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(matches!(
            "postgresql://u@h/db".parse(),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!("mysql://x".parse::<DatabaseUrl>().is_err());
        assert!("sqlite://".parse::<DatabaseUrl>().is_err());
    }

    #[test]
    fn debug_output_hides_the_postgres_password() {
        let url: DatabaseUrl = "postgres://user:hunter2@localhost/db"
            .parse()
            .expect("valid");
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn the_auth_service_url_must_be_http() {
        assert!(Config::try_parse_from(["x", "--auth-service-url", "ftp://h"]).is_err());
        assert!(Config::try_parse_from(["x", "--database-url", "nope"]).is_err());
    }
}
