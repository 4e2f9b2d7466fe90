//! The auth-service's integration tests: one binary, so helpers compile once.
//! Real auth-service on 127.0.0.1:0, a real tonic client, a real Better Auth (testkit) for session
//! behaviour, and a stub HTTP server only where a fault must be injected.

mod bad_input;
mod coalescing;
mod faults;
mod health_and_reflection;
mod helpers;
mod observability;
mod sessions;
