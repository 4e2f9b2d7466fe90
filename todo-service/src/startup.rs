//! Wiring: [`App::build`] opens the database (running migrations), prepares the auth-service
//! channel and binds the listener; [`App::run_until`] serves until the shutdown future resolves,
//! then finishes in-flight RPCs. `/metrics` is served on `METRICS_LISTEN` alongside.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use grpc_server::{CodecErrorsLayer, reflection_servers};
use proto::todo::v1::todo_service_server::TodoServiceServer;
use telemetry::metrics::{KnownMethods, MetricsServer, Registry, RpcMetricsLayer};
use telemetry::trace::TraceContextLayer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tower_layer::Layer as _;

use crate::config::Config;
use crate::db::Pool;
use crate::error::Error;
use crate::metrics::TodoMetrics;
use crate::service::TodoApi;
use crate::session::SessionLayer;

/// Largest request message accepted (titles and descriptions are far smaller).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A todo-service ready to serve: database migrated, listener bound.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    pool: Pool,
    auth_channel: Channel,
    config: Config,
    rpc_metrics: RpcMetricsLayer,
    metrics: TodoMetrics,
    registry: Registry,
    metrics_server: MetricsServer,
}

impl App {
    /// Connects to the database (applying migrations) and binds `config.listen` (port 0 picks
    /// a free port). The auth-service channel connects lazily, so the service starts even if
    /// the auth-service is not up yet; until it is, RPCs answer UNAVAILABLE.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = Pool::connect(&config.database_url, usize::from(config.database_pool_size))
            .await
            .context("opening the todo database")?;
        let auth_channel = Channel::builder(config.auth_service_url.clone())
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy();
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;
        // One registry per App: several apps in one process keep their numbers apart.
        let mut registry = Registry::default();
        let rpc_metrics = RpcMetricsLayer::new(
            &mut registry,
            KnownMethods::with_standard_services(&[proto::FILE_DESCRIPTOR_SET])?,
        );
        let metrics = TodoMetrics::register(&mut registry, pool.clone());
        let metrics_server = MetricsServer::bind(config.metrics_listen).await?;
        tracing::info!(
            %local_addr,
            database = pool.backend(),
            auth_service = %config.auth_service_url,
            "todo-service ready"
        );
        Ok(Self {
            listener,
            local_addr,
            pool,
            auth_channel,
            config,
            rpc_metrics,
            metrics,
            registry,
            metrics_server,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the `/metrics` endpoint.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_server.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting and waits for in-flight RPCs.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<TodoServiceServer<TodoApi>>().await;

        // google.rpc.ErrorInfo and BadRequest, so grpcurl & co. can decode error details.
        let (reflection_v1, reflection_v1alpha) = reflection_servers(
            &[
                proto::FILE_DESCRIPTOR_SET,
                tonic_types::pb::FILE_DESCRIPTOR_SET,
            ],
            Some(&[
                "todo.v1.TodoService",
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            ]),
        )
        .context("building reflection")?;

        let api = TodoApi::new(self.pool, self.config.database_timeout());
        let todos = TodoServiceServer::new(api).max_decoding_message_size(MAX_MESSAGE_BYTES);
        let todos = CodecErrorsLayer::<Error>::new(MAX_MESSAGE_BYTES).layer(todos);
        // Only TodoService sits behind the session check: health and reflection stay open.
        let todos = SessionLayer::new(self.auth_channel, self.config.auth_timeout())
            .with_metrics(self.metrics)
            .layer(todos);

        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight RPCs");
            health.set_not_serving::<TodoServiceServer<TodoApi>>().await;
        };

        // Scrapes keep working while in-flight RPCs drain; the server stops after gRPC.
        let metrics_task = self.metrics_server.spawn(Arc::new(self.registry));
        Server::builder()
            // Outermost: every log line of an RPC is in its span (trace_id, method).
            .layer(TraceContextLayer::new())
            .layer(self.rpc_metrics)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(todos)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await
            .context("serving gRPC")?;
        metrics_task.stop().await?;
        tracing::info!("todo-service stopped");
        Ok(())
    }
}
