//! auth-service: `auth.v1.AuthService/ValidateSession`, which asks Better Auth whether a
//! browser's cookie is a live session. It never looks inside a token.
//!
//! Layout:
//! - [`config`]: flags and env (`AUTH_LISTEN`, `BETTER_AUTH_*`, `LOG_FORMAT`, `METRICS_LISTEN`), validated once;
//! - [`startup`]: `App::build` (bind, build the client) and `App::run_until` (serve, shut down);
//! - [`service`]: the tonic handler, the only place proto types appear;
//! - [`cookie`]: `SessionCookieFilter`, which keeps only Better Auth's cookies;
//! - [`better_auth`]: the pooled HTTP client for `GET /api/auth/get-session`;
//! - [`coalesce`]: `Coalescer`, which lets concurrent checks of one cookie share a get-session
//!   call sent after they arrived (never an older answer);
//! - [`metrics`]: ValidateSession outcomes, Better Auth latency, coalesced lookups (scraped at
//!   `METRICS_LISTEN` with the RPC metrics);
//! - [`error`]: the error enum and its one mapping to `tonic::Status` (also of tonic's refusals
//!   of undecodable or oversized messages, which `grpc_server::CodecErrorsLayer` hands it).

pub mod better_auth;
pub mod coalesce;
pub mod config;
pub mod cookie;
pub mod error;
pub mod metrics;
pub mod service;
pub mod startup;

pub use config::Config;
pub use startup::App;
