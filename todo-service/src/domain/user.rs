//! Who a request runs as: the Better Auth user id, only ever taken from a validated session.

use std::fmt;

use super::Invalid;

/// A Better Auth user id. Opaque to us; bounded so it is safe to store and log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    const MAX_LEN: usize = 255;

    /// Accepts a non-empty id of at most 255 characters without control characters.
    pub fn parse(raw: impl Into<String>) -> Result<Self, Invalid> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(Invalid::new("user_id", "must not be empty"));
        }
        if raw.chars().count() > Self::MAX_LEN {
            return Err(Invalid::new("user_id", "must be at most 255 characters"));
        }
        if raw.chars().any(char::is_control) {
            return Err(Invalid::new(
                "user_id",
                "must not contain control characters",
            ));
        }
        Ok(Self(raw))
    }

    /// The id as stored and sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The caller of an RPC, as established by the session middleware. Handlers read it from the
/// request extensions; nothing else in a request can set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// The session's user.
    pub id: UserId,
    /// The user's email, as Better Auth reported it.
    pub email: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_rejects_empty_long_and_control_characters() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a".repeat(256)).is_err());
        assert!(UserId::parse("a\u{7}b").is_err());
        assert_eq!(
            UserId::parse("abc").map(|u| u.to_string()),
            Ok("abc".into())
        );
    }
}
