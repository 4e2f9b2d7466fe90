//! The Better Auth cookie filter: from a caller's `Cookie` header, keep only Better Auth's own
//! cookies (`SessionCookie`), so nothing else a browser holds ever reaches Better Auth.

use std::fmt;

use reqwest::header::HeaderValue;

/// The largest `Cookie` header accepted (bytes); larger ones are rejected before any parsing.
pub const MAX_COOKIE_HEADER_BYTES: usize = 8 * 1024;

/// Why a `Cookie` header could not be used. Never carries the cookie itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// The header is longer than [`MAX_COOKIE_HEADER_BYTES`].
    #[error(
        "the cookie header is {len} bytes, more than the {MAX_COOKIE_HEADER_BYTES} bytes allowed"
    )]
    TooLarge {
        /// The header's length in bytes.
        len: usize,
    },
    /// A Better Auth cookie (or the cookie metadata) holds characters an HTTP header cannot carry.
    #[error(
        "the cookie header contains characters not allowed in an HTTP header \
         (control characters such as CR, LF or NUL, or non-ASCII in metadata)"
    )]
    NotAHeaderValue,
}

/// The Better Auth cookies of one request, joined with `"; "` in their original order, ready to
/// send as a `Cookie` header. `Debug` is redacted: the value is a credential. Equal values are
/// the same check at Better Auth, which is what request coalescing keys on.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionCookie(HeaderValue);

impl SessionCookie {
    /// The header value to forward to Better Auth.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    /// The forwarded text; for tests and the stub server's assertions, never for logs.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionCookie(<redacted>)")
    }
}

/// Recognises Better Auth's cookie names for one prefix: `<prefix>.*`, `__Secure-<prefix>.*` and
/// `__Host-<prefix>.*`. Built once at startup.
#[derive(Debug, Clone)]
pub struct SessionCookieFilter {
    plain: String,
    secure: String,
    host: String,
}

impl SessionCookieFilter {
    /// A filter for Better Auth's `advanced.cookiePrefix` (`better-auth` by default).
    pub fn new(prefix: &str) -> Self {
        Self {
            plain: format!("{prefix}."),
            secure: format!("__Secure-{prefix}."),
            host: format!("__Host-{prefix}."),
        }
    }

    fn is_better_auth_cookie(&self, name: &str) -> bool {
        name.len() > self.plain.len() && name.starts_with(&self.plain)
            || name.len() > self.secure.len() && name.starts_with(&self.secure)
            || name.len() > self.host.len() && name.starts_with(&self.host)
    }

    /// Keeps the Better Auth cookies of a `Cookie` header. `Ok(None)` when there are none.
    ///
    /// The size limit is checked first, so an oversized header costs nothing more.
    /// Segments without `=` are not cookies and are dropped.
    pub fn filter(&self, header: &str) -> Result<Option<SessionCookie>, CookieError> {
        if header.len() > MAX_COOKIE_HEADER_BYTES {
            return Err(CookieError::TooLarge { len: header.len() });
        }
        let mut kept = String::new();
        for pair in header.split(';').map(str::trim) {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let name = name.trim_end();
            if !self.is_better_auth_cookie(name) {
                continue;
            }
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(name);
            kept.push('=');
            kept.push_str(value.trim_start());
        }
        if kept.is_empty() {
            return Ok(None);
        }
        HeaderValue::from_str(&kept)
            .map(|value| Some(SessionCookie(value)))
            .map_err(|_| CookieError::NotAHeaderValue)
    }
}

