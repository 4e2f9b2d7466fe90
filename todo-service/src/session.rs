//! The session middleware: a tower layer in front of `TodoService` that asks the auth-service
//! (`auth.v1.AuthService/ValidateSession`) who the caller is, once per RPC, and hands the
//! handler an [`AuthenticatedUser`] in the request extensions.
//!
//! Only the `cookie` metadata is read; nothing else a client sends (`x-user-id`, …) can choose
//! the user. Every failure ends the RPC here (fail closed): the auth-service's own status is
//! passed through with its code, message and details; an unreachable auth-service is
//! UNAVAILABLE. `set_cookie` values from the auth-service (session refresh or clearing) go back
//! to the caller as `set-cookie` response metadata, on success and on error. A call that provably
//! never reached the auth-service (e.g. it raced the auth-service's graceful shutdown) is sent
//! once more within the same deadline.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, header};
use proto::auth::v1::ValidateSessionRequest;
use proto::auth::v1::auth_service_client::AuthServiceClient;
use telemetry::trace::TraceParent;
use tonic::body::Body;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::server::NamedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tower_layer::Layer;
use tower_service::Service;

use crate::domain::{AuthenticatedUser, UserId};
use crate::error::Error;
use crate::metrics::TodoMetrics;

/// When the RPC reached the middleware, for the handler's latency log.
#[derive(Debug, Clone, Copy)]
pub struct RpcStarted(pub Instant);

/// Wraps a service so every request is authenticated first. Cheap to clone: all clones share
/// one channel (one HTTP/2 connection) to the auth-service.
#[derive(Clone)]
pub struct SessionLayer {
    client: AuthServiceClient<Channel>,
    timeout: Duration,
    metrics: TodoMetrics,
}

impl SessionLayer {
    /// Uses `channel` for every ValidateSession call, each bounded by `timeout` (or the caller's
    /// shorter `grpc-timeout`).
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        Self {
            client: AuthServiceClient::new(channel),
            timeout,
            metrics: TodoMetrics::default(),
        }
    }

    /// Counts every session check's outcome in `metrics`.
    pub fn with_metrics(mut self, metrics: TodoMetrics) -> Self {
        self.metrics = metrics;
        self
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = Session<S>;

    fn layer(&self, inner: S) -> Session<S> {
        Session {
            inner,
            client: self.client.clone(),
            timeout: self.timeout,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service produced by [`SessionLayer`].
#[derive(Clone)]
pub struct Session<S> {
    inner: S,
    client: AuthServiceClient<Channel>,
    timeout: Duration,
    metrics: TodoMetrics,
}

impl<S: NamedService> NamedService for Session<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Session<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this request; the fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let client = self.client.clone();
        let default_timeout = self.timeout;
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let started = Instant::now();
            let cookie = cookie_header(request.headers());
            let caller_deadline = grpc_timeout(request.headers());
            // Set by `TraceContextLayer`; the auth-service continues the same trace.
            let trace = request.extensions().get::<TraceParent>().copied();
            let result = validate(client, cookie, default_timeout, caller_deadline, trace).await;
            metrics.session_check(result.as_ref().map(|_| ()));
            match result {
                Ok((user, set_cookies)) => {
                    request.extensions_mut().insert(user);
                    request.extensions_mut().insert(RpcStarted(started));
                    let mut response = inner.call(request).await?;
                    append_set_cookies(response.headers_mut(), &set_cookies);
                    Ok(response)
                }
                Err(status) => {
                    tracing::info!(
                        method = request.uri().path(),
                        status = ?status.code(),
                        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                        "rpc rejected by the session check"
                    );
                    Ok(status.into_http())
                }
            }
        })
    }
}

