//! `CodecErrorsLayer`: tonic's own refusals of a request body, re-issued with the codes the
//! contract names. tonic answers a request message that does not decode (a string field that is
//! not UTF-8, a wrong wire type) with INTERNAL and one over the size limit with OUT_OF_RANGE;
//! both are the caller's fault, so they become INVALID_ARGUMENT (with a `BadRequest` violation
//! naming the field) and RESOURCE_EXHAUSTED, like every other refusal of this service.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Code, Status};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::Error;

/// Prefix of prost's `DecodeError` text, which tonic sends as the INTERNAL message.
const DECODE_ERROR: &str = "failed to decode Protobuf message: ";
/// Prefix of tonic's message for a length prefix above `max_decoding_message_size`.
const TOO_LARGE: &str = "Error, decoded message length too large";

/// Wraps a tonic service whose request messages are at most `limit` bytes.
#[derive(Debug, Clone, Copy)]
pub struct CodecErrorsLayer {
    limit: usize,
}

impl CodecErrorsLayer {
    /// `limit` is the service's `max_decoding_message_size`, reported to callers it refuses.
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for CodecErrorsLayer {
    type Service = CodecErrors<S>;

    fn layer(&self, inner: S) -> CodecErrors<S> {
        CodecErrors {
            inner,
            limit: self.limit,
        }
    }
}

/// The service produced by [`CodecErrorsLayer`].
#[derive(Debug, Clone)]
pub struct CodecErrors<S> {
    inner: S,
    limit: usize,
}

impl<S: NamedService> NamedService for CodecErrors<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for CodecErrors<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let limit = self.limit;
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            // A refusal of the request body is always a trailers-only answer (the status in the
            // headers): tonic gives up before the handler runs and before any message is sent.
            let Some(status) = Status::from_header_map(response.headers()) else {
                return Ok(response);
            };
            let Some(error) = translate(&status, limit) else {
                return Ok(response);
            };
            let status = Status::from(error);
            tracing::info!(
                method,
                status = ?status.code(),
                detail = status.message(),
                "request message refused"
            );
            Ok(status.into_http())
        })
    }
}

/// The contract's error for a status tonic raised while decoding the request, if it is one.
fn translate(status: &Status, limit: usize) -> Option<Error> {
    match status.code() {
        Code::Internal => {
            let detail = status.message().strip_prefix(DECODE_ERROR)?;
            Some(Error::Malformed {
                field: field_path(detail),
                detail: detail.to_owned(),
            })
        }
        Code::OutOfRange if status.message().starts_with(TOO_LARGE) => {
            Some(Error::TooLarge { limit })
        }
        _ => None,
    }
}

/// The field a prost decode error names. Its text is `Msg.field: ` once per nesting level,
/// innermost first, then the description (`Msg.field: invalid string value: …`); the path is
/// the field names outermost first (`title`, or `outer.inner` for a nested message).
fn field_path(detail: &str) -> Option<String> {
    let mut fields = Vec::new();
    let mut rest = detail;
    while let Some((segment, tail)) = rest.split_once(": ") {
        let Some((message, field)) = segment.split_once('.') else {
            break;
        };
        let is_name =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_name(message) || !is_name(field) {
            break;
        }
        fields.push(field);
        rest = tail;
    }
    if fields.is_empty() {
        return None;
    }
    fields.reverse();
    Some(fields.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_path_comes_from_the_decode_error_stack() {
        assert_eq!(
            field_path("CreateTodoRequest.title: invalid string value: data is not UTF-8 encoded"),
            Some("title".to_owned())
        );
        assert_eq!(
            field_path("Inner.name: Outer.inner: invalid wire type: LengthDelimited"),
            Some("inner.name".to_owned())
        );
        assert_eq!(field_path("invalid varint"), None);
        assert_eq!(field_path("buffer underflow"), None);
    }

    #[test]
    fn decode_errors_become_invalid_argument_and_size_errors_resource_exhausted() {
        let decode = Status::internal(format!(
            "{DECODE_ERROR}CreateTodoRequest.title: invalid string value: data is not UTF-8 encoded"
        ));
        let translated = translate(&decode, 10).map(Status::from);
        assert_eq!(
            translated.as_ref().map(Status::code),
            Some(Code::InvalidArgument)
        );
        let too_large = Status::out_of_range(format!(
            "{TOO_LARGE}: found 99 bytes, the limit is: 10 bytes"
        ));
        let translated = translate(&too_large, 10).map(Status::from);
        assert_eq!(
            translated.as_ref().map(Status::code),
            Some(Code::ResourceExhausted)
        );
        // Anything else tonic or a handler says is left alone.
        assert!(translate(&Status::internal("internal error"), 10).is_none());
        assert!(translate(&Status::out_of_range("page"), 10).is_none());
        assert!(translate(&Status::not_found("todo not found"), 10).is_none());
    }
}
