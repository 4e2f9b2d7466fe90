//! The auth-service configuration: flags with environment fallbacks (names from DESIGN.md),
//! validated once at startup so a bad value fails before the first request.

use std::{net::SocketAddr, time::Duration};

use clap::{ArgAction, Parser, builder::BoolishValueParser};
use reqwest::Url;
use telemetry::LogFormat;

/// Everything the auth-service needs to run. Tests build it directly; `main` parses it.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "auth-service",
    version,
    about = "auth.v1.AuthService: validates Better Auth sessions by asking Better Auth's get-session endpoint."
)]
pub struct Config {
    /// Address the gRPC server listens on (port 0 picks a free port).
    #[arg(long, env = "AUTH_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Root URL of the Better Auth server (http or https, without `/api/auth`); the service
    /// calls `<URL>/api/auth/get-session`.
    #[arg(
        long,
        env = "BETTER_AUTH_URL",
        default_value = "http://127.0.0.1:3000",
        value_parser = parse_better_auth_url
    )]
    pub better_auth_url: Url,

    /// Better Auth's cookie prefix (`advanced.cookiePrefix`). Only cookies named `<prefix>.*`,
    /// `__Secure-<prefix>.*` or `__Host-<prefix>.*` are forwarded to Better Auth.
    #[arg(
        long,
        env = "BETTER_AUTH_COOKIE_PREFIX",
        default_value = "better-auth",
        value_parser = parse_cookie_prefix
    )]
    pub better_auth_cookie_prefix: String,

    /// Total time allowed for one call to Better Auth, including its single retry, in
    /// milliseconds (> 0). Slower answers give UNAVAILABLE.
    #[arg(
        long = "better-auth-timeout-ms",
        value_name = "MS",
        env = "BETTER_AUTH_TIMEOUT_MS",
        default_value = "2000",
        value_parser = parse_timeout_ms
    )]
    pub better_auth_timeout: Duration,

    /// Log format: `pretty` for a terminal, `json` for collectors (`RUST_LOG` sets the filter).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Address of the Prometheus metrics endpoint (`GET /metrics`, plain HTTP, separate from
    /// the gRPC port; port 0 picks a free port).
    #[arg(long, env = "METRICS_LISTEN", default_value = "127.0.0.1:9051")]
    pub metrics_listen: SocketAddr,

    /// Strict request coalescing (`true`/`false`): concurrent checks of the same Better Auth
    /// cookies share one get-session call, but a check only takes the answer of a call sent
    /// after it arrived (while one is in flight, new arrivals wait for the next), so a session
    /// revoked before a check began is never accepted by it. `--coalesce=false` gives every
    /// check its own call.
    #[arg(
        long,
        env = "AUTH_COALESCE",
        value_name = "BOOL",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new()
    )]
    pub coalesce: bool,
}

impl Config {
    /// The defaults, with the given Better Auth URL; convenient for tests and tools. One
    /// exception: metrics listen on a free port (127.0.0.1:0), so several in-process apps
    /// never fight over the fixed default.
    pub fn new(better_auth_url: Url) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            better_auth_url,
            better_auth_cookie_prefix: "better-auth".to_owned(),
            better_auth_timeout: Duration::from_millis(2000),
            log_format: LogFormat::Pretty,
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            coalesce: true,
        }
    }

    /// Checks what the types do not: the same rules clap applies to flags, for configs built
    /// in code.
    pub fn validate(&self) -> Result<(), String> {
        check_better_auth_url(&self.better_auth_url)?;
        check_cookie_prefix(&self.better_auth_cookie_prefix)?;
        if self.better_auth_timeout.is_zero() {
            return Err("BETTER_AUTH_TIMEOUT_MS must be greater than 0".to_owned());
        }
        Ok(())
    }
}

fn parse_better_auth_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| {
        format!("BETTER_AUTH_URL {value:?} is not a URL ({e}); expected e.g. http://127.0.0.1:3000")
    })?;
    check_better_auth_url(&url)?;
    Ok(url)
}