/// All `cookie` values, joined as one header would be (HTTP/2 clients may split cookies).
fn cookie_header(headers: &HeaderMap) -> String {
    headers
        .get_all(header::COOKIE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The caller's deadline from `grpc-timeout` (`<at most 8 digits><H|M|S|m|u|n>`), if valid.
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get("grpc-timeout")?.to_str().ok()?;
    if raw.len() < 2 || raw.len() > 9 {
        return None;
    }
    let (digits, unit) = raw.split_at(raw.len() - 1);
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.saturating_mul(3600)),
        "M" => Duration::from_secs(value.saturating_mul(60)),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

/// One ValidateSession call. On success: the user and the `Set-Cookie` values to pass on. On
/// failure: the status to answer with (carrying any `set-cookie` metadata to pass on).
async fn validate(
    mut client: AuthServiceClient<Channel>,
    cookie: String,
    default_timeout: Duration,
    caller_deadline: Option<Duration>,
    trace: Option<TraceParent>,
) -> Result<(AuthenticatedUser, Vec<String>), Status> {
    let caller_is_tighter = caller_deadline.is_some_and(|d| d < default_timeout);
    let timeout = caller_deadline.map_or(default_timeout, |d| d.min(default_timeout));
    let deadline = Instant::now() + timeout;
    let send = async {
        let mut retried = false;
        loop {
            let mut call = tonic::Request::new(ValidateSessionRequest {
                cookie: cookie.clone(),
            });
            call.set_timeout(deadline.saturating_duration_since(Instant::now()));
            if let Some(value) = trace.and_then(|t| MetadataValue::try_from(t.to_string()).ok()) {
                call.metadata_mut().insert("traceparent", value);
            }
            match client.validate_session(call).await {
                // gRPC's transparent retry: the auth-service never saw the first attempt, so a
                // second one cannot run the check twice. Once: the channel has reconnected (or
                // fails to, which is UNAVAILABLE) by then.
                Err(status) if !retried && never_reached_server(&status) => {
                    tracing::debug!(
                        error = %status.message(),
                        "ValidateSession never reached the auth-service; sending it again"
                    );
                    retried = true;
                }
                answer => return answer,
            }
        }
    };
    let reply = match tokio::time::timeout(timeout, send).await {
        Ok(Ok(reply)) => reply.into_inner(),
        Ok(Err(status)) => return Err(pass_through(status)),
        Err(_) if caller_is_tighter => {
            return Err(Error::DeadlineExceeded("validating the session").into());
        }
        Err(_) => {
            return Err(Error::AuthUnavailable("ValidateSession timed out".into()).into());
        }
    };
    let Some(user) = reply.user else {
        return Err(
            Error::Unexpected(anyhow::anyhow!("ValidateSession answered without a user")).into(),
        );
    };
    let id = UserId::parse(user.id).map_err(|e| {
        Status::from(Error::Unexpected(anyhow::anyhow!(
            "ValidateSession user id: {e}"
        )))
    })?;
    Ok((
        AuthenticatedUser {
            id,
            email: user.email,
        },
        reply.set_cookie,
    ))
}

/// The auth-service's answer, re-issued with its code, message and details, and only the
/// `set-cookie` metadata (other response metadata of the auth hop is not the caller's
/// business). A status raised by our own client (connection refused, reset, …) has a source
/// error and means the auth-service could not be reached.
fn pass_through(status: Status) -> Status {
    if std::error::Error::source(&status).is_some() || status.code() == Code::Ok {
        return Error::AuthUnavailable(format!("ValidateSession failed: {}", status.message()))
            .into();
    }
    let mut metadata = MetadataMap::new();
    for value in status.metadata().get_all("set-cookie") {
        metadata.append("set-cookie", value.clone());
    }
    Status::with_details_and_metadata(
        status.code(),
        status.message().to_owned(),
        status.details().to_vec().into(),
        metadata,
    )
}

/// Whether our client's error proves the request never reached the auth-service, so that
/// sending it again cannot process it twice. Only errors of our own transport count (a status
/// the auth-service sent has no source, and stays what it is):
/// - hyper `Canceled`: the request was still queued in hyper's HTTP/2 dispatcher when that
///   connection stopped taking requests, e.g. because the server's graceful GOAWAY arrived
///   (hyper 1.x `client/dispatch.rs`, `Envelope::drop`: "connection closed";
///   `client/conn/http2.rs`: "connection was not ready"). No HEADERS frame was written. tonic
///   reports it as CANCELLED; the caller cancelling instead drops our future and yields no status.
/// - h2 `REFUSED_STREAM` from the server: it did not process the stream (RFC 9113 §8.7).
/// - a GOAWAY (NO_ERROR) from the server as the stream's error: h2 gives that error only to
///   streams above the GOAWAY's last stream id, which the server declares unprocessed
///   (RFC 9113 §6.8), or to a stream it could not open at all.
fn never_reached_server(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            let reason = h2.reason();
            return h2.is_remote()
                && ((h2.is_reset() && reason == Some(h2::Reason::REFUSED_STREAM))
                    || (h2.is_go_away() && reason == Some(h2::Reason::NO_ERROR)));
        }
        source = error.source();
    }
    false
}

