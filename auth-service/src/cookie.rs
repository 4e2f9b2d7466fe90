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
    /// A Better Auth cookie (or the cookie metadata) holds characters an HTTP header cannot carry,
    /// or non-ASCII (a real Better Auth cookie is URL-encoded ASCII).
    #[error(
        "the cookie header contains characters not allowed in an HTTP header or a Better Auth cookie \
         (control characters such as CR, LF or NUL, or non-ASCII)"
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
        // `HeaderValue` would pass bytes over 0x7F on to Better Auth; they cannot be part of a
        // session cookie, so they are refused like control characters.
        if !kept.is_ascii() {
            return Err(CookieError::NotAHeaderValue);
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
        assert_eq!(
            filter.filter("better-auth.session_token=caf\u{e9}").err(),
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

    /// Property tests: the filter's contract holds for any input, not only the examples above.
    mod properties {
        use proptest::{collection::vec, prelude::*};

        use super::*;

        const PREFIXES: [&str; 3] = [
            "better-auth.",
            "__Secure-better-auth.",
            "__Host-better-auth.",
        ];

        /// The specification, independently of the filter's code: a Better Auth cookie name is
        /// one of the prefixes followed by at least one more character.
        fn is_better_auth_name(name: &str) -> bool {
            PREFIXES
                .iter()
                .any(|prefix| name.len() > prefix.len() && name.starts_with(prefix))
        }

        fn filter(header: &str) -> Result<Option<String>, CookieError> {
            SessionCookieFilter::new("better-auth")
                .filter(header)
                .map(|kept| kept.map(|c| String::from_utf8(c.as_bytes().to_vec()).expect("utf-8")))
        }

        /// Anything a client could put in the field: arbitrary Unicode (NUL, controls,
        /// non-ASCII), up to several times the size limit, runs of thousands of `;`, and
        /// cookie-like text around Better Auth names.
        fn any_header() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                vec(any::<char>(), 0..40_000).prop_map(String::from_iter),
                (1usize..10_000).prop_map(|n| ";".repeat(n)),
                (0usize..5_000, ".{0,20}")
                    .prop_map(|(n, tail)| format!("{}better-auth.s=1{tail}", "; ".repeat(n))),
                vec(
                    prop_oneof![
                        "(__Secure-|__Host-)?better-auth\\.[a-z_]{0,8}=[^;]{0,12}",
                        "[^;=]{0,10}=[^;]{0,10}",
                        "[\\x00-\\x1f;= ]{0,4}",
                        "\\PC{0,8}",
                    ],
                    0..60
                )
                .prop_map(|parts| parts.join(";")),
            ]
        }

        /// A cookie-shaped `name=value` that a browser could send: names without separators
        /// or spaces, values without `;` and not starting or ending with a space.
        fn cookie() -> impl Strategy<Value = (String, String)> {
            let name = prop_oneof![
                "(__Secure-|__Host-)?better-auth\\.[A-Za-z0-9_.-]{1,16}",
                "(__Secure-|__Host-|__secure-)?(better-auth|better-authx|xbetter-auth|BETTER-AUTH)\\.?",
                "[A-Za-z0-9_.-]{1,16}",
                "[!#$%&'*+^`|~A-Za-z0-9éü]{1,12}",
            ];
            let value = "([!#-+\\--:<-~]([ !#-+\\--:<-~]{0,30}[!#-+\\--:<-~])?)?";
            (name, value)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn never_panics_and_enforces_the_size_limit(header in any_header()) {
                let result = filter(&header);
                if header.len() > MAX_COOKIE_HEADER_BYTES {
                    prop_assert_eq!(result, Err(CookieError::TooLarge { len: header.len() }));
                } else {
                    let too_large = matches!(result, Err(CookieError::TooLarge { .. }));
                    prop_assert!(!too_large);
                }
            }

            #[test]
            fn never_forwards_a_cookie_that_is_not_better_auths(header in any_header()) {
                if let Ok(Some(kept)) = filter(&header) {
                    prop_assert!(kept.len() <= header.len());
                    for pair in kept.split("; ") {
                        let (name, _) = pair.split_once('=').expect("name=value");
                        prop_assert!(is_better_auth_name(name), "forwarded {:?}", name);
                        prop_assert!(header.contains(name));
                    }
                }
            }

            #[test]
            fn keeps_exactly_the_better_auth_cookies_in_order(
                cookies in vec(cookie(), 0..40),
                separators in vec("; ?| ?; ?", 40),
            ) {
                let mut header = String::new();
                for (i, (name, value)) in cookies.iter().enumerate() {
                    if i > 0 {
                        header.push_str(&separators[i]);
                    }
                    header.push_str(&format!("{name}={value}"));
                }
                let expected: Vec<String> = cookies
                    .iter()
                    .filter(|(name, _)| is_better_auth_name(name))
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                let kept = filter(&header).expect("a browser-shaped header under 8 KiB");
                if expected.is_empty() {
                    prop_assert_eq!(kept, None);
                } else {
                    prop_assert_eq!(kept, Some(expected.join("; ")));
                }
            }

            #[test]
            fn the_limit_is_exactly_eight_kibibytes(len in 8_000usize..8_400) {
                let prefix = "better-auth.session_token=";
                let header = format!("{prefix}{}", "a".repeat(len - prefix.len()));
                let result = filter(&header);
                if len <= MAX_COOKIE_HEADER_BYTES {
                    prop_assert_eq!(result, Ok(Some(header)));
                } else {
                    prop_assert_eq!(result, Err(CookieError::TooLarge { len }));
                }
            }

            #[test]
            fn joined_metadata_is_size_checked_exactly(fields in vec(".{0,3000}", 0..8)) {
                let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
                let joined = fields.join("; ");
                match join_cookie_fields(&fields) {
                    Ok(text) => {
                        prop_assert!(text.len() <= MAX_COOKIE_HEADER_BYTES);
                        prop_assert_eq!(text, joined);
                    }
                    Err(error) => {
                        prop_assert!(joined.len() > MAX_COOKIE_HEADER_BYTES);
                        prop_assert_eq!(error, CookieError::TooLarge { len: joined.len() });
                    }
                }
            }
        }
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
