//! [`RpcMetricsLayer`] / [`RpcMetrics`]: counts gRPC calls by method and status code and
//! records their latency, for any tower service over `http::Request`.
//!
//! Assumption (tonic unary RPCs): a failed call is answered "trailers-only", so its
//! `grpc-status` is in the response headers; a response whose headers carry no `grpc-status`
//! is counted as OK. The code is read when the response headers are ready, so an error a
//! streaming RPC sends later in its trailers (health `Watch`, reflection) is counted as OK, and
//! latency is time to response headers. A call dropped before its headers (client cancelled,
//! connection closed) is counted as CANCELLED.
//!
//! The `grpc_service`/`grpc_method` labels come from a fixed list of known methods
//! ([`KnownMethods`], read from descriptor sets) so a client cannot create label values by
//! sending made-up paths: anything else is counted as `unknown`.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use anyhow::Context as _;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use prost::Message as _;
use tonic::Code;
use tower_layer::Layer;
use tower_service::Service;

/// The label value for paths that are not a known method.
const UNKNOWN: &str = "unknown";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_service: Arc<String>,
    grpc_method: Arc<String>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    grpc_code: &'static str,
}

/// The gRPC methods a server may be asked for, by path (`/package.Service/Method`).
#[derive(Debug, Clone)]
pub struct KnownMethods {
    by_path: Arc<HashMap<String, MethodLabels>>,
    unknown: MethodLabels,
}

impl KnownMethods {
    /// Every method of every service in the encoded `FileDescriptorSet`s (the same bytes given
    /// to tonic-reflection, e.g. `proto::FILE_DESCRIPTOR_SET`).
    pub fn from_descriptor_sets(sets: &[&[u8]]) -> anyhow::Result<Self> {
        let mut by_path = HashMap::new();
        for set in sets {
            let set = prost_types::FileDescriptorSet::decode(*set)
                .context("decoding a file descriptor set")?;
            for file in set.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let name = service.name.unwrap_or_default();
                    let full = if package.is_empty() {
                        name
                    } else {
                        format!("{package}.{name}")
                    };
                    let grpc_service = Arc::new(full.clone());
                    for method in service.method {
                        let method = method.name.unwrap_or_default();
                        by_path.insert(
                            format!("/{full}/{method}"),
                            MethodLabels {
                                grpc_service: grpc_service.clone(),
                                grpc_method: Arc::new(method),
                            },
                        );
                    }
                }
            }
        }
        Ok(Self {
            by_path: Arc::new(by_path),
            unknown: MethodLabels {
                grpc_service: Arc::new(UNKNOWN.to_owned()),
                grpc_method: Arc::new(UNKNOWN.to_owned()),
            },
        })
    }

    /// The methods in `sets` plus the standard services every server here runs: gRPC health
    /// and server reflection v1 and v1alpha.
    pub fn with_standard_services(sets: &[&[u8]]) -> anyhow::Result<Self> {
        let mut all = vec![
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        all.extend_from_slice(sets);
        Self::from_descriptor_sets(&all)
    }

    /// Whether `path` is a known method.
    pub fn contains(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }

    fn labels(&self, path: &str) -> MethodLabels {
        self.by_path.get(path).unwrap_or(&self.unknown).clone()
    }
}

/// The canonical upper-case name of a gRPC status code (`OK`, `UNAUTHENTICATED`, …), the label
/// value every metric here uses for codes.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The status of a gRPC response as far as its headers tell: `grpc-status` when present
/// (trailers-only errors), OK otherwise (see the module docs).
pub fn response_code(headers: &http::HeaderMap) -> Code {
    match headers.get("grpc-status") {
        None => Code::Ok,
        Some(value) => Code::from_bytes(value.as_bytes()),
    }
}

struct Instruments {
    handled: Family<(MethodLabels, CodeLabel), Counter>,
    latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    methods: KnownMethods,
}

/// Adds `grpc_server_handled_total` and `grpc_server_handling_seconds` to every wrapped
/// service. Cheap to clone; all clones share the same metrics.
#[derive(Clone)]
pub struct RpcMetricsLayer {
    instruments: Arc<Instruments>,
}

impl std::fmt::Debug for RpcMetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcMetricsLayer").finish_non_exhaustive()
    }
}

impl RpcMetricsLayer {
    /// Registers the RPC metrics in `registry`; `methods` are the paths labelled by name.
    pub fn new(registry: &mut Registry, methods: KnownMethods) -> Self {
        let handled = Family::default();
        let latency: Family<MethodLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(super::latency_histogram);
        registry.register(
            "grpc_server_handled",
            "gRPC calls completed, by service, method and status code",
            handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Time from request to response headers of gRPC calls, by service and method",
            latency.clone(),
        );
        Self {
            instruments: Arc::new(Instruments {
                handled,
                latency,
                methods,
            }),
        }
    }
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics {
            inner,
            instruments: self.instruments.clone(),
        }
    }
}

