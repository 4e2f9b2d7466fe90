//! The auth-service's one error type and its one mapping to `tonic::Status` (code, message a
//! person can act on, `google.rpc.ErrorInfo`, and Better Auth's `Set-Cookie`s as metadata).

use std::collections::HashMap;

use grpc_server::CodecRefusal;
use tonic::{Code, Status, metadata::MetadataMap};
use tonic_types::{ErrorDetails, StatusExt};

use crate::cookie::CookieError;

/// `google.rpc.ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "auth.v1";

/// Why a session could not be validated, named for what the caller can do about it.
/// Messages never contain cookies, tokens or `Set-Cookie` values.
/// `Clone`, so that one Better Auth answer can be given to every caller that shared the call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No Better Auth cookie in the request: sign in.
    #[error("no Better Auth session cookie in the request; sign in first")]
    SessionMissing,

    /// Better Auth does not know the session (expired, revoked, tampered, unknown): sign in again.
    /// Carries the `Set-Cookie`s Better Auth sent (usually clearing ones) for the browser.
    #[error(
        "the Better Auth session is not valid (expired, signed out, revoked or tampered); sign in again"
    )]
    SessionInvalid {
        /// `Set-Cookie` header values from Better Auth.
        set_cookie: Vec<String>,
    },

    /// The request's cookie header cannot be used: fix the request.
    #[error("{0}")]
    InvalidCookie(#[from] CookieError),

    /// The request message does not decode (e.g. a `cookie` that is not UTF-8): fix the client.
    #[error("the request message is not a valid ValidateSessionRequest: {0}")]
    MalformedRequest(String),

    /// The request message is larger than the server decodes: send a smaller one.
    #[error("the request message is larger than the {limit} bytes this server accepts")]
    MessageTooLarge {
        /// The server's `max_decoding_message_size`.
        limit: usize,
    },

    /// Better Auth could not be asked (down, slow, overloaded): retry later; fail closed.
    #[error("{0}")]
    ProviderUnavailable(String),

    /// Better Auth answered something this service does not understand: a deployment problem
    /// (wrong URL, incompatible version); fail closed.
    #[error("{0}")]
    ProviderBadResponse(String),
}

/// tonic's refusals of a request message (see `grpc_server::CodecErrorsLayer`). The decoder's
/// field path is not needed: `cookie` is the message's only field.
impl From<CodecRefusal> for Error {
    fn from(refusal: CodecRefusal) -> Self {
        match refusal {
            CodecRefusal::Malformed { detail, .. } => Error::MalformedRequest(detail),
            CodecRefusal::TooLarge { limit } => Error::MessageTooLarge { limit },
        }
    }
}

impl Error {
    /// The `google.rpc.ErrorInfo.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::SessionMissing => "SESSION_MISSING",
            Error::SessionInvalid { .. } => "SESSION_INVALID",
            Error::InvalidCookie(CookieError::TooLarge { .. }) => "COOKIE_TOO_LARGE",
            Error::InvalidCookie(CookieError::NotAHeaderValue) => "COOKIE_MALFORMED",
            Error::MalformedRequest(_) => "MALFORMED_REQUEST",
            Error::MessageTooLarge { .. } => "MESSAGE_TOO_LARGE",
            Error::ProviderUnavailable(_) => "AUTH_PROVIDER_UNAVAILABLE",
            Error::ProviderBadResponse(_) => "AUTH_PROVIDER_BAD_RESPONSE",
        }
    }

    /// The gRPC status code.
    pub fn code(&self) -> Code {
        match self {
            Error::SessionMissing | Error::SessionInvalid { .. } => Code::Unauthenticated,
            Error::InvalidCookie(_) | Error::MalformedRequest(_) => Code::InvalidArgument,
            Error::MessageTooLarge { .. } => Code::ResourceExhausted,
            Error::ProviderUnavailable(_) => Code::Unavailable,
            Error::ProviderBadResponse(_) => Code::Internal,
        }
    }
}

/// The single place errors become statuses. Logging happens once, in the handler, where the
/// latency is known.
impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let mut details =
            ErrorDetails::with_error_info(error.reason(), ERROR_DOMAIN, HashMap::new());
        match &error {
            Error::InvalidCookie(cookie_error) => {
                details.add_bad_request_violation("cookie", cookie_error.to_string());
            }
            // `cookie` is the message's only field, so it is the one that did not decode.
            Error::MalformedRequest(detail) => {
                details.add_bad_request_violation("cookie", detail.clone());
            }
            _ => {}
        }
        let mut metadata = MetadataMap::new();
        if let Error::SessionInvalid { set_cookie } = &error {
            crate::service::append_set_cookies(&mut metadata, set_cookie);
        }
        Status::with_error_details_and_metadata(error.code(), error.to_string(), details, metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_carries_its_error_info() {
        let cases = [
            (
                Error::SessionMissing,
                Code::Unauthenticated,
                "SESSION_MISSING",
            ),
            (
                Error::SessionInvalid { set_cookie: vec![] },
                Code::Unauthenticated,
                "SESSION_INVALID",
            ),
            (
                Error::InvalidCookie(CookieError::TooLarge { len: 9000 }),
                Code::InvalidArgument,
                "COOKIE_TOO_LARGE",
            ),
            (
                Error::MalformedRequest("invalid string value".into()),
                Code::InvalidArgument,
                "MALFORMED_REQUEST",
            ),
            (
                Error::MessageTooLarge { limit: 10 },
                Code::ResourceExhausted,
                "MESSAGE_TOO_LARGE",
            ),
            (
                Error::ProviderUnavailable("down".into()),
                Code::Unavailable,
                "AUTH_PROVIDER_UNAVAILABLE",
            ),
            (
                Error::ProviderBadResponse("odd".into()),
                Code::Internal,
                "AUTH_PROVIDER_BAD_RESPONSE",
            ),
        ];
        for (error, code, reason) in cases {
            let status = Status::from(error);
            assert_eq!(status.code(), code);
            let info = status.get_details_error_info().expect("error info");
            assert_eq!(info.reason, reason);
            assert_eq!(info.domain, ERROR_DOMAIN);
        }
    }

    #[test]
    fn codec_refusals_get_the_contract_codes() {
        let malformed = Error::from(CodecRefusal::Malformed {
            field: None,
            detail:
                "ValidateSessionRequest.cookie: invalid string value: data is not UTF-8 encoded"
                    .to_owned(),
        });
        assert_eq!(malformed.code(), Code::InvalidArgument);
        assert_eq!(malformed.reason(), "MALFORMED_REQUEST");
        let too_large = Error::from(CodecRefusal::TooLarge { limit: 10 });
        assert_eq!(too_large.code(), Code::ResourceExhausted);
        assert_eq!(too_large.reason(), "MESSAGE_TOO_LARGE");
    }

    #[test]
    fn an_invalid_session_carries_its_set_cookies_as_metadata() {
        let status = Status::from(Error::SessionInvalid {
            set_cookie: vec![
                "better-auth.session_token=; Max-Age=0; Path=/".into(),
                "better-auth.dont_remember=; Max-Age=0; Path=/".into(),
            ],
        });
        let values: Vec<_> = status
            .metadata()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect();
        assert_eq!(values.len(), 2);
        assert!(values[0].starts_with("better-auth.session_token=;"));
    }
}
