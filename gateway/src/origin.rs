//! Who may call with cookies (CSRF) and what CORS grants: one `OriginPolicy` built from the
//! config, used by the gRPC stack (`grpc.rs`) and for the CORS layer in front of it.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The origins allowed to send cookies, and whether `X-Forwarded-Proto` is trusted.
#[derive(Debug, Clone)]
pub(crate) struct OriginPolicy {
    allowed: Vec<HeaderValue>,
    trust_forwarded_proto: bool,
}

/// Why a cookie-carrying request was refused (logged; the client gets one generic message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `Origin` is neither the gateway's own nor listed.
    ForeignOrigin,
    /// No `Origin`, but the browser says the request is cross-site.
    CrossSiteWithoutOrigin,
}

impl Refusal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ForeignOrigin => "foreign_origin",
            Self::CrossSiteWithoutOrigin => "cross_site_without_origin",
        }
    }
}

impl OriginPolicy {
    pub(crate) fn new(allowed: Vec<HeaderValue>, trust_forwarded_proto: bool) -> Self {
        Self {
            allowed,
            trust_forwarded_proto,
        }
    }

    /// The CSRF rule for gRPC and grpc-web requests.
    ///
    /// - No cookie: nothing to forge, always allowed (grpcurl, service-to-service).
    /// - Cookie + `Origin`: allowed only for the gateway's own origin or a listed one.
    /// - Cookie without `Origin`: allowed. Browsers always send `Origin` on cross-origin requests
    ///   and on same-origin `fetch` POSTs (every grpc-web call is a POST), so a cookie without an
    ///   Origin comes from a non-browser client (grpcurl, a script) that holds the cookie itself
    ///   and is not a CSRF vector. As defence in depth, a request whose `Sec-Fetch-Site` says it
    ///   is cross-site or same-site (not same-origin) is still refused.
    pub(crate) fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), Refusal> {
        let has_cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .any(|v| !v.is_empty());
        if !has_cookie {
            return Ok(());
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return match headers.get("sec-fetch-site").map(HeaderValue::as_bytes) {
                Some(b"cross-site" | b"same-site") => Err(Refusal::CrossSiteWithoutOrigin),
                _ => Ok(()),
            };
        };
        if self.is_listed(origin) || self.is_own(origin, headers, uri) {
            Ok(())
        } else {
            Err(Refusal::ForeignOrigin)
        }
    }

    fn is_listed(&self, origin: &HeaderValue) -> bool {
        self.allowed
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
    }

    /// The gateway's own origin is the scheme (`http`, or a trusted `X-Forwarded-Proto`) plus the
    /// request's `Host` (HTTP/1.1) or `:authority` (h2). A DNS-rebinding page gets a matching
    /// Host and Origin, but the browser then sends that page's cookies, not the gateway's.
    fn is_own(&self, origin: &HeaderValue, headers: &HeaderMap, uri: &Uri) -> bool {
        let Some(host) = request_host(headers, uri) else {
            return false;
        };
        let scheme = self.scheme(headers);
        let own = format!("{scheme}://{host}");
        own.as_bytes().eq_ignore_ascii_case(origin.as_bytes())
    }

    /// `http`, unless `X-Forwarded-Proto` is trusted and says `https`.
    pub(crate) fn scheme(&self, headers: &HeaderMap) -> &'static str {
        if self.trust_forwarded_proto
            && headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
        {
            "https"
        } else {
            "http"
        }
    }

    /// CORS for the gRPC stack: only listed origins, with credentials, never `*`; exposes the
    /// gRPC status headers so browsers can read trailers-only errors.
    pub(crate) fn cors_layer(&self) -> CorsLayer {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(self.allowed.iter().cloned()))
            .allow_credentials(true)
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers(
                [
                    "content-type",
                    "x-grpc-web",
                    "x-user-agent",
                    "grpc-timeout",
                    "connect-protocol-version",
                    "traceparent",
                    "x-request-id",
                ]
                .map(HeaderName::from_static),
            )
            .expose_headers(
                ["grpc-status", "grpc-message", "grpc-status-details-bin"]
                    .map(HeaderName::from_static),
            )
            .max_age(Duration::from_secs(600))
    }
}

