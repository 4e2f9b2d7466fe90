//! Integration tests of the todo-service: real servers on 127.0.0.1:0 (todo-service,
//! auth-service, Better Auth), real clients, one fresh database per test. Every test runs on
//! SQLite and on PostgreSQL (`<test>::on_sqlite`, `<test>::on_postgres`).

mod helpers;

mod auth_restart;
mod bad_input;
mod cross_user;
mod crud;
mod idempotency;
mod isolation;
mod logs;
mod observability;
mod outage;
mod pagination;
mod properties;
mod service_surface;
mod session;
mod validation;
