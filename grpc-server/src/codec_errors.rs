//! `CodecErrorsLayer`: tonic's own refusals of a request message, re-issued with the codes the
//! contract names. tonic answers a message that does not decode (a string field that is not
//! UTF-8, a wrong wire type) with INTERNAL and one over the size limit with OUT_OF_RANGE; both
//! are the caller's fault. The layer recognises them as a [`CodecRefusal`] and lets the
//! service's own error type say the status (INVALID_ARGUMENT `MALFORMED_REQUEST`,
//! RESOURCE_EXHAUSTED `MESSAGE_TOO_LARGE`), so that type stays the one place mapping errors.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;
use tower_layer::Layer;
use tower_service::Service;

/// Prefix of prost's `DecodeError` text, which tonic sends as the INTERNAL message.
const DECODE_ERROR: &str = "failed to decode Protobuf message: ";
/// Prefix of tonic's message for a length prefix above `max_decoding_message_size`.
const TOO_LARGE: &str = "Error, decoded message length too large";

/// A request message tonic refused before any handler ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecRefusal {
    /// The message does not decode as the method's request type.
    Malformed {
        /// The request field the decoder stopped at (`title`, `outer.inner`), when it says.
        field: Option<String>,
        /// The decoder's description (field names and what is wrong, never field values).
        detail: String,
    },
    /// The message is larger than the server decodes.
    TooLarge {
        /// The server's `max_decoding_message_size`, in bytes.
        limit: usize,
    },
}

impl CodecRefusal {
    /// The refusal `status` reports, if tonic raised it while decoding a request message of at
    /// most `limit` bytes; `None` for every other status (a handler's, or broken gRPC framing).
    pub fn from_status(status: &Status, limit: usize) -> Option<Self> {
        match status.code() {
            Code::Internal => {
                let detail = status.message().strip_prefix(DECODE_ERROR)?;
                Some(Self::Malformed {
                    field: field_path(detail),
                    detail: detail.to_owned(),
                })
            }
            Code::OutOfRange if status.message().starts_with(TOO_LARGE) => {
                Some(Self::TooLarge { limit })
            }
            _ => None,
        }
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

/// Wraps a tonic service (or a whole `Server`'s routes) whose request messages are at most
/// `limit` bytes; refusals become `Status::from(E::from(refusal))`.
pub struct CodecErrorsLayer<E> {
    limit: usize,
    error: PhantomData<fn() -> E>,
}

impl<E> CodecErrorsLayer<E>
where
    E: From<CodecRefusal>,
    Status: From<E>,
{
    /// `limit` is the service's `max_decoding_message_size`, reported to callers it refuses.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            error: PhantomData,
        }
    }
}

impl<E> Clone for CodecErrorsLayer<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for CodecErrorsLayer<E> {}

impl<E> fmt::Debug for CodecErrorsLayer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecErrorsLayer")
            .field("limit", &self.limit)
            .finish()
    }
}

impl<S, E> Layer<S> for CodecErrorsLayer<E> {
    type Service = CodecErrors<S, E>;

    fn layer(&self, inner: S) -> CodecErrors<S, E> {
        CodecErrors {
            inner,
            limit: self.limit,
            error: PhantomData,
        }
    }
}

/// The service produced by [`CodecErrorsLayer`].
pub struct CodecErrors<S, E> {
    inner: S,
    limit: usize,
    error: PhantomData<fn() -> E>,
}

impl<S: Clone, E> Clone for CodecErrors<S, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limit: self.limit,
            error: PhantomData,
        }
    }
}

impl<S: fmt::Debug, E> fmt::Debug for CodecErrors<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecErrors")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<S: NamedService, E> NamedService for CodecErrors<S, E> {
    const NAME: &'static str = S::NAME;
}

impl<S, E> Service<http::Request<Body>> for CodecErrors<S, E>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    E: From<CodecRefusal>,
    Status: From<E>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let limit = self.limit;
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(translate::<E>(response, limit, &method))
        })
    }
}