fn check_better_auth_url(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "BETTER_AUTH_URL must be an http or https URL, got scheme {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("BETTER_AUTH_URL has no host".to_owned());
    }
    // Credentials in the URL would end up in error messages and logs.
    if !url.username().is_empty() || url.password().is_some() {
        return Err("BETTER_AUTH_URL must not contain a user name or password".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("BETTER_AUTH_URL must not have a query or fragment".to_owned());
    }
    Ok(())
}

fn parse_cookie_prefix(value: &str) -> Result<String, String> {
    check_cookie_prefix(value)?;
    Ok(value.to_owned())
}

/// A cookie name is an RFC 6265 token: visible ASCII without separators.
fn check_cookie_prefix(prefix: &str) -> Result<(), String> {
    let is_token_char = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
    if prefix.is_empty() || !prefix.chars().all(is_token_char) {
        return Err(format!(
            "BETTER_AUTH_COOKIE_PREFIX {prefix:?} is not a valid cookie name prefix \
             (non-empty, visible ASCII, no separators such as = ; , or spaces)"
        ));
    }
    Ok(())
}

fn parse_timeout_ms(value: &str) -> Result<Duration, String> {
    match value.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "BETTER_AUTH_TIMEOUT_MS must be a whole number of milliseconds greater than 0, got {value:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("auth-service").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_design() {
        let config = parse(&[]).expect("defaults parse");
        assert_eq!(config.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(config.better_auth_url.as_str(), "http://127.0.0.1:3000/");
        assert_eq!(config.better_auth_cookie_prefix, "better-auth");
        assert_eq!(config.better_auth_timeout, Duration::from_millis(2000));
        assert_eq!(config.metrics_listen.to_string(), "127.0.0.1:9051");
        assert!(config.coalesce);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn coalescing_is_on_by_default_and_turned_off_with_coalesce_false() {
        // `cargo xtask bench --no-coalesce` passes exactly `--coalesce=false`.
        assert!(!parse(&["--coalesce=false"]).expect("parses").coalesce);
        assert!(!parse(&["--coalesce", "false"]).expect("parses").coalesce);
        assert!(parse(&["--coalesce=true"]).expect("parses").coalesce);
        assert!(parse(&["--coalesce"]).expect("parses").coalesce);
        assert!(parse(&["--coalesce=maybe"]).is_err());
        assert!(Config::new(Url::parse("http://127.0.0.1:1").expect("url")).coalesce);
    }

    #[test]
    fn a_non_http_better_auth_url_is_rejected() {
        assert!(parse(&["--better-auth-url", "ftp://127.0.0.1:3000"]).is_err());
        assert!(parse(&["--better-auth-url", "127.0.0.1:3000"]).is_err());
        assert!(parse(&["--better-auth-url", "http://u:p@127.0.0.1:3000"]).is_err());
        assert!(parse(&["--better-auth-url", "https://auth.example.com"]).is_ok());
    }

    #[test]
    fn a_zero_or_non_numeric_timeout_is_rejected() {
        assert!(parse(&["--better-auth-timeout-ms", "0"]).is_err());
        assert!(parse(&["--better-auth-timeout-ms", "soon"]).is_err());
        let config = parse(&["--better-auth-timeout-ms", "150"]).expect("valid timeout");
        assert_eq!(config.better_auth_timeout, Duration::from_millis(150));
    }

    #[test]
    fn a_cookie_prefix_with_separators_is_rejected() {
        assert!(parse(&["--better-auth-cookie-prefix", ""]).is_err());
        assert!(parse(&["--better-auth-cookie-prefix", "a;b"]).is_err());
        assert!(parse(&["--better-auth-cookie-prefix", "my app"]).is_err());
        assert!(parse(&["--better-auth-cookie-prefix", "my-app"]).is_ok());
    }

    #[test]
    fn validate_rejects_a_zero_timeout_built_in_code() {
        let mut config = Config::new(Url::parse("http://127.0.0.1:1").expect("url"));
        config.better_auth_timeout = Duration::ZERO;
        assert!(config.validate().is_err());
    }
}
