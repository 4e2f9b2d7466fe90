//! Tracing set-up shared by every service: one call in `main`, before anything logs.
//!
//! Services log user ids, methods, statuses and reasons as structured fields. Cookies, tokens and
//! `Set-Cookie` values are never logged, so nothing here needs to redact them.
//!
//! Also here, because every service needs them: [`trace`] (W3C `traceparent` in and out, and
//! the per-request span that puts `trace_id` on every log line) and [`metrics`] (Prometheus
//! registry, the `/metrics` server, the RPC metrics layer).

pub mod metrics;
pub mod trace;

use tracing_subscriber::{
    EnvFilter, Layer, Registry, fmt, fmt::MakeWriter, layer::SubscriberExt, util::SubscriberInitExt,
};

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    #[default]
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber: `RUST_LOG` decides what is logged (default `info`), `format`
/// how. Safe to call more than once (later calls are ignored), so tests can call it freely.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(output_layer(format, std::io::stdout))
        .with(filter)
        .try_init();
}

/// The formatting layer for `format`, writing to `writer`. JSON lines carry the current span
/// (`span`) and every span in scope (`spans`), so the request span's `trace_id` is on every
/// line logged while a request runs.
fn output_layer<W>(format: LogFormat, writer: W) -> Box<dyn Layer<Registry> + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    match format {
        LogFormat::Pretty => fmt::layer().with_target(true).with_writer(writer).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(writer)
            .boxed(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn every_json_line_logged_in_a_request_carries_its_trace_id() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry()
            .with(output_layer(LogFormat::Json, captured.clone()))
            .with(EnvFilter::new("debug"));
        tracing::subscriber::with_default(subscriber, || {
            let mut request = http::Request::new(());
            request.headers_mut().insert(
                trace::TRACEPARENT,
                http::HeaderValue::from_static(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            );
            let span = trace::start_request_as(&mut request, "/todo.v1.TodoService/ListTodos");
            let _entered = span.enter();
            tracing::info!(user_id = "u1", "first");
            let inner = tracing::info_span!("db");
            inner.in_scope(|| tracing::warn!("nested"));
        });
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in lines {
            let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let spans = json["spans"].as_array().expect("span list");
            assert_eq!(
                spans[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
                "{line}"
            );
            assert_eq!(
                spans[0]["method"], "/todo.v1.TodoService/ListTodos",
                "{line}"
            );
        }
    }
}
