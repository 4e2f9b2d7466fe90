//! Test harness shared by every crate's integration tests: real parts, started on demand.
//!
//! Layout:
//! - [`better_auth`]: starts the real Better Auth server (`better-auth/server.mjs`, Node) on a
//!   free port with its own database, signs users up/in/out, and captures its logs.
//! - [`postgres`]: creates a fresh PostgreSQL database per test and drops it afterwards; skips
//!   (returns `None`) when PostgreSQL is not running, unless `REQUIRE_POSTGRES=1`.
//! - [`free_port`]: a port on 127.0.0.1 that was free a moment ago.

pub mod better_auth;
pub mod postgres;

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Returns a TCP port on 127.0.0.1 that was free when this was called.
///
/// The port is released before returning, so another process can take it in between: prefer
/// binding `127.0.0.1:0` yourself when the code under test accepts a listener.
///
/// # Panics
///
/// When the OS cannot bind any port on 127.0.0.1 (no loopback: nothing else would work either).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|error| panic!("cannot bind 127.0.0.1:0: {error}"));
    listener
        .local_addr()
        .unwrap_or_else(|error| panic!("cannot read the bound address: {error}"))
        .port()
}

/// `{nanos}-{counter}`: unique within this process, and across runs thanks to the clock.
pub(crate) fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{nanos}-{counter}")
}
