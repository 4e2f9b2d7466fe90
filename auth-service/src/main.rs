//! The auth-service binary: config → telemetry → `App::build` → `run_until(Ctrl-C or SIGTERM)`.

use auth_service::{App, Config};
use clap::Parser;
use grpc_server::shutdown_signal;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format);
    let app = App::build(config).await?;
    app.run_until(shutdown_signal()).await
}
