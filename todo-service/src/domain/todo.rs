//! A todo and the validated pieces a request is made of.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::{Invalid, UserId};

/// A todo's id: a UUIDv7 assigned by the service, so ids sort roughly by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TodoId(Uuid);

impl TodoId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the form the service sends (lowercase, hyphenated; `field` names the request
    /// field).
    pub fn parse(raw: &str, field: &'static str) -> Result<Self, Invalid> {
        if raw.is_empty() {
            return Err(Invalid::new(field, "must not be empty"));
        }
        // Only the exact form the service hands out (no uppercase, braces, URN or simple form),
        // so one todo has exactly one spelling on the wire and in SQL, and clients that compare
        // ids as strings never see one todo as two.
        match Uuid::try_parse(raw) {
            Ok(id) if id.hyphenated().to_string() == raw => Ok(Self(id)),
            _ => Err(Invalid::new(field, "must be a lowercase hyphenated UUID")),
        }
    }
}

impl fmt::Display for TodoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

/// A title: trimmed, 1 to 200 characters (Unicode scalar values), no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TodoTitle(String);

impl TodoTitle {
    /// The longest title, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Trims surrounding whitespace, then checks length and characters.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Invalid::new("title", "must not be empty"));
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::new("title", "must be at most 200 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(Invalid::new("title", "must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The title text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A description: up to 2000 characters. Line breaks and tabs are allowed, other control
/// characters are not (PostgreSQL cannot store NUL, and nothing else has a use here).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TodoDescription(String);

impl TodoDescription {
    /// The longest description, in characters.
    pub const MAX_CHARS: usize = 2000;

    /// Checks length and characters; the text is kept as sent.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::new(
                "description",
                "must be at most 2000 characters",
            ));
        }
        if raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(Invalid::new(
                "description",
                "must not contain control characters other than line breaks and tabs",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The description text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-chosen idempotency key for CreateTodo, unique per user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    const MAX_CHARS: usize = 128;

    /// Empty means "no key". Otherwise at most 128 characters, no control characters.
    pub fn parse(raw: &str) -> Result<Option<Self>, Invalid> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::new("request_id", "must be at most 128 characters"));
        }
        if raw.chars().any(char::is_control) {
            return Err(Invalid::new(
                "request_id",
                "must not contain control characters",
            ));
        }
        Ok(Some(Self(raw.to_owned())))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A point in time with microsecond precision, as stored in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self(micros)
    }

    /// From microseconds since the Unix epoch.
    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// Whole seconds and the nanoseconds within that second (always 0..1e9).
    pub fn seconds_and_nanos(self) -> (i64, i32) {
        let seconds = self.0.div_euclid(1_000_000);
        let nanos = i32::try_from(self.0.rem_euclid(1_000_000) * 1_000).unwrap_or(0);
        (seconds, nanos)
    }
}

/// A stored todo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Todo {
    /// Its id.
    pub id: TodoId,
    /// Its owner.
    pub user_id: UserId,
    /// Trimmed title.
    pub title: String,
    /// Description, possibly empty.
    pub description: String,
    /// Whether it is done.
    pub completed: bool,
    /// When it was created.
    pub create_time: Timestamp,
    /// When it last changed (equal to `create_time` until the first update).
    pub update_time: Timestamp,
}

/// What CreateTodo stores.
#[derive(Debug, Clone)]
pub struct NewTodo {
    /// The title.
    pub title: TodoTitle,
    /// The description.
    pub description: TodoDescription,
    /// The idempotency key, if the client sent one.
    pub request_id: Option<RequestId>,
}

/// What UpdateTodo changes: at least one field is set (checked by [`TodoChanges::new`]).
#[derive(Debug, Clone)]
pub struct TodoChanges {
    title: Option<TodoTitle>,
    description: Option<TodoDescription>,
    completed: Option<bool>,
}

impl TodoChanges {
    /// Rejects an update that changes nothing.
    pub fn new(
        title: Option<TodoTitle>,
        description: Option<TodoDescription>,
        completed: Option<bool>,
    ) -> Result<Self, Invalid> {
        if title.is_none() && description.is_none() && completed.is_none() {
            return Err(Invalid::new(
                "update",
                "set at least one of title, description, completed",
            ));
        }
        Ok(Self {
            title,
            description,
            completed,
        })
    }

    /// The new title, if it changes.
    pub fn title(&self) -> Option<&TodoTitle> {
        self.title.as_ref()
    }

    /// The new description, if it changes.
    pub fn description(&self) -> Option<&TodoDescription> {
        self.description.as_ref()
    }

    /// The new completion state, if it changes.
    pub fn completed(&self) -> Option<bool> {
        self.completed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_is_trimmed_and_counted_in_characters() {
        assert_eq!(
            TodoTitle::parse("  milk \t").map(|t| t.0),
            Ok("milk".into())
        );
        assert!(TodoTitle::parse("").is_err());
        assert!(TodoTitle::parse(" \t\n ").is_err());
        assert!(TodoTitle::parse(&"a".repeat(200)).is_ok());
        assert!(TodoTitle::parse(&"a".repeat(201)).is_err());
        assert!(TodoTitle::parse(&"😀".repeat(200)).is_ok());
        assert!(TodoTitle::parse(&"😀".repeat(201)).is_err());
        assert!(TodoTitle::parse("a\u{0}b").is_err());
        assert!(TodoTitle::parse("a\nb").is_err());
    }

    #[test]
    fn description_allows_line_breaks_but_not_other_control_characters() {
        assert!(TodoDescription::parse("").is_ok());
        assert!(TodoDescription::parse("a\nb\tc\r\n").is_ok());
        assert!(TodoDescription::parse("a\u{0}b").is_err());
        assert!(TodoDescription::parse(&"é".repeat(2000)).is_ok());
        assert!(TodoDescription::parse(&"é".repeat(2001)).is_err());
    }

    #[test]
    fn todo_id_accepts_only_the_hyphenated_form() {
        let id = TodoId::generate();
        assert_eq!(TodoId::parse(&id.to_string(), "id"), Ok(id));
        assert!(TodoId::parse(&id.to_string().to_uppercase(), "id").is_err());
        assert!(TodoId::parse(&format!("{{{id}}}"), "id").is_err());
        assert!(TodoId::parse(&format!("urn:uuid:{id}"), "id").is_err());
        assert!(TodoId::parse("", "id").is_err());
        assert!(TodoId::parse("nope", "id").is_err());
        assert!(TodoId::parse(&id.to_string().replace('-', ""), "id").is_err());
    }

    #[test]
    fn an_update_must_change_something() {
        assert!(TodoChanges::new(None, None, None).is_err());
        assert!(TodoChanges::new(None, None, Some(true)).is_ok());
    }

    #[test]
    fn timestamps_split_into_seconds_and_nanos() {
        assert_eq!(
            Timestamp::from_micros(1_500_000).seconds_and_nanos(),
            (1, 500_000_000)
        );
        assert_eq!(
            Timestamp::from_micros(-1).seconds_and_nanos(),
            (-1, 999_999_000)
        );
    }
}
