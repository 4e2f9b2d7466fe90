//! Building and running the gateway: `App::build` validates the config, binds the listener
//! (port 0 works) and creates the shared upstream channels and HTTP client; `run_until` serves
//! HTTP/1.1 and h2c on the one port until `shutdown` resolves, then drains connections; `/metrics`
//! is served on `METRICS_LISTEN` alongside.

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use telemetry::metrics::{KnownMethods, MetricsServer, Registry, RpcMetricsLayer};
use tokio::{net::TcpListener, sync::Semaphore};
use tonic::{
    service::Routes,
    transport::{Channel, Endpoint},
};
use tonic_web::GrpcWebLayer;
use tower::{Layer, util::BoxCloneSyncService};
use tracing::Instrument as _;

use crate::{
    auth_proxy::AuthProxy,
    config::Config,
    grpc::{GrpcRouter, Upstreams},
    metrics::GatewayMetrics,
    origin::OriginPolicy,
    service::Gateway,
    web::Web,
};

/// How long a client may take to send a request head (slow-loris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Node closes idle keep-alive connections after 5 s; drop ours first.
const BETTER_AUTH_POOL_IDLE: Duration = Duration::from_secs(4);

/// A bound, ready-to-run gateway.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    gateway: Arc<Gateway>,
    max_header_bytes: usize,
    registry: Registry,
    metrics_server: MetricsServer,
}

impl App {
    /// Validates `config`, binds the listener and prepares the upstream clients. Upstreams are
    /// connected lazily, so the gateway starts (and reports errors per call) while they are down.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let timeout = config.request_timeout();
        let upstreams = Upstreams {
            todo: channel(&config.todo_service_url, timeout)?,
            auth: channel(&config.auth_service_url, timeout)?,
        };
        let policy = OriginPolicy::new(config.origin_values()?, config.trust_forwarded_proto);

        let (_health_reporter, health) = tonic_health::server::health_reporter();
        // Every service in the descriptor set: the gateway forwards them all.
        let (reflection_v1, reflection_v1alpha) =
            grpc_server::reflection_servers(&[proto::FILE_DESCRIPTOR_SET], None)
                .context("building the reflection services")?;
        let local = Routes::new(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .prepare();

        // One registry per App: several apps in one process keep their numbers apart.
        let mut registry = Registry::default();
        let rpc_metrics = RpcMetricsLayer::new(
            &mut registry,
            KnownMethods::with_standard_services(&[proto::FILE_DESCRIPTOR_SET])?,
        );
        let metrics = GatewayMetrics::register(&mut registry);
        let router = GrpcRouter::new(
            upstreams.clone(),
            local,
            policy.clone(),
            timeout,
            config.max_body_bytes,
            metrics,
        );
        // RPC metrics sit inside grpc-web translation, where a trailers-only error's
        // `grpc-status` is still a response header.
        let grpc = BoxCloneSyncService::new(
            policy
                .cors_layer()
                .layer(GrpcWebLayer::new().layer(rpc_metrics.layer(router))),
        );

        // reqwest is built without a default TLS provider; installing one twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .pool_idle_timeout(BETTER_AUTH_POOL_IDLE)
            .build()
            .context("building the Better Auth HTTP client")?;

        let gateway = Arc::new(Gateway {
            grpc,
            web: Web::new(config.web_dir.clone(), upstreams.auth, timeout),
            auth_proxy: AuthProxy::new(http, &config.better_auth_url, policy),
            permits: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            max_body_bytes: config.max_body_bytes,
        });

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let metrics_server = MetricsServer::bind(config.metrics_listen).await?;
        tracing::info!(
            %local_addr,
            todo_service = %config.todo_service_url,
            auth_service = %config.auth_service_url,
            better_auth = %config.better_auth_url,
            web_dir = %config.web_dir.display(),
            "gateway ready"
        );
        Ok(Self {
            listener,
            local_addr,
            gateway,
            max_header_bytes: config.max_header_bytes,
            registry,
            metrics_server,
        })
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the `/metrics` endpoint.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_server.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives open connections up to
    /// ten seconds to finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(self.max_header_bytes);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX));

        // Scrapes keep working while connections drain; the server stops after them.
        let metrics_task = self.metrics_server.spawn(Arc::new(self.registry));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY");
            }
            let gateway = self.gateway.clone();
            let service = hyper::service::service_fn(move |mut req| {
                let gateway = gateway.clone();
                // Before anything else: every log line of the request carries its trace id,
                // and only the validated (or new) `traceparent` goes any further.
                // Named by a loggable path: Better Auth paths can carry tokens.
                let route = crate::auth_proxy::loggable_path(req.uri().path()).into_owned();
                let span = telemetry::trace::start_request_as(&mut req, &route);
                async move { Ok::<_, Infallible>(gateway.handle(peer, req).await) }.instrument(span)
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, error = %error, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        tracing::info!("shutting down, draining connections");
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the drain timeout");
        }
        metrics_task.stop().await
    }
}

fn channel(url: &str, timeout: Duration) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("invalid upstream URL {url:?}"))?
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .tcp_nodelay(true)
        .connect_lazy())
}