/// `response`, or the contract's answer when it is a codec refusal. A refusal of the request
/// body is always trailers-only (the status in the headers): tonic gives up before the handler
/// runs and before any message is sent.
fn translate<E>(response: http::Response<Body>, limit: usize, method: &str) -> http::Response<Body>
where
    E: From<CodecRefusal>,
    Status: From<E>,
{
    let Some(refusal) = Status::from_header_map(response.headers())
        .and_then(|status| CodecRefusal::from_status(&status, limit))
    else {
        return response;
    };
    let status = Status::from(E::from(refusal));
    let reason = status.get_details_error_info().map(|info| info.reason);
    tracing::info!(
        method,
        status = ?status.code(),
        reason,
        detail = status.message(),
        "request message refused"
    );
    status.into_http()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tonic_types::ErrorDetails;
    use tower::{ServiceExt as _, service_fn};

    use super::*;

    /// A service error as the services write theirs.
    struct TestError(CodecRefusal);

    impl From<CodecRefusal> for TestError {
        fn from(refusal: CodecRefusal) -> Self {
            Self(refusal)
        }
    }

    impl From<TestError> for Status {
        fn from(TestError(refusal): TestError) -> Self {
            match refusal {
                CodecRefusal::Malformed { detail, .. } => Status::with_error_details(
                    Code::InvalidArgument,
                    detail,
                    ErrorDetails::with_error_info("MALFORMED_REQUEST", "test.v1", []),
                ),
                CodecRefusal::TooLarge { limit } => Status::with_error_details(
                    Code::ResourceExhausted,
                    format!("over {limit} bytes"),
                    ErrorDetails::with_error_info("MESSAGE_TOO_LARGE", "test.v1", []),
                ),
            }
        }
    }

    fn decode_error() -> Status {
        Status::internal(format!(
            "{DECODE_ERROR}CreateTodoRequest.title: invalid string value: data is not UTF-8 encoded"
        ))
    }

    fn too_large() -> Status {
        Status::out_of_range(format!(
            "{TOO_LARGE}: found 99 bytes, the limit is: 10 bytes"
        ))
    }

    /// What a service answering `response` looks like behind the layer.
    async fn through_layer(response: http::Response<Body>) -> http::Response<Body> {
        let mut response = Some(response);
        let inner = service_fn(move |_request: http::Request<Body>| {
            let response = response.take().unwrap_or_default();
            async move { Ok::<_, Infallible>(response) }
        });
        CodecErrorsLayer::<TestError>::new(10)
            .layer(inner)
            .oneshot(http::Request::new(Body::empty()))
            .await
            .unwrap_or_else(|never| match never {})
    }

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
    fn decode_and_size_errors_are_refusals_and_nothing_else_is() {
        assert_eq!(
            CodecRefusal::from_status(&decode_error(), 10),
            Some(CodecRefusal::Malformed {
                field: Some("title".to_owned()),
                detail: "CreateTodoRequest.title: invalid string value: data is not UTF-8 encoded"
                    .to_owned(),
            })
        );
        assert_eq!(
            CodecRefusal::from_status(&too_large(), 10),
            Some(CodecRefusal::TooLarge { limit: 10 })
        );
        // Anything else tonic or a handler says is left alone.
        for other in [
            Status::internal("internal error"),
            Status::out_of_range("page"),
            Status::not_found("todo not found"),
            Status::unavailable("down"),
        ] {
            assert_eq!(CodecRefusal::from_status(&other, 10), None, "{other:?}");
        }
    }

    #[tokio::test]
    async fn the_layer_answers_refusals_with_the_service_error_status() {
        let decode = through_layer(decode_error().into_http()).await;
        assert_eq!(decode.headers()["grpc-status"], "3");
        let status = Status::from_header_map(decode.headers()).expect("a status");
        assert_eq!(
            status.get_details_error_info().map(|info| info.reason),
            Some("MALFORMED_REQUEST".to_owned())
        );

        let large = through_layer(too_large().into_http()).await;
        assert_eq!(large.headers()["grpc-status"], "8");
        let status = Status::from_header_map(large.headers()).expect("a status");
        assert_eq!(status.message(), "over 10 bytes");
    }

    #[tokio::test]
    async fn the_layer_passes_every_other_response_unchanged() {
        let ok = through_layer(http::Response::new(Body::empty())).await;
        assert!(ok.headers().get("grpc-status").is_none());

        let internal = through_layer(Status::internal("internal error").into_http()).await;
        assert_eq!(internal.headers()["grpc-status"], "13");
        let status = Status::from_header_map(internal.headers()).expect("a status");
        assert_eq!(status.message(), "internal error");
    }
}
