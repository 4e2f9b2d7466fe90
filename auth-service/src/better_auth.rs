//! The Better Auth client: one pooled HTTP client that asks `GET /api/auth/get-session` whether a
//! `SessionCookie` is a live session, and turns every possible answer into a `SessionLookup` or
//! an [`Error`] (DESIGN.md's contract table).

use std::time::Duration;

use reqwest::{StatusCode, Url, header};
use serde::Deserialize;
use telemetry::trace::{TRACEPARENT, TraceParent};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::time::Instant;

use crate::{cookie::SessionCookie, error::Error, metrics::AuthMetrics};

/// The most of a get-session body this service reads; a real answer is well under 2 KiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Pooled connections idle longer than this are dropped, before Node's 5 s keep-alive closes
/// them from its side (which would race with a request sent on them).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// A Better Auth user, as get-session returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Better Auth's user id.
    pub id: String,
    /// The user's (lower-cased) email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Whether the email is verified.
    pub email_verified: bool,
    /// Avatar URL, if any.
    pub image: Option<String>,
}

/// A Better Auth session, without its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Better Auth's session id (not the token).
    pub id: String,
    /// When the session expires.
    pub expires_at: OffsetDateTime,
    /// When the session was created.
    pub created_at: OffsetDateTime,
}

/// A valid session and the `Set-Cookie`s Better Auth sent with it (sliding refresh).
#[derive(Debug, Clone)]
pub struct ValidSession {
    /// Who the session belongs to.
    pub user: User,
    /// The session itself.
    pub session: Session,
    /// `Set-Cookie` header values, in order; credentials, never log them.
    pub set_cookie: Vec<String>,
}

/// Calls Better Auth. Cheap to clone (the connection pool is shared); build it once.
#[derive(Debug, Clone)]
pub struct BetterAuthClient {
    http: reqwest::Client,
    base_url: String,
    get_session_url: Url,
    timeout: Duration,
    metrics: AuthMetrics,
}

impl BetterAuthClient {
    /// Builds the pooled client for `base_url` (Better Auth's root URL). `timeout` bounds a whole
    /// lookup, retry included.
    pub fn new(base_url: &Url, timeout: Duration) -> anyhow::Result<Self> {
        // reqwest is built with `rustls-no-provider`: an https base URL needs a process-wide
        // crypto provider. Installing twice fails harmlessly, so the result is ignored.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("auth-service/", env!("CARGO_PKG_VERSION")));
        if base_url.scheme() == "http" {
            // Better Auth runs on node:http, which speaks HTTP/1.1 only.
            builder = builder.http1_only();
        }
        let http = builder
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the Better Auth HTTP client: {e}"))?;

        let base = base_url.as_str().trim_end_matches('/');
        let get_session_url = Url::parse(&format!(
            "{base}/api/auth/get-session?disableCookieCache=true"
        ))?;
        Ok(Self {
            http,
            base_url: base.to_owned(),
            get_session_url,
            timeout,
            metrics: AuthMetrics::default(),
        })
    }

