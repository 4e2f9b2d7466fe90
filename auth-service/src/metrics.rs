//! The auth-service's own metrics, next to the generic RPC metrics of `telemetry::metrics`:
//! ValidateSession outcomes by reason, Better Auth call latency, and coalesced lookups.

use std::time::Duration;

use telemetry::metrics::{
    Registry, latency_histogram,
    prometheus_client::metrics::{counter::Counter, family::Family, histogram::Histogram},
};

/// Handles to the auth-service metrics. Cheap to clone (all clones share the same numbers).
/// A value not passed to [`AuthMetrics::register`] still counts, it is just never scraped.
#[derive(Debug, Clone)]
pub struct AuthMetrics {
    outcomes: Family<[(&'static str, &'static str); 1], Counter>,
    better_auth_latency: Histogram,
    coalesced: Counter,
}

impl Default for AuthMetrics {
    fn default() -> Self {
        Self {
            outcomes: Family::default(),
            better_auth_latency: latency_histogram(),
            coalesced: Counter::default(),
        }
    }
}

impl AuthMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "auth_validate_session",
            "ValidateSession answers by outcome: ok, or the google.rpc.ErrorInfo reason",
            metrics.outcomes.clone(),
        );
        registry.register(
            "auth_better_auth_request_duration_seconds",
            "Time of one get-session lookup at Better Auth (retry included, until the answer or \
             BETTER_AUTH_TIMEOUT_MS)",
            metrics.better_auth_latency.clone(),
        );
        registry.register(
            "auth_validate_coalesced",
            "ValidateSession calls answered by a Better Auth lookup another call triggered \
             (strict coalescing: a lookup sent after they arrived, never an older one)",
            metrics.coalesced.clone(),
        );
        metrics
    }

    /// One ValidateSession answer: `"ok"` or the error's `ErrorInfo.reason` (a fixed set of
    /// `&'static str`, so the label cannot grow without bound).
    pub fn validate_outcome(&self, outcome: &'static str) {
        self.outcomes.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// One lookup at Better Auth took `elapsed`.
    pub fn better_auth_call(&self, elapsed: Duration) {
        self.better_auth_latency.observe(elapsed.as_secs_f64());
    }

    /// One ValidateSession was answered by a lookup another call triggered (strict request
    /// coalescing, [`crate::coalesce`]) instead of one of its own.
    pub fn coalesced_hit(&self) {
        self.coalesced.inc();
    }
}
