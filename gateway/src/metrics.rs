//! The gateway's own metrics, next to the generic RPC metrics of `telemetry::metrics`: gRPC
//! calls forwarded to each upstream by status code, and CSRF refusals by reason.

use http::Response;
use telemetry::metrics::{
    Registry, code_name,
    prometheus_client::metrics::{counter::Counter, family::Family},
    response_code,
};

/// Handles to the gateway metrics. Cheap to clone; a value never registered still counts but
/// is never scraped.
#[derive(Debug, Clone, Default)]
pub(crate) struct GatewayMetrics {
    forwarded: Family<[(&'static str, &'static str); 2], Counter>,
    csrf_refusals: Family<[(&'static str, &'static str); 1], Counter>,
}

impl GatewayMetrics {
    /// New metrics, registered in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "gateway_forwarded_requests",
            "gRPC and grpc-web calls forwarded to an upstream, by upstream and the gRPC status \
             the browser got (upstream answer, or the gateway's own timeout/unavailable)",
            metrics.forwarded.clone(),
        );
        registry.register(
            "gateway_csrf_refusals",
            "Cookie-carrying gRPC calls refused by the Origin check, by reason",
            metrics.csrf_refusals.clone(),
        );
        metrics
    }

    /// A call forwarded to `upstream` ended with `response`.
    pub(crate) fn forwarded<B>(&self, upstream: &'static str, response: &Response<B>) {
        let code = code_name(response_code(response.headers()));
        self.forwarded
            .get_or_create(&[("upstream", upstream), ("grpc_code", code)])
            .inc();
    }

    /// A cookie-carrying call was refused for `reason`.
    pub(crate) fn csrf_refused(&self, reason: &'static str) {
        self.csrf_refusals
            .get_or_create(&[("reason", reason)])
            .inc();
    }
}
