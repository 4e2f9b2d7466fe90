//! The gateway's own refusals and failures, and the one place that turns them into gRPC statuses
//! (with a `google.rpc.ErrorInfo` whose domain is `gateway`). Errors from upstream services are
//! passed through untouched and never go through here.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every error the gateway itself raises.
const DOMAIN: &str = "gateway";

/// Something the gateway refuses or cannot do, named for what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A cookie-carrying request from an origin that is not allowed (CSRF protection).
    #[error("origin not allowed to send credentials")]
    OriginNotAllowed,
    /// No upstream serves this gRPC path.
    #[error("unknown gRPC service or method: {path}")]
    UnknownMethod {
        /// The request path.
        path: String,
    },
    /// The request body is larger than the configured limit.
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request body could not be read as gRPC (e.g. invalid base64 in grpc-web text mode).
    #[error("malformed request body")]
    MalformedRequest,
    /// The upstream refused the call at the HTTP level, without a gRPC status (e.g. `431` for a
    /// header list larger than it accepts).
    #[error("{upstream} refused the request (HTTP {http_status})")]
    UpstreamRefused {
        /// Which upstream.
        upstream: &'static str,
        /// The HTTP status it answered.
        http_status: u16,
    },
    /// The gateway is at its concurrency limit.
    #[error("gateway overloaded, try again")]
    Overloaded,
    /// The upstream did not answer within the request timeout.
    #[error("{upstream} did not answer in time")]
    Timeout {
        /// Which upstream.
        upstream: &'static str,
    },
    /// The upstream could not be reached.
    #[error("{upstream} unavailable")]
    Unavailable {
        /// Which upstream.
        upstream: &'static str,
        /// The transport error (logged, never sent to the client).
        source: tonic::transport::Error,
    },
}

impl GatewayError {
    fn parts(&self) -> (Code, &'static str) {
        match self {
            Self::OriginNotAllowed => (Code::PermissionDenied, "ORIGIN_NOT_ALLOWED"),
            Self::UnknownMethod { .. } => (Code::Unimplemented, "UNKNOWN_METHOD"),
            Self::BodyTooLarge { .. } => (Code::ResourceExhausted, "REQUEST_TOO_LARGE"),
            Self::MalformedRequest => (Code::Internal, "MALFORMED_REQUEST"),
            // The mapping gRPC clients apply to an HTTP status without `grpc-status`
            // (grpc/doc/http-grpc-status-mapping.md), with "too large" made explicit.
            Self::UpstreamRefused { http_status, .. } => match http_status {
                413 | 431 => (Code::ResourceExhausted, "UPSTREAM_REFUSED"),
                400 => (Code::Internal, "UPSTREAM_REFUSED"),
                401 => (Code::Unauthenticated, "UPSTREAM_REFUSED"),
                403 => (Code::PermissionDenied, "UPSTREAM_REFUSED"),
                404 => (Code::Unimplemented, "UPSTREAM_REFUSED"),
                429 | 502 | 503 | 504 => (Code::Unavailable, "UPSTREAM_REFUSED"),
                _ => (Code::Unknown, "UPSTREAM_REFUSED"),
            },
            Self::Overloaded => (Code::Unavailable, "GATEWAY_OVERLOADED"),
            Self::Timeout { .. } => (Code::DeadlineExceeded, "UPSTREAM_TIMEOUT"),
            Self::Unavailable { .. } => (Code::Unavailable, "UPSTREAM_UNAVAILABLE"),
        }
    }
}

/// An error and its sources on one line (`transport error: …: …`).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<GatewayError> for Status {
    fn from(error: GatewayError) -> Self {
        let (code, reason) = error.parts();
        match &error {
            GatewayError::Unavailable { upstream, source } => {
                tracing::warn!(upstream, error = %chain(source), reason, "upstream call failed");
            }
            GatewayError::UpstreamRefused { .. } => {
                tracing::warn!(reason, error = %error, "upstream refused the call over HTTP");
            }
            other => tracing::info!(reason, error = %other, "request refused"),
        }
        Status::with_error_details(
            code,
            error.to_string(),
            ErrorDetails::with_error_info(reason, DOMAIN, []),
        )
    }
}