/// Joins the values of several `cookie` metadata entries with `"; "` (HTTP/2 lets a client split
/// the Cookie header into one field per cookie, RFC 9113 §8.2.3). Checks the size limit before
/// allocating.
pub fn join_cookie_fields(fields: &[&str]) -> Result<String, CookieError> {
    let len =
        fields.iter().map(|field| field.len()).sum::<usize>() + 2 * fields.len().saturating_sub(1);
    if len > MAX_COOKIE_HEADER_BYTES {
        return Err(CookieError::TooLarge { len });
    }
    Ok(fields.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filtered(header: &str) -> Option<String> {
        SessionCookieFilter::new("better-auth")
            .filter(header)
            .expect("valid header")
            .map(|cookie| String::from_utf8(cookie.as_bytes().to_vec()).expect("utf-8"))
    }

    #[test]
    fn keeps_only_better_auth_cookies_in_their_order() {
        assert_eq!(
            filtered(
                "theme=dark; better-auth.session_token=abc.def%3D; other=1; better-auth.dont_remember=true.x"
            ),
            Some("better-auth.session_token=abc.def%3D; better-auth.dont_remember=true.x".into())
        );
    }

    #[test]
    fn keeps_secure_and_host_prefixed_names() {
        assert_eq!(
            filtered("__Secure-better-auth.session_token=a;__Host-better-auth.x=b"),
            Some("__Secure-better-auth.session_token=a; __Host-better-auth.x=b".into())
        );
    }

    #[test]
    fn lookalike_names_are_not_better_auth_cookies() {
        for header in [
            "better-auth=1",
            "better-auth.=1",
            "better-authx.session_token=1",
            "xbetter-auth.session_token=1",
            "__secure-better-auth.session_token=1",
            "__Secure-better-auth=1",
            "better-auth.session_token",
            "",
            ";;; ;",
        ] {
            assert_eq!(filtered(header), None, "{header:?}");
        }
    }

    #[test]
    fn a_custom_prefix_is_honoured() {
        let filter = SessionCookieFilter::new("my-app");
        let cookie = filter
            .filter("better-auth.session_token=a; my-app.session_token=b")
            .expect("valid")
            .expect("present");
        assert_eq!(cookie.as_bytes(), b"my-app.session_token=b");
    }

    #[test]
    fn an_oversized_header_is_rejected_before_parsing() {
        let header = format!(
            "better-auth.session_token={}",
            "a".repeat(MAX_COOKIE_HEADER_BYTES)
        );
        assert_eq!(
            SessionCookieFilter::new("better-auth")
                .filter(&header)
                .err(),
            Some(CookieError::TooLarge { len: header.len() })
        );
    }

    #[test]
    fn a_control_character_in_a_better_auth_cookie_is_rejected() {
        let filter = SessionCookieFilter::new("better-auth");
        assert_eq!(
            filter.filter("better-auth.session_token=a\nb").err(),
            Some(CookieError::NotAHeaderValue)
        );
        // Only forwarded cookies must be header-safe; others are dropped anyway.
        assert!(
            filter
                .filter("junk=\0; better-auth.x=1")
                .expect("ok")
                .is_some()
        );
    }

    #[test]
    fn debug_does_not_show_the_cookie() {
        let cookie = SessionCookieFilter::new("better-auth")
            .filter("better-auth.session_token=secret")
            .expect("valid")
            .expect("present");
        assert!(!format!("{cookie:?}").contains("secret"));
    }

    #[test]
    fn metadata_fields_are_joined_and_size_checked() {
        assert_eq!(
            join_cookie_fields(&["a=1", "better-auth.session_token=x"]).expect("joined"),
            "a=1; better-auth.session_token=x"
        );
        let big = "a".repeat(MAX_COOKIE_HEADER_BYTES);
        assert!(matches!(
            join_cookie_fields(&["b=1", &big]),
            Err(CookieError::TooLarge { .. })
        ));
    }

    mod never_panics {
        use super::*;

        #[test]
        fn on_arbitrary_bytes() {
            let filter = SessionCookieFilter::new("better-auth");
            let samples = [
                "=",
                "==",
                ";=;",
                "better-auth.=",
                "better-auth.a==",
                "\u{0}",
                "é=ü; better-auth.é=ü",
                "better-auth.a=\u{7f}",
                " ; better-auth.a = b ; ",
            ];
            for sample in samples {
                let _ = filter.filter(sample);
            }
        }
    }
}
