//! The gateway: the browsers' single origin in front of the gRPC services.
//!
//! Layout:
//! - `config`: flags and environment, validated at startup.
//! - `startup`: `App::build` (bind, channels, clients) and `App::run_until` (HTTP/1.1 + h2c).
//! - `service`: per-request entry point; limits, then gRPC stack or HTTP routes.
//! - `grpc`: generic forwarding by service prefix, local health/reflection, header allowlist.
//! - `origin`: the CSRF rule for cookie-carrying calls and the CORS layer.
//! - `web`: `/login`, `/dashboard` (one session check) and the built dashboard's files.
//! - `auth_proxy`: `/api/auth/*` reverse proxy to Better Auth.
//! - `limits`: the request body cap. `request_body`: what of a request body goes upstream.
//! - `error`: the gateway's own errors as gRPC statuses.
//! - `metrics`: forwarded calls by upstream and status, CSRF refusals (scraped at
//!   `METRICS_LISTEN` with the RPC metrics). Every request runs in a span carrying its W3C
//!   trace id (`telemetry::trace`); the validated `traceparent` is what goes upstream.

pub mod config;
pub mod error;
pub mod startup;

mod auth_proxy;
mod grpc;
mod limits;
mod metrics;
mod origin;
mod request_body;
mod service;
mod web;

pub use config::Config;
pub use startup::App;
