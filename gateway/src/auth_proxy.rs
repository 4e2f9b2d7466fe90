//! `/api/auth/*` reverse proxy to Better Auth, so the browser sees one origin. Method, path and
//! query, body (size-limited) and end-to-end headers (Cookie, Origin, Content-Type, …) go up;
//! status, headers and every `Set-Cookie` come back. Better Auth runs its own Origin check on
//! the browser's `Origin`, so the gateway's origin must be in its trusted origins.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use tonic::body::Body;

use crate::{
    limits::BodyCap,
    origin::{OriginPolicy, request_host},
    web::text,
};

/// Hop-by-hop headers (RFC 9110 §7.6.1) and those the proxy sets itself: never copied.
const NOT_COPIED: [HeaderName; 12] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
    header::CONTENT_LENGTH,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("forwarded"),
];

/// The request path as it may be logged. Better Auth puts secrets in some paths
/// (`/api/auth/reset-password/<token>`), so below `/api/auth/` only the first segment is kept;
/// other paths (gRPC methods, pages, assets) carry none.
pub(crate) fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    let Some(rest) = path.strip_prefix("/api/auth/") else {
        return path.into();
    };
    match rest.split_once('/') {
        Some((first, _)) => format!("/api/auth/{first}/*").into(),
        None => path.into(),
    }
}

/// Forwards `/api/auth/*` to Better Auth with one shared reqwest client.
#[derive(Debug, Clone)]
pub(crate) struct AuthProxy {
    client: reqwest::Client,
    base_url: String,
    policy: OriginPolicy,
}

impl AuthProxy {
    pub(crate) fn new(client: reqwest::Client, base_url: &str, policy: OriginPolicy) -> Self {
        Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            policy,
        }
    }

    pub(crate) async fn forward(&self, req: Request<Body>, peer: SocketAddr) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let Some(path_and_query) = parts.uri.path_and_query() else {
            return text(StatusCode::BAD_REQUEST, "bad request path\n");
        };
        if parts.uri.path().split('/').any(|s| s == ".." || s == ".") {
            return text(StatusCode::BAD_REQUEST, "bad request path\n");
        }
        let cap = parts.extensions.get::<BodyCap>().cloned();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) if cap.is_some_and(|c| c.exceeded()) => {
                return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
            }
            Err(_) => return text(StatusCode::BAD_REQUEST, "could not read request body\n"),
        };

        let mut headers = HeaderMap::with_capacity(parts.headers.len() + 3);
        for (name, value) in &parts.headers {
            if !NOT_COPIED.contains(name) && !name.as_str().starts_with("x-forwarded-") {
                headers.append(name.clone(), value.clone());
            }
        }
        // The gateway is the edge: it states the client's address instead of appending to
        // whatever the client claimed (Better Auth rate-limits per X-Forwarded-For).
        if let Ok(ip) = HeaderValue::from_str(&peer.ip().to_string()) {
            headers.insert("x-forwarded-for", ip);
        }
        headers.insert(
            "x-forwarded-proto",
            HeaderValue::from_static(self.policy.scheme(&parts.headers)),
        );
        if let Some(host) =
            request_host(&parts.headers, &parts.uri).and_then(|h| HeaderValue::from_str(h).ok())
        {
            headers.insert("x-forwarded-host", host);
        }

        let url = format!("{}{}", self.base_url, path_and_query);
        let sent = self
            .client
            .request(parts.method, url)
            .headers(headers)
            .body(body)
            .send()
            .await;
        let upstream = match sent {
            Ok(upstream) => upstream,
            Err(error) => {
                // reqwest's error text includes the URL with its query, which can carry a
                // token (verify-email, reset-password): log the error without it.
                let timed_out = error.is_timeout();
                let error = error.without_url();
                tracing::warn!(path = %loggable_path(parts.uri.path()), %error, "Better Auth proxy call failed");
                return if timed_out {
                    text(
                        StatusCode::GATEWAY_TIMEOUT,
                        "sign-in service did not answer in time\n",
                    )
                } else {
                    text(StatusCode::BAD_GATEWAY, "sign-in service unavailable\n")
                };
            }
        };
        let status = upstream.status();
        let mut response_headers = HeaderMap::with_capacity(upstream.headers().len());
        for (name, value) in upstream.headers() {
            if !NOT_COPIED.contains(name) {
                response_headers.append(name.clone(), value.clone());
            }
        }
        let bytes: Bytes = match upstream.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => {
                let error = error.without_url();
                tracing::warn!(path = %loggable_path(parts.uri.path()), %error, "Better Auth response cut off");
                return text(StatusCode::BAD_GATEWAY, "sign-in service unavailable\n");
            }
        };
        let mut response = Response::new(Body::new(Full::new(bytes)));
        *response.status_mut() = status;
        *response.headers_mut() = response_headers;
        response
    }
}

#[cfg(test)]
mod properties {
    use super::loggable_path;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn nothing_after_the_first_segment_below_api_auth_is_logged(
            first in "[a-z-]{1,20}", secret in "[A-Za-z0-9]{8,40}", rest in "(/[A-Za-z0-9]{0,10}){0,3}",
        ) {
            let path = format!("/api/auth/{first}/{secret}{rest}");
            let logged = loggable_path(&path);
            prop_assert!(!logged.contains(&secret));
            prop_assert_eq!(logged.as_ref(), format!("/api/auth/{first}/*"));
        }

        #[test]
        fn other_paths_are_logged_as_they_are(path in "/[a-zA-Z0-9./_-]{0,60}") {
            prop_assume!(!path.starts_with("/api/auth/"));
            let logged = loggable_path(&path);
            prop_assert_eq!(logged.as_ref(), path.as_str());
        }
    }
}
