//! testkit's integration tests: one binary, real Better Auth and real PostgreSQL.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod better_auth;
mod helpers;
mod postgres;
mod shared;
