//! The gateway binary: config → telemetry → `App::build` → `run_until` (Ctrl-C or SIGTERM).

use clap::Parser;
use gateway::{App, Config};
use grpc_server::shutdown_signal;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format);
    let app = App::build(config).await?;
    app.run_until(shutdown_signal()).await
}
