//! Domain types that validate on construction: once a value exists it is known to be valid, so
//! `db/` and the handlers never re-check. Nothing here knows about protobuf or SQL.

mod page;
mod todo;
mod user;

pub use page::{PageSize, PageToken, TodoFilter};
pub use todo::{
    NewTodo, RequestId, Timestamp, Todo, TodoChanges, TodoDescription, TodoId, TodoTitle,
};
pub use user::{AuthenticatedUser, UserId};

/// Why a value was rejected, named after the request field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// The request field, as named in the proto (`title`, `page_token`, …).
    pub field: &'static str,
    /// A human-readable reason, safe to show to the caller.
    pub reason: String,
}

impl Invalid {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}
