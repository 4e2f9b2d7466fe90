//! Gateway integration tests: real gateway on 127.0.0.1:0, a recording tonic upstream, a real
//! Better Auth (testkit) for the `/api/auth` proxy, hand-written grpc-web requests.

#![allow(clippy::unwrap_used)]

mod auth_proxy;
mod bad_requests;
mod chain;
mod cookies_and_heads;
mod dashboard;
mod grpc_web;
mod headers;
mod identity;
mod limits;
mod log_scan;
mod malformed_frames;
mod observability;
mod origin;
mod preflight;

pub mod helpers;
