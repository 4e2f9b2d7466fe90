//! Building and running the auth-service: `App::build` validates the config, binds the listener
//! and builds the Better Auth client; `run_until` serves gRPC (AuthService, health, reflection
//! v1 + v1alpha) until the shutdown future completes, and `/metrics` on `METRICS_LISTEN`.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use grpc_server::{CodecErrorsLayer, reflection_servers};
use proto::auth::v1::auth_service_server::AuthServiceServer;
use telemetry::{
    metrics::{KnownMethods, MetricsServer, Registry, RpcMetricsLayer},
    trace::TraceContextLayer,
};
use tokio::net::TcpListener;
use tonic::transport::{Server, server::TcpIncoming};

use crate::{
    better_auth::BetterAuthClient, config::Config, cookie::SessionCookieFilter, error::Error,
    metrics::AuthMetrics, service::AuthApi,
};

/// The largest request message decoded (tonic's default, stated). A cookie over 8 KiB is refused
/// with `COOKIE_TOO_LARGE` after decoding; a message over this limit is RESOURCE_EXHAUSTED.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// A bound, ready-to-serve auth-service.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    api: AuthApi,
    rpc_metrics: RpcMetricsLayer,
    metrics: AuthMetrics,
    registry: Registry,
    metrics_server: MetricsServer,
}

impl App {
    /// Validates `config`, binds `config.listen` (port 0 picks a free port) and builds the one
    /// pooled Better Auth client. Better Auth itself need not be up yet: it is asked per request.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        config
            .validate()
            .map_err(|problem| anyhow::anyhow!("invalid configuration: {problem}"))?;
        // One registry per App: several apps in one process keep their numbers apart.
        let mut registry = Registry::default();
        let rpc_metrics = RpcMetricsLayer::new(
            &mut registry,
            KnownMethods::with_standard_services(&[proto::FILE_DESCRIPTOR_SET])?,
        );
        let metrics = AuthMetrics::register(&mut registry);
        let better_auth =
            BetterAuthClient::new(&config.better_auth_url, config.better_auth_timeout)?
                .with_metrics(metrics.clone());
        let api = AuthApi::new(
            SessionCookieFilter::new(&config.better_auth_cookie_prefix),
            better_auth,
        )
        .with_metrics(metrics.clone())
        .with_coalescing(config.coalesce);
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {} (AUTH_LISTEN)", config.listen))?;
        let local_addr = listener.local_addr()?;
        let metrics_server = MetricsServer::bind(config.metrics_listen).await?;
        Ok(App {
            listener,
            local_addr,
            api,
            rpc_metrics,
            metrics,
            registry,
            metrics_server,
        })
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the `/metrics` endpoint.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_server.local_addr()
    }

    /// The service's own metrics (e.g. for request coalescing to call
    /// [`AuthMetrics::coalesced_hit`]); the same handles the handler records into.
    pub fn metrics(&self) -> &AuthMetrics {
        &self.metrics
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight calls finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<AuthServiceServer<AuthApi>>()
            .await;
        // `proto::FILE_DESCRIPTOR_SET` also holds `todo.v1`, so the advertised services are named
        // explicitly (otherwise `grpcurl list` would show TodoService here). google.rpc.ErrorInfo
        // & co., so clients like grpcurl can decode error details.
        let (reflection_v1, reflection_v1alpha) = reflection_servers(
            &[
                proto::FILE_DESCRIPTOR_SET,
                tonic_types::pb::FILE_DESCRIPTOR_SET,
            ],
            Some(&["auth.v1.AuthService", "grpc.health.v1.Health"]),
        )?;

        tracing::info!(addr = %self.local_addr, "auth-service listening");
        // Health says NOT_SERVING before the drain starts (as the todo-service does); tonic then
        // closes the listener and sends each connection a two-phase GOAWAY.
        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight calls");
            health_reporter
                .set_not_serving::<AuthServiceServer<AuthApi>>()
                .await;
        };
        // Scrapes keep working while in-flight calls drain; the server stops after gRPC.
        let metrics_task = self.metrics_server.spawn(Arc::new(self.registry));
        Server::builder()
            // Outermost: every log line of a call, including the RPC metrics', is in its span.
            .layer(TraceContextLayer::new())
            .layer(self.rpc_metrics)
            // Innermost, so the RPC metrics count the contract's code, not tonic's.
            .layer(CodecErrorsLayer::<Error>::new(MAX_MESSAGE_BYTES))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                AuthServiceServer::new(self.api).max_decoding_message_size(MAX_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await
            .context("the gRPC server failed")?;
        metrics_task.stop().await?;
        tracing::info!("auth-service stopped");
        Ok(())
    }
}
