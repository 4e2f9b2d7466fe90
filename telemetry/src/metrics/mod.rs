//! Prometheus metrics shared by every service: one [`Registry`] per `App` (no global state, so
//! several Apps in one test process never mix their numbers), the small `/metrics` HTTP server
//! ([`MetricsServer`]) and the generic gRPC layer ([`RpcMetricsLayer`]).
//!
//! A service builds its registry in `App::build`: `RpcMetricsLayer::new(&mut registry, …)` plus
//! its own metrics, then `MetricsServer::bind(METRICS_LISTEN)`; `run_until` spawns the server
//! with the finished registry and stops it after the gRPC server has drained.

mod rpc;
mod server;

pub use prometheus_client;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
pub use prometheus_client::registry::Registry;
pub use rpc::{KnownMethods, RpcMetrics, RpcMetricsLayer, code_name, response_code};
pub use server::{MetricsServer, MetricsTask};

/// `Content-Type` of a scrape: the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The registry in the Prometheus text format (what `GET /metrics` answers).
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::prometheus_text::encode(&mut text, registry) {
        // Only a collector can fail; a partial scrape is still worth answering.
        tracing::warn!(%error, "encoding the metrics failed");
    }
    text
}

/// Latency buckets in seconds: 0.5 ms doubling up to ~8 s, so sub-millisecond local calls and
/// multi-second timeouts both land in a bucket of their own.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0005, 2.0, 15)
}

/// A histogram with [`latency_buckets`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}
