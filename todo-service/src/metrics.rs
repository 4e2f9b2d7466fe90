//! The todo-service's own metrics, next to the generic RPC metrics of `telemetry::metrics`:
//! session-check outcomes (counted by the session layer) and the database pool's usage
//! (sampled from deadpool's status at each scrape, so it is never stale).

use telemetry::metrics::{
    Registry,
    prometheus_client::{
        collector::Collector,
        encoding::{DescriptorEncoder, EncodeMetric as _},
        metrics::{MetricType, counter::Counter, family::Family, gauge::ConstGauge},
    },
};
use tonic::Status;
use tonic_types::StatusExt as _;

use crate::db::Pool;

/// `ErrorInfo.reason`s a session check can end with: the auth-service's (`auth.v1`) and this
/// service's own. Anything else is labelled by its status code, so the label set stays fixed.
const SESSION_REASONS: [&str; 7] = [
    "SESSION_MISSING",
    "SESSION_INVALID",
    "COOKIE_TOO_LARGE",
    "COOKIE_MALFORMED",
    "AUTH_PROVIDER_UNAVAILABLE",
    "AUTH_PROVIDER_BAD_RESPONSE",
    "AUTH_SERVICE_UNAVAILABLE",
];

/// Handles to the todo-service metrics. Cheap to clone; a value never registered still counts
/// but is never scraped.
#[derive(Debug, Clone, Default)]
pub struct TodoMetrics {
    session_checks: Family<[(&'static str, &'static str); 1], Counter>,
}

impl TodoMetrics {
    /// New metrics registered in `registry`, plus the pool gauges of `pool`.
    pub fn register(registry: &mut Registry, pool: Pool) -> Self {
        let metrics = Self::default();
        registry.register(
            "todo_session_checks",
            "Session checks (ValidateSession) by outcome: ok, the ErrorInfo reason, or the status code",
            metrics.session_checks.clone(),
        );
        registry.register_collector(Box::new(PoolCollector(pool)));
        metrics
    }

    /// One session check ended with `result`.
    pub fn session_check(&self, result: Result<(), &Status>) {
        let outcome = match result {
            Ok(()) => "ok",
            Err(status) => session_outcome(status),
        };
        self.session_checks
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }
}

fn session_outcome(status: &Status) -> &'static str {
    status
        .get_details_error_info()
        .and_then(|info| {
            SESSION_REASONS
                .iter()
                .copied()
                .find(|known| *known == info.reason)
        })
        .unwrap_or_else(|| telemetry::metrics::code_name(status.code()))
}

/// Reads the pool's status at each scrape.
struct PoolCollector(Pool);

impl std::fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PoolCollector")
            .field(&self.0.backend())
            .finish()
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let status = self.0.status();
        let gauges = [
            (
                "todo_db_pool_max_connections",
                "Largest number of database connections the pool opens (DATABASE_POOL_SIZE)",
                status.max_size,
            ),
            (
                "todo_db_pool_connections",
                "Database connections open now (idle or in use)",
                status.size,
            ),
            (
                "todo_db_pool_idle_connections",
                "Open database connections not in use",
                status.available,
            ),
            (
                "todo_db_pool_waiting",
                "RPCs waiting for a database connection",
                status.waiting,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic::Code;
    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn outcomes_are_known_reasons_or_status_codes() {
        let with_reason = |reason: &str| {
            Status::with_error_details(
                Code::Unauthenticated,
                "x",
                ErrorDetails::with_error_info(reason, "auth.v1", HashMap::new()),
            )
        };
        assert_eq!(
            session_outcome(&with_reason("SESSION_INVALID")),
            "SESSION_INVALID"
        );
        assert_eq!(
            session_outcome(&with_reason("SOMETHING_NEW")),
            "UNAUTHENTICATED"
        );
        assert_eq!(
            session_outcome(&Status::deadline_exceeded("slow")),
            "DEADLINE_EXCEEDED"
        );
    }
}
