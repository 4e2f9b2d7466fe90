//! W3C Trace Context (`traceparent`) across services, and the per-request span that puts the
//! trace id on every log line of a request.
//!
//! Each service runs [`TraceContextLayer`] outermost (the gateway calls [`start_request`]): it
//! accepts a valid incoming `traceparent` or starts a new trace (random ids, flags `01`) when it
//! is absent or invalid, stores the result as a [`TraceParent`] request extension, rewrites the
//! request's `traceparent` header to it, and runs the request inside a `request` span with
//! `trace_id` and `method` fields. Outgoing calls send that extension as their `traceparent`.
//!
//! Services record no spans of their own yet (nothing is exported, no OTLP), so a valid
//! `traceparent` passes every hop unchanged, as W3C allows for a participant that does not
//! trace: the trace id correlates log lines across services. [`TraceParent::child`] is what a
//! hop would send once it exports spans.

use std::fmt;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue};
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Instrument, instrument::Instrumented};

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";

/// One hop of a W3C trace: trace id, this hop's span (parent) id, and the trace flags.
/// Always written as version `00`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value (W3C Trace Context level 1, §3.2). `None` for anything
    /// invalid: wrong length or separators, upper-case or non-hex digits, version `ff`, an
    /// all-zero trace id or parent id. Versions above `00` are read by their `00` prefix, as the
    /// specification asks.
    pub fn parse(value: &str) -> Option<Self> {
        // Byte-wise: the value is client-controlled and may hold any UTF-8.
        let bytes = value.as_bytes();
        if bytes.len() < 55 || (bytes.len() > 55 && bytes[55] != b'-') {
            return None;
        }
        let version = &bytes[..2];
        if !is_lower_hex(version) || version == b"ff" || (version == b"00" && bytes.len() != 55) {
            return None;
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let trace_id = hex_u128(&bytes[3..35])?;
        let span_id = u64::try_from(hex_u128(&bytes[36..52])?).ok()?;
        let flags = u8::try_from(hex_u128(&bytes[53..55])?).ok()?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The `traceparent` of `headers`, if there is exactly one and it is valid.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        Self::parse(value.to_str().ok()?.trim())
    }

    /// A new trace: random trace id and span id, flags `01` (sampled).
    pub fn new_root() -> Self {
        Self {
            trace_id: non_zero(|| fastrand::u128(..)),
            span_id: non_zero(|| fastrand::u64(..)),
            flags: 0x01,
        }
    }

    /// The next hop of the same trace: same trace id and flags, a new random span id.
    pub fn child(&self) -> Self {
        Self {
            span_id: non_zero(|| fastrand::u64(..)),
            ..*self
        }
    }

    /// The context of a request carrying `headers`: its valid `traceparent`, or a new root
    /// when it is absent or invalid (never trusted blindly). The second value tells whether an
    /// invalid one was replaced.
    pub fn continue_or_start(headers: &HeaderMap) -> (Self, bool) {
        match Self::from_headers(headers) {
            Some(incoming) => (incoming, false),
            None => (Self::new_root(), headers.contains_key(TRACEPARENT)),
        }
    }

    /// The 32 lower-case hex digits of the trace id.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The 16 lower-case hex digits of this hop's span id.
    pub fn span_id(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// The trace flags (`01` = sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The header value to send on an outgoing call: `00-<trace id>-<span id>-<flags>`.
    pub fn header_value(&self) -> HeaderValue {
        // Only hex digits and dashes: always a valid header value.
        HeaderValue::from_str(&self.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

impl std::str::FromStr for TraceParent {
    type Err = InvalidTraceParent;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse(value).ok_or(InvalidTraceParent)
    }
}

/// A `traceparent` value that is not valid W3C Trace Context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTraceParent;

impl fmt::Display for InvalidTraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a valid W3C traceparent")
    }
}

impl std::error::Error for InvalidTraceParent {}

fn is_lower_hex(digits: &[u8]) -> bool {
    digits
        .iter()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Up to 32 lower-case hex digits (upper case is invalid in a traceparent).
fn hex_u128(digits: &[u8]) -> Option<u128> {
    if digits.is_empty() || digits.len() > 32 || !is_lower_hex(digits) {
        return None;
    }
    let text = std::str::from_utf8(digits).ok()?;
    u128::from_str_radix(text, 16).ok()
}

fn non_zero<T: PartialEq + Default>(mut random: impl FnMut() -> T) -> T {
    loop {
        let value = random();
        if value != T::default() {
            return value;
        }
    }
}

/// Sets the request's [`TraceParent`] (extension and header) and returns the span the request
/// should run in, named `request` with `trace_id` and `method` = the URI path. For servers that
/// are not a tower stack (the gateway's hyper service) and for [`TraceContext`]. Where a path
/// can carry a secret, use [`start_request_as`].
pub fn start_request<B>(request: &mut http::Request<B>) -> tracing::Span {
    let route = request.uri().path().to_owned();
    start_request_as(request, &route)
}

/// [`start_request`] with `route` logged as `method` instead of the URI path. `route` is on
/// every line of the request, so it must not carry secrets (a raw path can, e.g. Better
/// Auth's `/api/auth/reset-password/<token>`).
pub fn start_request_as<B>(request: &mut http::Request<B>, route: &str) -> tracing::Span {
    let (trace, replaced) = TraceParent::continue_or_start(request.headers());
    let headers = request.headers_mut();
    headers.insert(TRACEPARENT, trace.header_value());
    if replaced {
        // `tracestate` belongs to the trace that was just dropped.
        headers.remove("tracestate");
    }
    request.extensions_mut().insert(trace);
    let span = tracing::info_span!("request", trace_id = %trace.trace_id(), method = %route);
    if replaced {
        // The value itself is not logged: it is client-controlled and invalid.
        span.in_scope(|| tracing::debug!("invalid traceparent replaced by a new trace"));
    }
    span
}

/// Wraps a service so each request continues (or starts) a trace and runs in its span.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextLayer;

impl TraceContextLayer {
    /// The layer; it has no configuration.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for TraceContextLayer {
    type Service = TraceContext<S>;

    fn layer(&self, inner: S) -> TraceContext<S> {
        TraceContext { inner }
    }
}

/// The service produced by [`TraceContextLayer`].
#[derive(Debug, Clone)]
pub struct TraceContext<S> {
    inner: S,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for TraceContext<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for TraceContext<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // A gRPC path is `/package.Service/Method`: a method name, not data.
        let span = start_request(&mut request);
        let future = span.in_scope(|| self.inner.call(request));
        future.instrument(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let parsed = TraceParent::parse(VALID).expect("valid");
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.span_id(), "00f067aa0ba902b7");
        assert_eq!(parsed.flags(), 1);
        assert_eq!(parsed.to_string(), VALID);
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for bad in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1é",
            "aé-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_future_version_is_read_by_its_known_prefix() {
        let future =
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
        let parsed = TraceParent::parse(future).expect("readable");
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(parsed.to_string().starts_with("00-"));
        assert_eq!(
            TraceParent::parse(&future.replace("01-what", "01xwhat")),
            None
        );
    }

    #[test]
    fn new_roots_are_random_sampled_and_valid() {
        let a = TraceParent::new_root();
        let b = TraceParent::new_root();
        assert_ne!(a.trace_id(), b.trace_id());
        assert_eq!(a.flags(), 1);
        assert_eq!(TraceParent::parse(&a.to_string()), Some(a));
    }

    #[test]
    fn a_child_keeps_the_trace_and_changes_the_span() {
        let parent = TraceParent::parse(VALID).expect("valid");
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert_eq!(child.flags(), parent.flags());
    }

    #[test]
    fn start_request_continues_a_valid_trace_and_replaces_an_invalid_one() {
        let mut request = http::Request::new(());
        request
            .headers_mut()
            .insert(TRACEPARENT, HeaderValue::from_static(VALID));
        let _span = start_request(&mut request);
        let trace = *request.extensions().get::<TraceParent>().expect("set");
        assert_eq!(
            trace.to_string(),
            VALID,
            "a valid traceparent passes unchanged"
        );
        assert_eq!(request.headers()[TRACEPARENT], VALID);

        let mut request = http::Request::new(());
        let headers = request.headers_mut();
        headers.insert(TRACEPARENT, HeaderValue::from_static("00-zz"));
        headers.insert("tracestate", HeaderValue::from_static("vendor=1"));
        let _span = start_request(&mut request);
        let trace = *request.extensions().get::<TraceParent>().expect("set");
        assert_ne!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(request.headers()[TRACEPARENT], trace.to_string());
        assert!(request.headers().get("tracestate").is_none());
    }

    #[test]
    fn two_traceparent_headers_start_a_new_trace() {
        let mut headers = HeaderMap::new();
        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert_eq!(TraceParent::from_headers(&headers), None);
        let (trace, replaced) = TraceParent::continue_or_start(&headers);
        assert!(replaced);
        assert_ne!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
