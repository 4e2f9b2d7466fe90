//! The gRPC side of the gateway: one generic forwarding path by service prefix over shared tonic
//! Channels (a new RPC needs no change here), the gateway's own health and reflection, and
//! UNIMPLEMENTED for everything else. It sits behind tonic-web's `GrpcWebLayer` (grpc-web binary
//! and text are translated to gRPC before they get here) and tower-http's CORS layer.
//!
//! Only an allowlist of request headers reaches an upstream; response headers and trailers
//! (including every `set-cookie`) pass back untouched.

use std::{
    convert::Infallible, future::Future, pin::Pin, sync::Arc, task::Context, time::Duration,
};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version, header};
use tonic::{Status, body::Body, service::Routes, transport::Channel};
use tower::{Service, ServiceExt};

use crate::{
    error::GatewayError, limits::BodyCap, metrics::GatewayMetrics, origin::OriginPolicy,
    request_body::ForwardedBody,
};

/// Request headers forwarded upstream. `cookie` is handled apart (h2 may split it). The
/// `grpc-encoding` pair is what gRPC strictly needs to decode a compressed message.
const FORWARDED_HEADERS: [HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::TE,
    HeaderName::from_static("grpc-timeout"),
    HeaderName::from_static("grpc-encoding"),
    HeaderName::from_static("grpc-accept-encoding"),
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("x-request-id"),
];

/// Services the gateway answers itself.
const LOCAL_PREFIXES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Services forwarded upstream, by path prefix.
const TODO_PREFIX: &str = "/todo.v1.TodoService/";
const AUTH_PREFIX: &str = "/auth.v1.AuthService/";

/// Whether `path` names a service the gateway forwards or answers (whatever the method).
pub(crate) fn is_grpc_route(path: &str) -> bool {
    [TODO_PREFIX, AUTH_PREFIX]
        .iter()
        .chain(LOCAL_PREFIXES.iter())
        .any(|prefix| path.starts_with(prefix))
}

/// A refusal decided before the request reached the router (concurrency, declared body size),
/// carried in the request's extensions so it is answered as a proper (grpc-web) gRPC error.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EarlyRefusal {
    Overloaded,
    BodyTooLarge,
}

/// The upstreams, by the path prefix they serve.
#[derive(Debug, Clone)]
pub(crate) struct Upstreams {
    pub(crate) todo: Channel,
    pub(crate) auth: Channel,
}

/// Routes gRPC requests: forward, answer locally, or UNIMPLEMENTED.
#[derive(Clone)]
pub(crate) struct GrpcRouter {
    inner: Arc<Inner>,
}

struct Inner {
    upstreams: Upstreams,
    local: Routes,
    policy: OriginPolicy,
    timeout: Duration,
    max_body_bytes: usize,
    metrics: GatewayMetrics,
}

impl GrpcRouter {
    pub(crate) fn new(
        upstreams: Upstreams,
        local: Routes,
        policy: OriginPolicy,
        timeout: Duration,
        max_body_bytes: usize,
        metrics: GatewayMetrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                upstreams,
                local,
                policy,
                timeout,
                max_body_bytes,
                metrics,
            }),
        }
    }
}

impl Service<Request<Body>> for GrpcRouter {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.route(req).await) })
    }
}

impl Inner {
    async fn route(&self, req: Request<Body>) -> Response<Body> {
        let limit = self.max_body_bytes;
        match req.extensions().get::<EarlyRefusal>() {
            Some(EarlyRefusal::Overloaded) => return error_response(GatewayError::Overloaded),
            Some(EarlyRefusal::BodyTooLarge) => {
                return error_response(GatewayError::BodyTooLarge { limit });
            }
            None => {}
        }
        if let Err(refusal) = self.policy.check(req.headers(), req.uri()) {
            self.metrics.csrf_refused(refusal.as_str());
            tracing::info!(
                reason = refusal.as_str(),
                path = req.uri().path(),
                "cookie-carrying gRPC request refused"
            );
            return error_response(GatewayError::OriginNotAllowed);
        }

        let path = req.uri().path();
        let (upstream, channel) = if path.starts_with(TODO_PREFIX) {
            ("todo-service", self.upstreams.todo.clone())
        } else if path.starts_with(AUTH_PREFIX) {
            ("auth-service", self.upstreams.auth.clone())
        } else if LOCAL_PREFIXES.iter().any(|p| path.starts_with(p)) {
            return match self.local.clone().oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        } else {
            let path = path.to_owned();
            return error_response(GatewayError::UnknownMethod { path });
        };

        let cap = req.extensions().get::<BodyCap>().cloned();
        let result = self.forward(upstream, channel, req).await;
        // Whatever the upstream or transport made of a cut-off body, the cause is the limit.
        let response = if cap.is_some_and(|c| c.exceeded()) {
            error_response(GatewayError::BodyTooLarge { limit })
        } else {
            result.unwrap_or_else(error_response)
        };
        self.metrics.forwarded(upstream, &response);
        response
    }

