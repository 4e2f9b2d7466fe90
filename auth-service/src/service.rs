//! The `auth.v1.AuthService` handler: picks the request's cookie header, filters it, asks Better
//! Auth (through the `Coalescer` unless coalescing is off), and converts the answer to proto.
//! Proto types stop here.

use std::{sync::Arc, time::Instant};

use proto::auth::v1::{
    Session as ProtoSession, User as ProtoUser, ValidateSessionRequest, ValidateSessionResponse,
    auth_service_server::AuthService,
};
use telemetry::trace::TraceParent;
use time::OffsetDateTime;
use tonic::{
    Request, Response, Status,
    metadata::{AsciiMetadataValue, MetadataMap},
};
use tracing::Instrument;

use crate::{
    better_auth::{BetterAuthClient, ValidSession},
    coalesce::Coalescer,
    cookie::{CookieError, SessionCookie, SessionCookieFilter, join_cookie_fields},
    error::Error,
    metrics::AuthMetrics,
};

/// One Better Auth answer, shared by every caller of a coalesced call (cheap to clone).
type Lookup = Arc<Result<ValidSession, Error>>;

/// The `AuthService` implementation. Shared state only; the one lock is the coalescer's map,
/// held for map operations and never across an `.await`.
#[derive(Debug, Clone)]
pub struct AuthApi {
    filter: SessionCookieFilter,
    better_auth: Arc<BetterAuthClient>,
    metrics: AuthMetrics,
    /// `None` when coalescing is off (`--coalesce=false`): every check makes its own call.
    coalescer: Option<Coalescer<SessionCookie, Lookup>>,
}

impl AuthApi {
    /// A handler that forwards the cookies `filter` keeps to `better_auth`, with strict
    /// request coalescing on.
    pub fn new(filter: SessionCookieFilter, better_auth: BetterAuthClient) -> Self {
        Self {
            filter,
            better_auth: Arc::new(better_auth),
            metrics: AuthMetrics::default(),
            coalescer: Some(Coalescer::new()),
        }
    }

    /// Turns strict request coalescing ([`crate::coalesce`]) on or off.
    pub fn with_coalescing(mut self, on: bool) -> Self {
        self.coalescer = on.then(Coalescer::new);
        self
    }

    /// Counts every answer's outcome in `metrics`.
    pub fn with_metrics(mut self, metrics: AuthMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    async fn validate(
        &self,
        request: &Request<ValidateSessionRequest>,
    ) -> Result<ValidSession, Error> {
        let from_field = &request.get_ref().cookie;
        let cookie = if from_field.is_empty() {
            self.filter.filter(&cookie_metadata(request.metadata())?)?
        } else {
            self.filter.filter(from_field)?
        };
        let cookie = cookie.ok_or(Error::SessionMissing)?;
        // Set by `TraceContextLayer` for every request; forwarded so Better Auth's logs join
        // the same trace.
        let trace = request.extensions().get::<TraceParent>().copied();
        let Some(coalescer) = &self.coalescer else {
            return self.better_auth.session(&cookie, trace).await;
        };
        // Only the caller that triggers a call builds it: its trace context goes to Better Auth
        // and the call's logs stay in its span, although the call runs on its own task.
        let better_auth = self.better_auth.clone();
        let make_call = {
            let cookie = cookie.clone();
            move || {
                async move { Arc::new(better_auth.session(&cookie, trace).await) }
                    .instrument(tracing::Span::current())
            }
        };
        let answer = coalescer
            .call(cookie, make_call)
            .await
            .map_err(|abandoned| {
                Error::ProviderUnavailable(format!("cannot check the session: {abandoned}"))
            })?;
        if answer.shared {
            self.metrics.coalesced_hit();
        }
        // The Set-Cookies go to every caller that shared the answer: they all sent this cookie.
        (*answer.value).clone()
    }
}

/// The `cookie` request metadata, for callers (a generic grpc-web gateway in front of a browser)
/// that cannot put the browser's HttpOnly cookie into the request message. Several entries are
/// joined, as HTTP/2 allows a client to split the Cookie header.
fn cookie_metadata(metadata: &MetadataMap) -> Result<String, Error> {
    let fields = metadata
        .get_all("cookie")
        .iter()
        .map(|value| value.to_str().map_err(|_| CookieError::NotAHeaderValue))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(join_cookie_fields(&fields)?)
}

/// Adds each `Set-Cookie` value as a `set-cookie` metadata entry, so a generic gateway can pass
/// refreshed or clearing cookies on to the browser. Values are visible ASCII (checked when
/// Better Auth's answer was read), so none is dropped in practice.
pub(crate) fn append_set_cookies(metadata: &mut MetadataMap, set_cookie: &[String]) {
    for value in set_cookie {
        match AsciiMetadataValue::try_from(value.as_str()) {
            Ok(value) => {
                metadata.append("set-cookie", value);
            }
            Err(_) => tracing::warn!("dropped a Set-Cookie that is not valid gRPC metadata"),
        }
    }
}

fn timestamp(at: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        // Always below 10^9, so it fits.
        nanos: i32::try_from(at.nanosecond()).unwrap_or(0),
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn validate_session(
        &self,
        request: Request<ValidateSessionRequest>,
    ) -> Result<Response<ValidateSessionResponse>, Status> {
        let started = Instant::now();
        let result = self.validate(&request).await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.metrics.validate_outcome(match &result {
            Ok(_) => "ok",
            Err(error) => error.reason(),
        });

        match result {
            Ok(ValidSession {
                user,
                session,
                set_cookie,
            }) => {
                tracing::info!(
                    user_id = %user.id,
                    session_id = %session.id,
                    refreshed = !set_cookie.is_empty(),
                    latency_ms,
                    "session valid"
                );
                let mut metadata = MetadataMap::new();
                append_set_cookies(&mut metadata, &set_cookie);
                let message = ValidateSessionResponse {
                    user: Some(ProtoUser {
                        id: user.id,
                        email: user.email,
                        name: user.name,
                        email_verified: user.email_verified,
                        image: user.image,
                    }),
                    session: Some(ProtoSession {
                        id: session.id,
                        expires_at: Some(timestamp(session.expires_at)),
                        created_at: Some(timestamp(session.created_at)),
                    }),
                    set_cookie,
                };
                Ok(Response::from_parts(
                    metadata,
                    message,
                    tonic::Extensions::default(),
                ))
            }
            Err(error) => {
                let reason = error.reason();
                match &error {
                    Error::ProviderUnavailable(message) => {
                        tracing::warn!(reason, latency_ms, detail = %message, "session check failed");
                    }
                    Error::ProviderBadResponse(message) => {
                        tracing::error!(reason, latency_ms, detail = %message, "session check failed");
                    }
                    _ => tracing::info!(reason, latency_ms, "session rejected"),
                }
                Err(error.into())
            }
        }
    }
}