/// `Host` for HTTP/1.1, the URI authority (`:authority`) for h2.
pub(crate) fn request_host<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy() -> OriginPolicy {
        OriginPolicy::new(
            vec![HeaderValue::from_static("http://localhost:5173")],
            false,
        )
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    fn uri() -> Uri {
        Uri::from_static("/todo.v1.TodoService/ListTodos")
    }

    #[test]
    fn requests_without_cookies_pass_whatever_their_origin() {
        let h = headers(&[("origin", "https://evil.example")]);
        assert_eq!(policy().check(&h, &uri()), Ok(()));
    }

    #[test]
    fn cookies_from_a_foreign_origin_are_refused() {
        let h = headers(&[
            ("cookie", "a=b"),
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert_eq!(policy().check(&h, &uri()), Err(Refusal::ForeignOrigin));
    }

    #[test]
    fn cookies_from_the_own_or_a_listed_origin_pass() {
        let own = headers(&[
            ("cookie", "a=b"),
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert_eq!(policy().check(&own, &uri()), Ok(()));
        let listed = headers(&[
            ("cookie", "a=b"),
            ("origin", "http://localhost:5173"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert_eq!(policy().check(&listed, &uri()), Ok(()));
    }

    #[test]
    fn the_own_origin_needs_the_same_scheme() {
        let h = headers(&[
            ("cookie", "a=b"),
            ("origin", "https://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(policy().check(&h, &uri()), Err(Refusal::ForeignOrigin));
        let trusting = OriginPolicy::new(vec![], true);
        assert_eq!(trusting.check(&h, &uri()), Ok(()));
    }

    #[test]
    fn cookies_without_origin_pass_unless_the_browser_says_cross_site() {
        assert_eq!(
            policy().check(&headers(&[("cookie", "a=b")]), &uri()),
            Ok(())
        );
        let h = headers(&[("cookie", "a=b"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(
            policy().check(&h, &uri()),
            Err(Refusal::CrossSiteWithoutOrigin)
        );
    }

    #[test]
    fn a_null_origin_with_cookies_is_refused() {
        let h = headers(&[("cookie", "a=b"), ("origin", "null"), ("host", "x")]);
        assert_eq!(policy().check(&h, &uri()), Err(Refusal::ForeignOrigin));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    const LISTED: &str = "http://localhost:5173";

    fn policy() -> OriginPolicy {
        OriginPolicy::new(vec![HeaderValue::from_static(LISTED)], false)
    }

    fn map(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    /// Printable header-safe text, including the characters origins are made of.
    fn text() -> impl Strategy<Value = String> {
        "[ -~]{0,40}"
    }

    fn host() -> impl Strategy<Value = String> {
        "[a-z0-9.-]{1,20}(:[0-9]{1,5})?"
    }

    fn uri() -> Uri {
        Uri::from_static("/todo.v1.TodoService/ListTodos")
    }

    proptest! {
        #[test]
        fn without_a_cookie_every_request_passes(origin in text(), host in host()) {
            let h = map(&[("origin", &origin), ("host", &host)]);
            prop_assert_eq!(policy().check(&h, &uri()), Ok(()));
        }

        #[test]
        fn a_cookie_passes_only_from_the_listed_or_own_origin(
            origin in text(), host in host(), cookie in "[!-~]{1,40}",
        ) {
            let h = map(&[("cookie", &cookie), ("origin", &origin), ("host", &host)]);
            let own = format!("http://{host}");
            let expected = origin.eq_ignore_ascii_case(LISTED) || origin.eq_ignore_ascii_case(&own);
            prop_assert_eq!(policy().check(&h, &uri()).is_ok(), expected);
        }

        #[test]
        fn the_own_origin_passes_in_any_case_but_never_with_another_scheme(host in host()) {
            let own = format!("HTTP://{}", host.to_ascii_uppercase());
            let h = map(&[("cookie", "a=b"), ("origin", &own), ("host", &host)]);
            prop_assert_eq!(policy().check(&h, &uri()), Ok(()));
            let https = format!("https://{host}");
            let h = map(&[("cookie", "a=b"), ("origin", &https), ("host", &host),
                ("x-forwarded-proto", "https")]);
            prop_assert_eq!(policy().check(&h, &uri()), Err(Refusal::ForeignOrigin));
        }

        #[test]
        fn a_listed_origin_with_anything_appended_is_foreign(suffix in "[ -~]{1,20}", host in host()) {
            let origin = format!("{LISTED}{suffix}");
            let h = map(&[("cookie", "a=b"), ("origin", &origin), ("host", &host)]);
            let own = format!("http://{host}");
            prop_assume!(!origin.eq_ignore_ascii_case(&own));
            prop_assert_eq!(policy().check(&h, &uri()), Err(Refusal::ForeignOrigin));
        }

        #[test]
        fn a_cookie_without_origin_is_refused_exactly_when_the_browser_says_cross_or_same_site(
            site in prop::sample::select(vec!["cross-site", "same-site", "same-origin", "none", "x"]),
        ) {
            let h = map(&[("cookie", "a=b"), ("sec-fetch-site", site)]);
            let refused = matches!(site, "cross-site" | "same-site");
            prop_assert_eq!(policy().check(&h, &uri()).is_err(), refused);
        }
    }
}