    /// Records each lookup's latency in `metrics`.
    pub fn with_metrics(mut self, metrics: AuthMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Asks Better Auth whether `cookie` is a live session. `trace` (the calling request's
    /// trace context) is sent as the `traceparent` header.
    ///
    /// The timeout is one deadline for everything, including the retry: when it passes, the
    /// in-flight request is dropped and the answer is UNAVAILABLE.
    pub async fn session(
        &self,
        cookie: &SessionCookie,
        trace: Option<TraceParent>,
    ) -> Result<ValidSession, Error> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let result = tokio::time::timeout_at(deadline, self.lookup(cookie, trace)).await;
        self.metrics.better_auth_call(started.elapsed());
        match result {
            Ok(result) => result,
            Err(_elapsed) => Err(Error::ProviderUnavailable(format!(
                "Better Auth at {} did not answer within {} ms (BETTER_AUTH_TIMEOUT_MS); \
                 it may be overloaded or stuck",
                self.base_url,
                self.timeout.as_millis()
            ))),
        }
    }

    async fn lookup(
        &self,
        cookie: &SessionCookie,
        trace: Option<TraceParent>,
    ) -> Result<ValidSession, Error> {
        let response = match self.send(cookie, trace).await {
            Ok(response) => response,
            // No HTTP answer at all (connect error, or a pooled keep-alive connection that Node
            // closed as the request went out): Better Auth never saw or never answered the
            // request, so one more attempt on a fresh connection is safe.
            Err(first) if is_retryable(&first) => {
                tracing::debug!(error = %describe(&first), "retrying get-session once");
                self.send(cookie, trace)
                    .await
                    .map_err(|e| self.unreachable(&e))?
            }
            Err(e) => return Err(self.unreachable(&e)),
        };
        self.interpret(response).await
    }

    async fn send(
        &self,
        cookie: &SessionCookie,
        trace: Option<TraceParent>,
    ) -> reqwest::Result<reqwest::Response> {
        let mut request = self
            .http
            .get(self.get_session_url.clone())
            .header(header::COOKIE, cookie.header_value().clone())
            .header(header::ACCEPT, "application/json");
        if let Some(trace) = trace {
            request = request.header(TRACEPARENT, trace.header_value());
        }
        request.send().await
    }

    fn unreachable(&self, error: &reqwest::Error) -> Error {
        Error::ProviderUnavailable(format!(
            "cannot reach Better Auth at {}: {}; is it running and is BETTER_AUTH_URL right?",
            self.base_url,
            describe(error)
        ))
    }

    async fn interpret(&self, mut response: reqwest::Response) -> Result<ValidSession, Error> {
        let status = response.status();
        let set_cookie = self.set_cookies(response.headers())?;
        match status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(Error::SessionInvalid { set_cookie });
            }
            StatusCode::TOO_MANY_REQUESTS => {
                return Err(Error::ProviderUnavailable(format!(
                    "Better Auth at {} answered 429 Too Many Requests: its rate limiter is \
                     throttling get-session (exempt /get-session in rateLimit.customRules)",
                    self.base_url
                )));
            }
            status if status.is_server_error() => {
                return Err(Error::ProviderUnavailable(format!(
                    "Better Auth at {} answered HTTP {status} (a failure on its side, e.g. its \
                     database is down); see Better Auth's logs",
                    self.base_url
                )));
            }
            StatusCode::NOT_FOUND => {
                return Err(Error::ProviderBadResponse(format!(
                    "Better Auth at {} answered 404 for /api/auth/get-session: BETTER_AUTH_URL is \
                     probably wrong (it must be the server's root URL, without /api/auth)",
                    self.base_url
                )));
            }
            status => {
                return Err(Error::ProviderBadResponse(format!(
                    "Better Auth at {} answered unexpected HTTP {status} to get-session",
                    self.base_url
                )));
            }
        }

        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(Error::ProviderBadResponse(format!(
                            "Better Auth at {} answered get-session with a body over {} bytes",
                            self.base_url, MAX_BODY_BYTES
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(Error::ProviderUnavailable(format!(
                        "the connection to Better Auth at {} failed while reading its answer: {}",
                        self.base_url,
                        describe(&e)
                    )));
                }
            }
        }

        match parse_body(&body) {
            Ok(Some((user, session))) => Ok(ValidSession {
                user,
                session,
                set_cookie,
            }),
            Ok(None) => Err(Error::SessionInvalid { set_cookie }),
            Err(problem) => Err(Error::ProviderBadResponse(format!(
                "Better Auth at {} answered get-session with 200 but {problem}; is BETTER_AUTH_URL \
                 a Better Auth server of a compatible version?",
                self.base_url
            ))),
        }
    }

    /// Every `Set-Cookie` value, as text (gRPC metadata and proto strings need it).
    fn set_cookies(&self, headers: &header::HeaderMap) -> Result<Vec<String>, Error> {
        headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|value| {
                value.to_str().map(str::to_owned).map_err(|_| {
                    Error::ProviderBadResponse(format!(
                        "Better Auth at {} sent a Set-Cookie header that is not visible ASCII",
                        self.base_url
                    ))
                })
            })
            .collect()
    }
}

/// True when `send` failed without any HTTP response (so Better Auth cannot have answered).
fn is_retryable(error: &reqwest::Error) -> bool {
    !error.is_builder() && !error.is_redirect() && !error.is_status()
}