    async fn forward(
        &self,
        upstream: &'static str,
        channel: Channel,
        req: Request<Body>,
    ) -> Result<Response<Body>, GatewayError> {
        let (parts, body) = req.into_parts();
        let (body, body_failed) = ForwardedBody::new(body);
        let mut out = Request::new(Body::new(body));
        *out.method_mut() = Method::POST;
        // The Channel fills in scheme and authority; h2 is what it speaks whatever came in.
        *out.uri_mut() = parts
            .uri
            .path_and_query()
            .map(|pq| Uri::from(pq.clone()))
            .unwrap_or_default();
        *out.version_mut() = Version::HTTP_2;
        copy_allowed_headers(&parts.headers, out.headers_mut());

        match tokio::time::timeout(self.timeout, channel.oneshot(out)).await {
            Err(_elapsed) => Err(GatewayError::Timeout { upstream }),
            // The stream to the upstream broke because the client's body could not be read:
            // the client's fault, not an outage (UNAVAILABLE would invite retries).
            Ok(Err(_)) if body_failed.is_set() => Err(GatewayError::MalformedRequest),
            Ok(Err(source)) => Err(GatewayError::Unavailable { upstream, source }),
            Ok(Ok(response)) => refused_over_http(upstream, response),
        }
    }
}

/// A response without `grpc-status` and with an HTTP status other than 200 is the upstream's
/// HTTP layer refusing the call (e.g. `431` for too large a header list): browsers could not
/// read it as a grpc-web error, so it becomes a gRPC status.
fn refused_over_http(
    upstream: &'static str,
    response: Response<Body>,
) -> Result<Response<Body>, GatewayError> {
    if response.status() == http::StatusCode::OK || response.headers().contains_key("grpc-status") {
        return Ok(response);
    }
    Err(GatewayError::UpstreamRefused {
        upstream,
        http_status: response.status().as_u16(),
    })
}

/// Copies the allowlisted headers; every `cookie` header (h2 splits them) becomes one `cookie`.
fn copy_allowed_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for name in &FORWARDED_HEADERS {
        for value in from.get_all(name) {
            to.append(name.clone(), value.clone());
        }
    }
    if let Some(cookie) = joined_cookie(from) {
        to.insert(header::COOKIE, cookie);
    }
}

/// All `cookie` headers joined with `; ` (RFC 9113 §8.2.3), or `None` when there are none.
pub(crate) fn joined_cookie(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(header::COOKIE).iter();
    let first = values.next()?;
    let rest: Vec<&HeaderValue> = values.collect();
    if rest.is_empty() {
        return Some(first.clone());
    }
    let mut joined = first.as_bytes().to_vec();
    for value in rest {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(value.as_bytes());
    }
    HeaderValue::from_bytes(&joined).ok()
}

fn error_response(error: GatewayError) -> Response<Body> {
    Status::from(error).into_http()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_allowlisted_headers_are_copied() {
        let mut from = HeaderMap::new();
        from.insert("content-type", HeaderValue::from_static("application/grpc"));
        from.insert("x-user-id", HeaderValue::from_static("someone-else"));
        from.insert("authorization", HeaderValue::from_static("Bearer x"));
        from.insert("x-request-id", HeaderValue::from_static("r1"));
        from.append("cookie", HeaderValue::from_static("a=1"));
        from.append("cookie", HeaderValue::from_static("b=2"));
        let mut to = HeaderMap::new();
        copy_allowed_headers(&from, &mut to);
        assert_eq!(to.len(), 3);
        assert_eq!(to["content-type"], "application/grpc");
        assert_eq!(to["x-request-id"], "r1");
        assert_eq!(to["cookie"], "a=1; b=2");
        assert!(to.get("x-user-id").is_none());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Header names a client might send: the allowlist, identity headers, `grpc-*`, random.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "content-type",
                "te",
                "grpc-timeout",
                "grpc-encoding",
                "traceparent",
                "x-request-id",
                "cookie",
                "x-user-id",
                "x-forwarded-user",
                "authorization",
                "grpc-status",
                "grpc-message",
                "grpc-status-details-bin",
                "x-forwarded-for",
                "host",
                "origin",
            ])
            .prop_map(String::from),
            "[a-z][a-z0-9-]{0,20}",
        ]
    }

    proptest! {
        #[test]
        fn only_allowlisted_headers_and_one_joined_cookie_go_upstream(
            headers in prop::collection::vec((name(), "[!-~]{0,30}"), 0..40),
        ) {
            let mut from = HeaderMap::new();
            for (name, value) in &headers {
                from.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            let mut to = HeaderMap::new();
            copy_allowed_headers(&from, &mut to);

            for name in to.keys() {
                prop_assert!(name == header::COOKIE || FORWARDED_HEADERS.contains(name), "{}", name);
            }
            for name in &FORWARDED_HEADERS {
                let sent: Vec<_> = from.get_all(name).iter().collect();
                let forwarded: Vec<_> = to.get_all(name).iter().collect();
                prop_assert_eq!(sent, forwarded);
            }
            let cookies: Vec<&[u8]> = from.get_all(header::COOKIE).iter().map(HeaderValue::as_bytes).collect();
            let forwarded: Vec<_> = to.get_all(header::COOKIE).iter().collect();
            if cookies.is_empty() {
                prop_assert!(forwarded.is_empty());
            } else {
                prop_assert_eq!(forwarded.len(), 1);
                let joined = cookies.join(&b"; "[..]);
                prop_assert_eq!(forwarded[0].as_bytes(), joined.as_slice());
            }
        }
    }
}
