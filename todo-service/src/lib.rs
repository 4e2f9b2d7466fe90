//! `todo.v1.TodoService`: per-user todos, every RPC behind a Better Auth session check.
//!
//! Layout:
//! - [`config`]: flags and environment (`TODO_LISTEN`, `DATABASE_URL`, `AUTH_SERVICE_URL`, …).
//! - [`startup`]: [`startup::App::build`] connects and binds, `run_until` serves.
//! - [`session`]: the tower layer that validates the caller's session with the auth-service.
//! - [`service`]: the gRPC handlers; proto types stop here.
//! - [`domain`]: validated values (`UserId`, `TodoTitle`, `PageToken`, …).
//! - [`db`]: the connection pool (PostgreSQL or SQLite) and the query functions.
//! - [`error`]: the one error type and its mapping to gRPC statuses.
//! - [`metrics`]: session-check outcomes and database pool gauges (scraped at `METRICS_LISTEN`
//!   with the RPC metrics).

pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod service;
pub mod session;
pub mod startup;