fn append_set_cookies(headers: &mut HeaderMap, set_cookies: &[String]) {
    for value in set_cookies {
        // A value that is not a valid header cannot be a cookie the browser would accept.
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn split_cookie_headers_are_joined() {
        let map = headers(&[("cookie", "a=1"), ("cookie", "b=2")]);
        assert_eq!(cookie_header(&map), "a=1; b=2");
        assert_eq!(cookie_header(&HeaderMap::new()), "");
    }

    #[test]
    fn grpc_timeout_units_are_understood() {
        assert_eq!(
            grpc_timeout(&headers(&[("grpc-timeout", "250m")])),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            grpc_timeout(&headers(&[("grpc-timeout", "2S")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            grpc_timeout(&headers(&[("grpc-timeout", "1H")])),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            grpc_timeout(&headers(&[("grpc-timeout", "123456789S")])),
            None
        );
        assert_eq!(grpc_timeout(&headers(&[("grpc-timeout", "5x")])), None);
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn a_request_hyper_never_sent_is_known_not_to_have_reached_the_server() {
        // An HTTP/2 client connection whose connection task is gone, as after a GOAWAY: hyper
        // hands the request back unsent as `Canceled`, which tonic reports as CANCELLED.
        let (io, _server_side) = tokio::io::duplex(64 * 1024);
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(io),
        )
        .await
        .expect("the handshake is written");
        drop(connection);
        let error = sender
            .send_request(http::Request::new(Body::empty()))
            .await
            .expect_err("no connection task to send it");
        assert!(error.is_canceled(), "{error:?}");

        let status = Status::from_error(Box::new(error));
        assert_eq!(status.code(), Code::Cancelled);
        assert!(never_reached_server(&status));
    }

    #[test]
    fn statuses_from_the_server_or_other_failures_are_not_resent() {
        // Sent by the auth-service (no source): CANCELLED stays CANCELLED, and is final.
        assert!(!never_reached_server(&Status::cancelled(
            "cancelled upstream"
        )));
        assert!(!never_reached_server(&Status::unavailable("down")));
        // A reset connection may have carried the request: not provably unsent.
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!never_reached_server(&Status::from_error(Box::new(reset))));
        // An h2 error that is not the server refusing or going away before the stream.
        let local = h2::Error::from(h2::Reason::REFUSED_STREAM);
        assert!(!never_reached_server(&Status::from_error(Box::new(local))));
    }

    #[test]
    fn passed_through_errors_keep_only_set_cookie_metadata() {
        let mut status = Status::unauthenticated("session invalid");
        status
            .metadata_mut()
            .insert("set-cookie", MetadataValue::from_static("a=; Max-Age=0"));
        status
            .metadata_mut()
            .insert("x-internal", MetadataValue::from_static("secret"));
        let passed = pass_through(status);
        assert_eq!(passed.code(), Code::Unauthenticated);
        assert_eq!(passed.message(), "session invalid");
        assert!(passed.metadata().get("set-cookie").is_some());
        assert!(passed.metadata().get("x-internal").is_none());
    }
}