/// The service produced by [`RpcMetricsLayer`].
#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    instruments: Arc<Instruments>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for RpcMetrics<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcMetrics")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for RpcMetrics<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RpcMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let mut record = Record {
            labels: self.instruments.methods.labels(request.uri().path()),
            started: Instant::now(),
            instruments: self.instruments.clone(),
            done: false,
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            let code = match &result {
                Ok(response) => response_code(response.headers()),
                Err(_) => Code::Unknown,
            };
            record.finish(code);
            result
        })
    }
}

/// Records one call exactly once: when it completes, or as CANCELLED when dropped before.
struct Record {
    labels: MethodLabels,
    started: Instant,
    instruments: Arc<Instruments>,
    done: bool,
}

impl Record {
    fn finish(&mut self, code: Code) {
        if self.done {
            return;
        }
        self.done = true;
        let code = CodeLabel {
            grpc_code: code_name(code),
        };
        self.instruments
            .handled
            .get_or_create(&(self.labels.clone(), code))
            .inc();
        self.instruments
            .latency
            .get_or_create(&self.labels)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt as _;

    use super::*;

    fn methods() -> KnownMethods {
        KnownMethods::from_descriptor_sets(&[tonic_health::pb::FILE_DESCRIPTOR_SET])
            .expect("health descriptors decode")
    }

    #[test]
    fn the_standard_services_include_health_and_both_reflections() {
        let methods = KnownMethods::with_standard_services(&[]).expect("decode");
        assert!(methods.contains("/grpc.health.v1.Health/Check"));
        assert!(methods.contains("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"));
        assert!(methods.contains("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"));
    }

    #[test]
    fn known_methods_come_from_the_descriptor_set() {
        let methods = methods();
        assert!(methods.contains("/grpc.health.v1.Health/Check"));
        assert!(methods.contains("/grpc.health.v1.Health/Watch"));
        assert!(!methods.contains("/grpc.health.v1.Health/Nope"));
    }

    #[tokio::test]
    async fn calls_are_counted_by_method_and_code_and_unknown_paths_share_one_label() {
        let mut registry = Registry::default();
        let layer = RpcMetricsLayer::new(&mut registry, methods());
        let service = layer.layer(tower::service_fn(|request: http::Request<()>| async move {
            let mut response = http::Response::new(());
            if request.uri().path().ends_with("/Watch") {
                response
                    .headers_mut()
                    .insert("grpc-status", http::HeaderValue::from_static("16"));
            }
            Ok::<_, Infallible>(response)
        }));
        for path in [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/made.up.Service/Method1",
            "/made.up.Service/Method2",
        ] {
            let request = http::Request::builder()
                .uri(path)
                .body(())
                .expect("request");
            service.clone().oneshot(request).await.expect("infallible");
        }
        let text = super::super::encode(&registry);
        assert!(text.contains(
            r#"grpc_server_handled_total{grpc_service="grpc.health.v1.Health",grpc_method="Check",grpc_code="OK"} 2"#
        ), "{text}");
        assert!(text.contains(
            r#"grpc_server_handled_total{grpc_service="grpc.health.v1.Health",grpc_method="Watch",grpc_code="UNAUTHENTICATED"} 1"#
        ), "{text}");
        assert!(text.contains(
            r#"grpc_server_handled_total{grpc_service="unknown",grpc_method="unknown",grpc_code="OK"} 2"#
        ), "{text}");
        assert!(!text.contains("made.up"), "{text}");
        assert!(text.contains(
            r#"grpc_server_handling_seconds_count{grpc_service="grpc.health.v1.Health",grpc_method="Check"} 2"#
        ), "{text}");
    }

    #[tokio::test]
    async fn a_call_dropped_before_its_response_is_cancelled() {
        let mut registry = Registry::default();
        let layer = RpcMetricsLayer::new(&mut registry, methods());
        let mut service = layer.layer(tower::service_fn(|_: http::Request<()>| async {
            std::future::pending::<Result<http::Response<()>, Infallible>>().await
        }));
        let request = http::Request::builder()
            .uri("/grpc.health.v1.Health/Check")
            .body(())
            .expect("request");
        let future = service.call(request);
        drop(future);
        let text = super::super::encode(&registry);
        assert!(text.contains(r#"grpc_code="CANCELLED"} 1"#), "{text}");
    }
}