/// A one-line cause chain. reqwest's own message names the full URL, so it is replaced by a
/// short label; the callers name the base URL themselves.
fn describe(error: &reqwest::Error) -> String {
    let mut text = String::from(if error.is_connect() {
        "connection failed"
    } else if error.is_body() {
        "reading the body failed"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

// The wire schema (better-auth.md §4). Unknown fields (the session token among them) are not
// deserialized at all, so the token never reaches this process's memory as a field.
#[derive(Deserialize)]
struct Body {
    session: WireSession,
    user: WireUser,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSession {
    id: String,
    user_id: String,
    expires_at: String,
    created_at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUser {
    id: String,
    email: String,
    name: String,
    email_verified: bool,
    image: Option<String>,
}

/// `Ok(None)` for the JSON `null` Better Auth sends when there is no session. The error text
/// names what is wrong without quoting the body (it may hold personal data).
fn parse_body(body: &[u8]) -> Result<Option<(User, Session)>, String> {
    let parsed: Option<Body> = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body is not a get-session answer ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    let Some(Body { session, user }) = parsed else {
        return Ok(None);
    };
    if session.user_id != user.id {
        return Err("session.userId differs from user.id".to_owned());
    }
    if session.id.is_empty() || user.id.is_empty() {
        return Err("session.id or user.id is empty".to_owned());
    }
    let timestamp = |field: &str, value: &str| {
        OffsetDateTime::parse(value, &Rfc3339)
            .map_err(|_| format!("{field} is not an ISO 8601 timestamp"))
    };
    let session = Session {
        expires_at: timestamp("session.expiresAt", &session.expires_at)?,
        created_at: timestamp("session.createdAt", &session.created_at)?,
        id: session.id,
    };
    let user = User {
        id: user.id,
        email: user.email,
        name: user.name,
        email_verified: user.email_verified,
        image: user.image,
    };
    Ok(Some((user, session)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"{"session":{"expiresAt":"2026-12-03T15:53:06.553Z","token":"QjEEobE777IIASOs5uIK4uQ8o0xhohwR","createdAt":"2026-11-26T15:53:06.553Z","updatedAt":"2026-11-26T15:53:06.553Z","ipAddress":"","userAgent":"curl/7.88.1","userId":"aekHiyTA0ZktQM8NMqYir5m4ewTJuvDW","id":"OQhKwpFYKHIBMUISRk4kdIqn1yt0viLE"},"user":{"name":"Alice","email":"alice@example.com","emailVerified":false,"image":null,"createdAt":"2026-11-26T15:53:06.326Z","updatedAt":"2026-11-26T15:53:06.326Z","id":"aekHiyTA0ZktQM8NMqYir5m4ewTJuvDW"}}"#;

    #[test]
    fn the_documented_answer_parses() {
        let (user, session) = parse_body(VALID.as_bytes())
            .expect("valid")
            .expect("a session");
        assert_eq!(user.id, "aekHiyTA0ZktQM8NMqYir5m4ewTJuvDW");
        assert_eq!(user.email, "alice@example.com");
        assert_eq!(user.image, None);
        assert_eq!(session.id, "OQhKwpFYKHIBMUISRk4kdIqn1yt0viLE");
        assert_eq!(session.expires_at.unix_timestamp(), 1_796_313_186);
        assert_eq!(session.expires_at.millisecond(), 553);
    }

    #[test]
    fn null_means_no_session() {
        assert_eq!(parse_body(b"null"), Ok(None));
        assert_eq!(parse_body(b" null\n"), Ok(None));
    }

    #[test]
    fn other_bodies_are_errors_that_do_not_quote_the_body() {
        for body in [
            "",
            "<html>oops</html>",
            "{}",
            r#"{"session":null,"user":null}"#,
            r#"{"user":{"id":"secret@example.com"}}"#,
            &VALID.replace("2026-12-03T15:53:06.553Z", "tomorrow"),
            &VALID.replace(r#""userId":"aek"#, r#""userId":"xek"#),
        ] {
            let problem = parse_body(body.as_bytes()).expect_err(body);
            assert!(!problem.contains("secret"), "{problem}");
            assert!(!problem.contains("tomorrow"), "{problem}");
        }
    }
}
