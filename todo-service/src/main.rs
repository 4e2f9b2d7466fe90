//! The todo-service binary: config → telemetry → `App::build` → `run_until(ctrl-c or SIGTERM)`.

use clap::Parser as _;
use grpc_server::shutdown_signal;
use todo_service::config::Config;
use todo_service::startup::App;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format);
    let app = App::build(config).await?;
    app.run_until(shutdown_signal()).await
}
