//! The gateway's one entry point per request: applies the concurrency and body limits, then
//! sends gRPC/grpc-web (and CORS preflights) to the gRPC stack and everything else to the
//! HTTP routes (`/healthz`, the dashboard, `/api/auth/*`, static files).

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Instant};

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tokio::sync::Semaphore;
use tonic::body::Body;
use tower::{ServiceExt, util::BoxCloneSyncService};

use crate::{
    auth_proxy::{AuthProxy, loggable_path},
    grpc::{EarlyRefusal, is_grpc_route},
    limits::CappedBody,
    web::{Web, redirect, text},
};

/// The gRPC stack: CORS → grpc-web translation → `GrpcRouter`.
pub(crate) type GrpcStack = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// Shared by every connection.
pub(crate) struct Gateway {
    pub(crate) grpc: GrpcStack,
    pub(crate) web: Web,
    pub(crate) auth_proxy: AuthProxy,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) max_body_bytes: usize,
}

impl Gateway {
    /// Answers one request. Never fails: every error is a response.
    pub(crate) async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = loggable_path(req.uri().path()).into_owned();
        let grpc = is_grpc(&req);
        // Held until the response head is ready; refused at once rather than queued, so an
        // overloaded gateway answers fast instead of piling up work.
        let permit = self.permits.clone().try_acquire_owned().ok();
        let declared_too_large = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|len| len > self.max_body_bytes as u64);
        let (parts, body) = req.into_parts();
        let (body, cap) = CappedBody::new(body, self.max_body_bytes);
        let mut req = Request::from_parts(parts, Body::new(body));
        req.extensions_mut().insert(cap);

        let response = if grpc {
            if permit.is_none() {
                req.extensions_mut().insert(EarlyRefusal::Overloaded);
            } else if declared_too_large {
                req.extensions_mut().insert(EarlyRefusal::BodyTooLarge);
            }
            match self.grpc.clone().oneshot(req).await {
                Ok(response) => without_orphan_credentials(response),
                Err(never) => match never {},
            }
        } else if permit.is_none() {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "gateway overloaded, try again\n",
            )
        } else if declared_too_large {
            text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n")
        } else {
            self.route_http(peer, req).await
        };
        drop(permit);

        tracing::debug!(
            %method,
            path,
            status = response.status().as_u16(),
            grpc_status = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        response
    }

    async fn route_http(&self, peer: SocketAddr, req: Request<Body>) -> Response<Body> {
        let path = req.uri().path();
        if path.starts_with("/api/auth/") {
            return self.auth_proxy.forward(req, peer).await;
        }
        // A POST to a gRPC method without a gRPC content type (text/plain, JSON, none): the
        // method is right, the media type is not (gRPC over HTTP/2 spec: 415).
        if req.method() == Method::POST && is_grpc_route(path) {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "gRPC methods take application/grpc, application/grpc-web or \
                 application/grpc-web-text\n",
            );
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        match path {
            "/healthz" => text(StatusCode::OK, "ok"),
            "/" => redirect(StatusCode::FOUND, "/dashboard"),
            "/login" => self.web.login().await,
            // The page's file name leads to the same session check as its route.
            "/dashboard" | "/dashboard.html" => self.web.dashboard(req.headers()).await,
            _ => self.web.file(req).await,
        }
    }
}

/// tower-http states `access-control-allow-credentials` on every preflight; without an
/// `access-control-allow-origin` it grants nothing, so drop it rather than look like a grant.
fn without_orphan_credentials(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
    }
    response
}

/// gRPC and grpc-web requests by content type, plus every OPTIONS (CORS preflights).
fn is_grpc<B>(req: &Request<B>) -> bool {
    req.method() == Method::OPTIONS
        || req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"))
}
