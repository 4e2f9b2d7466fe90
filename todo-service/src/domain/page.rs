//! Keyset pagination for ListTodos: a page size and an opaque token that remembers where the
//! previous page ended, bound to the caller and the filter it was issued for.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{Invalid, Timestamp, TodoId, UserId};

/// Which todos ListTodos returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TodoFilter {
    /// `Some(done)` keeps only todos with that completion state; `None` keeps all.
    pub completed: Option<bool>,
}

/// How many todos one page holds: 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u16);

impl PageSize {
    /// Used when the request says 0.
    pub const DEFAULT: u16 = 50;
    /// Larger requests are clamped to this.
    pub const MAX: u16 = 100;

    /// 0 means the default, above the maximum is clamped, negative is rejected.
    pub fn parse(raw: i32) -> Result<Self, Invalid> {
        match raw {
            n if n < 0 => Err(Invalid::new("page_size", "must not be negative")),
            0 => Ok(Self(Self::DEFAULT)),
            n => Ok(Self(u16::try_from(n).unwrap_or(Self::MAX).min(Self::MAX))),
        }
    }

    /// The number of todos per page.
    pub fn get(self) -> u16 {
        self.0
    }
}

/// The position after the last todo of a page, in listing order (creation time, then id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    owner: UserId,
    filter: TodoFilter,
    /// Creation time of the last todo on the previous page.
    pub after_time: Timestamp,
    /// Id of the last todo on the previous page (breaks ties between equal times).
    pub after_id: TodoId,
}

/// The wire form, before base64. Field names are short because the token travels in every call.
#[derive(Serialize, Deserialize)]
struct Wire {
    v: u8,
    u: String,
    c: Option<bool>,
    t: i64,
    i: String,
}

impl PageToken {
    /// A token for the page after `(after_time, after_id)`, valid only for `owner` and `filter`.
    pub fn new(owner: UserId, filter: TodoFilter, after_time: Timestamp, after_id: TodoId) -> Self {
        Self {
            owner,
            filter,
            after_time,
            after_id,
        }
    }

    /// Decodes a token from a request. Empty means the first page. A token issued to another
    /// user or for another filter is rejected, like a malformed one.
    pub fn parse(raw: &str, owner: &UserId, filter: TodoFilter) -> Result<Option<Self>, Invalid> {
        if raw.is_empty() {
            return Ok(None);
        }
        let invalid = || Invalid::new("page_token", "is not a token from a previous response");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if wire.v != 1 {
            return Err(invalid());
        }
        if wire.u != owner.as_str() {
            return Err(Invalid::new("page_token", "was issued to another user"));
        }
        if wire.c != filter.completed {
            return Err(Invalid::new("page_token", "was issued for another filter"));
        }
        let after_id = TodoId::parse(&wire.i, "page_token").map_err(|_| invalid())?;
        Ok(Some(Self {
            owner: owner.clone(),
            filter,
            after_time: Timestamp::from_micros(wire.t),
            after_id,
        }))
    }

    /// The opaque string sent to the client.
    pub fn encode(&self) -> String {
        let wire = Wire {
            v: 1,
            u: self.owner.as_str().to_owned(),
            c: self.filter.completed,
            t: self.after_time.micros(),
            i: self.after_id.to_string(),
        };
        // Serialising plain strings, integers and options cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("valid user id")
    }

    #[test]
    fn page_size_defaults_clamps_and_rejects_negatives() {
        assert_eq!(PageSize::parse(0).map(PageSize::get), Ok(50));
        assert_eq!(PageSize::parse(7).map(PageSize::get), Ok(7));
        assert_eq!(PageSize::parse(101).map(PageSize::get), Ok(100));
        assert_eq!(PageSize::parse(i32::MAX).map(PageSize::get), Ok(100));
        assert!(PageSize::parse(-1).is_err());
    }

    #[test]
    fn a_token_round_trips_only_for_its_owner_and_filter() {
        let alice = user("alice");
        let filter = TodoFilter {
            completed: Some(true),
        };
        let token = PageToken::new(
            alice.clone(),
            filter,
            Timestamp::from_micros(42),
            TodoId::generate(),
        );
        let encoded = token.encode();
        assert_eq!(PageToken::parse(&encoded, &alice, filter), Ok(Some(token)));
        assert!(PageToken::parse(&encoded, &user("bob"), filter).is_err());
        assert!(PageToken::parse(&encoded, &alice, TodoFilter::default()).is_err());
        assert!(PageToken::parse("garbage!", &alice, filter).is_err());
        assert_eq!(PageToken::parse("", &alice, filter), Ok(None));
    }
}
