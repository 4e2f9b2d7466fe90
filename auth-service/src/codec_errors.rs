//! tonic's own refusals of a request message, re-issued with the contract's codes: a message
//! that does not decode (tonic: INTERNAL) is INVALID_ARGUMENT `MALFORMED_REQUEST`, and one over
//! the decode limit (tonic: OUT_OF_RANGE) is RESOURCE_EXHAUSTED `MESSAGE_TOO_LARGE`. Both are the
//! caller's fault; INTERNAL is kept for a Better Auth that answers nonsense.
//!
//! The same translation as the todo-service's `CodecErrorsLayer`, with this service's errors.

use tonic::{Code, Status, body::Body};

use crate::error::Error;

/// Prefix of prost's `DecodeError` text, which tonic sends as the INTERNAL message.
const DECODE_ERROR: &str = "failed to decode Protobuf message: ";
/// Prefix of tonic's message for a length prefix above `max_decoding_message_size`.
const TOO_LARGE: &str = "Error, decoded message length too large";

/// Rewrites a trailers-only refusal by tonic's codec (tonic gives up before the handler runs,
/// so the status is in the headers); every other response passes unchanged. For
/// `tower::util::MapResponseLayer`.
pub fn translate_refusal(
    limit: usize,
) -> impl Fn(http::Response<Body>) -> http::Response<Body> + Clone {
    move |response| {
        let Some(error) = Status::from_header_map(response.headers())
            .and_then(|status| translate(&status, limit))
        else {
            return response;
        };
        tracing::info!(reason = error.reason(), "request message refused");
        Status::from(error).into_http()
    }
}

fn translate(status: &Status, limit: usize) -> Option<Error> {
    match status.code() {
        Code::Internal => status
            .message()
            .strip_prefix(DECODE_ERROR)
            .map(|detail| Error::MalformedRequest(detail.to_owned())),
        Code::OutOfRange if status.message().starts_with(TOO_LARGE) => {
            Some(Error::MessageTooLarge { limit })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_refusals_get_the_contract_codes_and_nothing_else_changes() {
        let decode = Status::internal(format!(
            "{DECODE_ERROR}ValidateSessionRequest.cookie: invalid string value: data is not UTF-8 encoded"
        ));
        let too_large = Status::out_of_range(format!(
            "{TOO_LARGE}: found 99 bytes, the limit is: 10 bytes"
        ));
        let code = |status: &Status| translate(status, 10).map(|error| error.code());
        assert_eq!(code(&decode), Some(Code::InvalidArgument));
        assert_eq!(code(&too_large), Some(Code::ResourceExhausted));
        assert_eq!(code(&Status::internal("internal error")), None);
        assert_eq!(code(&Status::out_of_range("page")), None);
        assert_eq!(code(&Status::unavailable("down")), None);

        let ok = http::Response::new(Body::empty());
        assert!(
            translate_refusal(10)(ok)
                .headers()
                .get("grpc-status")
                .is_none()
        );
        let refused = translate_refusal(10)(too_large.into_http());
        assert_eq!(refused.headers()["grpc-status"], "8");
    }
}
