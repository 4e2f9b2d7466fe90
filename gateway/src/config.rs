//! The gateway's typed configuration: clap flags with environment fallbacks, validated once at
//! startup (`Config::validate`) so a bad value fails before the first request.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use http::{HeaderValue, Uri};
use telemetry::LogFormat;

/// Everything the gateway needs to start. Tests build this struct directly.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "gateway",
    version,
    about = "grpc-web/gRPC entry point for browsers: forwards \
    todo.v1/auth.v1 calls, checks Origin (CSRF) and CORS, serves the dashboard and proxies \
    /api/auth/* to Better Auth"
)]
pub struct Config {
    /// Address to listen on (HTTP/1.1 and h2c on one port).
    #[arg(
        long = "listen",
        env = "GATEWAY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// Base URL of the todo-service; `/todo.v1.TodoService/*` is forwarded there.
    #[arg(
        long,
        env = "TODO_SERVICE_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub todo_service_url: String,

    /// Base URL of the auth-service; `/auth.v1.AuthService/*` is forwarded there, and
    /// `GET /dashboard` asks it whether the browser's session is valid.
    #[arg(
        long,
        env = "AUTH_SERVICE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub auth_service_url: String,

    /// Base URL of Better Auth; `/api/auth/*` is reverse-proxied there.
    #[arg(long, env = "BETTER_AUTH_URL", default_value = "http://127.0.0.1:3000")]
    pub better_auth_url: String,

    /// Browser origins (comma-separated, e.g. `http://localhost:5173`) that may call the gateway
    /// with cookies and get CORS grants. The gateway's own origin is always allowed to send
    /// cookies and needs no entry.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',', num_args = 0..)]
    pub allowed_origins: Vec<String>,

    /// Trust the `X-Forwarded-Proto` request header when computing the gateway's own origin and
    /// when telling Better Auth the scheme. Enable only behind a TLS-terminating proxy that sets
    /// (overwrites) it; otherwise the gateway's scheme is `http`.
    #[arg(long, env = "TRUST_FORWARDED_PROTO", default_value_t = false)]
    pub trust_forwarded_proto: bool,

    /// Directory with the built dashboard (`login.html`, `dashboard.html`, `assets/`).
    #[arg(long, env = "WEB_DIR", default_value = "web/dist")]
    pub web_dir: PathBuf,

    /// Largest request body accepted, in bytes (gRPC messages and `/api/auth` bodies).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest request head (request line + headers) accepted, in bytes (at least 8192).
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,

    /// Time limit for one request until its response headers, in milliseconds (upstream calls,
    /// the dashboard's session check, the Better Auth proxy).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 15_000)]
    pub request_timeout_ms: u64,

    /// Requests handled at once; more are refused at once (gRPC UNAVAILABLE, HTTP 503).
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,

    /// Log format (`RUST_LOG` sets the filter).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Address of the Prometheus metrics endpoint (`GET /metrics`, plain HTTP, separate from
    /// the gateway port so it is never exposed to browsers; port 0 picks a free port).
    #[arg(long, env = "METRICS_LISTEN", default_value = "127.0.0.1:9080")]
    pub metrics_listen: SocketAddr,
}

/// Smallest header limit hyper's HTTP/1 parser accepts.
const MIN_HEADER_BYTES: usize = 8192;

impl Config {
    /// Checks every value that clap cannot: URLs, origins and limits.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, url) in [
            ("TODO_SERVICE_URL", &self.todo_service_url),
            ("AUTH_SERVICE_URL", &self.auth_service_url),
            ("BETTER_AUTH_URL", &self.better_auth_url),
        ] {
            base_url(url).with_context(|| format!("{name} is not a usable base URL: {url:?}"))?;
        }
        for origin in &self.allowed_origins {
            parse_origin(origin).with_context(|| format!("ALLOWED_ORIGINS entry {origin:?}"))?;
        }
        if self.max_body_bytes == 0 {
            bail!("MAX_BODY_BYTES must be above 0");
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            bail!("MAX_HEADER_BYTES must be at least {MIN_HEADER_BYTES}");
        }
        if self.request_timeout_ms == 0 {
            bail!("REQUEST_TIMEOUT_MS must be above 0");
        }
        if self.max_concurrent_requests == 0 {
            bail!("MAX_CONCURRENT_REQUESTS must be above 0");
        }
        Ok(())
    }

    /// The per-request time limit.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The allowed origins as header values, lower-cased (the form browsers send).
    pub(crate) fn origin_values(&self) -> anyhow::Result<Vec<HeaderValue>> {
        self.allowed_origins
            .iter()
            .map(|o| parse_origin(o))
            .collect()
    }
}

/// An `http://` or `https://` URL with a host and nothing after the path.
fn base_url(url: &str) -> anyhow::Result<Uri> {
    let uri: Uri = url.parse().context("not a URL")?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => bail!("the scheme must be http or https"),
    }
    if uri.authority().is_none() {
        bail!("the URL has no host");
    }
    if uri.query().is_some() {
        bail!("the URL must not have a query");
    }
    Ok(uri)
}

/// An origin exactly as a browser sends it: `scheme://host[:port]`, no path, no trailing slash.
/// `*` and `null` are refused: credentials must never be granted to them.
fn parse_origin(origin: &str) -> anyhow::Result<HeaderValue> {
    let uri = base_url(origin)?;
    if origin.ends_with('/') || uri.path() != "/" {
        bail!("an origin has no path and no trailing slash (e.g. http://localhost:5173)");
    }
    HeaderValue::from_str(&origin.to_ascii_lowercase()).context("not a valid header value")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str]) -> Config {
        Config::parse_from(std::iter::once("gateway").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_valid() {
        let config = config(&[]);
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.metrics_listen.to_string(), "127.0.0.1:9080");
        assert!(config.allowed_origins.is_empty());
        config.validate().unwrap();
    }

    #[test]
    fn allowed_origins_are_comma_separated() {
        let config = config(&[
            "--allowed-origins",
            "http://localhost:5173,https://app.example",
        ]);
        assert_eq!(
            config.allowed_origins,
            ["http://localhost:5173", "https://app.example"]
        );
        config.validate().unwrap();
    }

    #[test]
    fn wildcard_null_and_paths_are_not_origins() {
        for bad in [
            "*",
            "null",
            "http://a.example/",
            "http://a.example/x",
            "ftp://a.example",
        ] {
            let config = config(&["--allowed-origins", bad]);
            assert!(config.validate().is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn bad_urls_and_limits_fail_validation() {
        assert!(
            config(&["--todo-service-url", "127.0.0.1:50052"])
                .validate()
                .is_err()
        );
        assert!(config(&["--max-body-bytes", "0"]).validate().is_err());
        assert!(config(&["--max-header-bytes", "100"]).validate().is_err());
    }
}
