//! The service's one error type, and the one place it becomes a gRPC status.

use diesel::result::DatabaseErrorKind;
use grpc_server::CodecRefusal;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::domain::Invalid;

/// `google.rpc.ErrorInfo.domain` of the errors this service raises.
pub const ERROR_DOMAIN: &str = "todo.v1.TodoService";

/// Everything that can go wrong in an RPC, named for what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: fix the named field.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The request field.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The request body is not a valid protobuf message for the method (a string field that is
    /// not UTF-8, a truncated field, a wrong wire type): fix the client.
    #[error("malformed request message: {detail}")]
    Malformed {
        /// The request field the decoder stopped at, when it knows it.
        field: Option<String>,
        /// The decoder's description (field names and what is wrong, never field values).
        detail: String,
    },
    /// The request message is larger than the service accepts.
    #[error("the request message is larger than {limit} bytes")]
    TooLarge {
        /// The largest accepted message, in bytes.
        limit: usize,
    },
    /// The request names a user other than the caller.
    #[error("the request names another user")]
    PermissionDenied,
    /// No such todo for the caller (whether or not another user has one).
    #[error("todo not found")]
    NotFound,
    /// The database cannot be reached or is overloaded: retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The auth-service cannot be reached: retry later.
    #[error("auth service unavailable: {0}")]
    AuthUnavailable(String),
    /// The caller's deadline passed while we waited.
    #[error("deadline exceeded while {0}")]
    DeadlineExceeded(&'static str),
    /// A bug or an impossible state; logged, the caller sees a plain INTERNAL.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<Invalid> for Error {
    fn from(invalid: Invalid) -> Self {
        Self::Invalid {
            field: invalid.field,
            reason: invalid.reason,
        }
    }
}

/// tonic's refusals of a request message (see `grpc_server::CodecErrorsLayer`): bad input.
impl From<CodecRefusal> for Error {
    fn from(refusal: CodecRefusal) -> Self {
        match refusal {
            CodecRefusal::Malformed { field, detail } => Self::Malformed { field, detail },
            CodecRefusal::TooLarge { limit } => Self::TooLarge { limit },
        }
    }
}

impl From<diesel::result::Error> for Error {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::Error as E;
        match &error {
            E::DatabaseError(
                DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::SerializationFailure
                | DatabaseErrorKind::ReadOnlyTransaction,
                _,
            ) => Self::Unavailable(error.to_string()),
            E::DatabaseError(_, info) if is_transient(info.message()) => {
                Self::Unavailable(error.to_string())
            }
            _ => Self::Unexpected(anyhow::Error::new(error).context("database query failed")),
        }
    }
}

/// Messages of errors that mean "the database is busy or going away" rather than a bug.
fn is_transient(message: &str) -> bool {
    const TRANSIENT: [&str; 6] = [
        "database is locked",
        "database is busy",
        "terminating connection",
        "the database system is",
        "connection",
        "too many clients",
    ];
    let message = message.to_ascii_lowercase();
    TRANSIENT.iter().any(|t| message.contains(t))
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for Error {
    fn from(error: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        // Every pool failure (connect refused, handshake, timeout, closed pool) is an outage
        // from the caller's point of view.
        Self::Unavailable(error.to_string())
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid { field, reason } => Status::with_error_details(
                Code::InvalidArgument,
                format!("invalid {field}: {reason}"),
                ErrorDetails::with_bad_request_violation(field, reason),
            ),
            Error::Malformed { field, detail } => {
                let mut details =
                    ErrorDetails::with_error_info("MALFORMED_REQUEST", ERROR_DOMAIN, []);
                if let Some(field) = field {
                    details.add_bad_request_violation(field, detail.clone());
                }
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("malformed request message: {detail}"),
                    details,
                )
            }
            Error::TooLarge { limit } => Status::with_error_details(
                Code::ResourceExhausted,
                format!("the request message is larger than {limit} bytes"),
                ErrorDetails::with_error_info(
                    "MESSAGE_TOO_LARGE",
                    ERROR_DOMAIN,
                    [("limit_bytes".to_owned(), limit.to_string())],
                ),
            ),
            Error::PermissionDenied => Status::with_error_details(
                Code::PermissionDenied,
                "user_id must be empty or the caller's own id",
                ErrorDetails::with_error_info("USER_MISMATCH", ERROR_DOMAIN, []),
            ),
            Error::NotFound => Status::with_error_details(
                Code::NotFound,
                "todo not found",
                ErrorDetails::with_error_info("TODO_NOT_FOUND", ERROR_DOMAIN, []),
            ),
            Error::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                Status::with_error_details(
                    Code::Unavailable,
                    "the todo database is unavailable, retry later",
                    ErrorDetails::with_error_info("DATABASE_UNAVAILABLE", ERROR_DOMAIN, []),
                )
            }
            Error::AuthUnavailable(reason) => {
                tracing::warn!(%reason, "auth service unavailable");
                Status::with_error_details(
                    Code::Unavailable,
                    "the auth service is unavailable, retry later",
                    ErrorDetails::with_error_info("AUTH_SERVICE_UNAVAILABLE", ERROR_DOMAIN, []),
                )
            }
            Error::DeadlineExceeded(what) => {
                Status::deadline_exceeded(format!("deadline exceeded while {what}"))
            }
            Error::Unexpected(error) => {
                tracing::error!(error = format!("{error:#}"), "unexpected error");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_carries_a_bad_request_violation_for_the_field() {
        let status = Status::from(Error::Invalid {
            field: "title",
            reason: "must not be empty".into(),
        });
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let violations = details.bad_request().map(|b| b.field_violations.clone());
        assert_eq!(
            violations.map(|v| v[0].field.clone()),
            Some("title".to_owned())
        );
    }

    #[test]
    fn decode_errors_become_invalid_argument_and_size_errors_resource_exhausted() {
        let status = Status::from(Error::from(CodecRefusal::Malformed {
            field: Some("title".to_owned()),
            detail: "CreateTodoRequest.title: invalid string value: data is not UTF-8 encoded"
                .to_owned(),
        }));
        assert_eq!(status.code(), Code::InvalidArgument);
        let violations = status.get_details_bad_request().map(|b| b.field_violations);
        assert_eq!(
            violations.map(|v| v[0].field.clone()),
            Some("title".to_owned())
        );
        let status = Status::from(Error::from(CodecRefusal::TooLarge { limit: 10 }));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("10"), "{}", status.message());
    }

    #[test]
    fn unexpected_errors_hide_their_details() {
        let status = Status::from(Error::Unexpected(anyhow::anyhow!("secret detail")));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }
}
