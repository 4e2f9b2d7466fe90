//! `cargo xtask dev`: the whole stack on the defaults of DESIGN.md, with no configuration.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::process::Command;

use crate::stack::{Stack, wait_for_port};
use crate::{npm, run_step};

/// Flags of `cargo xtask dev`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Build and run release binaries.
    #[arg(long)]
    release: bool,
}

const BETTER_AUTH: &str = "127.0.0.1:3000";
const AUTH: &str = "127.0.0.1:50051";
const TODO: &str = "127.0.0.1:50052";
const GATEWAY: &str = "127.0.0.1:8080";

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    npm::ensure_installed("better-auth")?;
    npm::ensure_installed("web")?;
    run_step(
        std::process::Command::new("npm")
            .args(["run", "build"])
            .current_dir("web"),
    )?;

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = std::process::Command::new(&cargo);
    build.args([
        "build",
        "-p",
        "auth-service",
        "-p",
        "todo-service",
        "-p",
        "gateway",
    ]);
    if args.release {
        build.arg("--release");
    }
    run_step(&mut build)?;
    let bin_dir = crate::target_dir().join(if args.release { "release" } else { "debug" });

    tokio::runtime::Runtime::new()?.block_on(async move {
        let mut stack = Stack::default();
        let result = start(&mut stack, &bin_dir).await;
        match result {
            Ok(()) => {
                eprintln!(
                    "\n[xtask] the stack is up: open http://{GATEWAY}/ (sign up, then the dashboard)\n\
                     [xtask] gRPC: auth-service {AUTH}, todo-service {TODO}; Better Auth http://{BETTER_AUTH}\n\
                     [xtask] Ctrl-C stops everything"
                );
                // A process that exits (or is stopped on purpose, e.g. Better Auth to see the
                // services fail closed) leaves the others running until Ctrl-C.
                let ctrl_c = tokio::signal::ctrl_c();
                tokio::pin!(ctrl_c);
                loop {
                    tokio::select! {
                        _ = &mut ctrl_c => {
                            eprintln!("\n[xtask] Ctrl-C: stopping");
                            break;
                        }
                        exited = stack.next_exit() => {
                            eprintln!("[xtask] {exited}; the others keep running (Ctrl-C stops them)");
                        }
                    }
                }
            }
            Err(ref e) => eprintln!("[xtask] {e:#}"),
        }
        stack.shutdown().await;
        result
    })
}

async fn start(stack: &mut Stack, bin_dir: &std::path::Path) -> anyhow::Result<()> {
    let ready = Duration::from_secs(30);

    let mut better_auth = Command::new("node");
    better_auth
        .arg("server.mjs")
        .current_dir("better-auth")
        .env("PORT", "3000")
        .env(
            "TRUSTED_ORIGINS",
            format!("http://{GATEWAY},http://localhost:8080"),
        );
    stack.spawn("better-auth", better_auth)?;
    wait_for_port("Better Auth", BETTER_AUTH.parse::<SocketAddr>()?, ready).await?;

    stack.spawn("auth", Command::new(bin_dir.join("auth-service")))?;
    wait_for_port("auth-service", AUTH.parse()?, ready).await?;

    stack.spawn("todo", Command::new(bin_dir.join("todo-service")))?;
    wait_for_port("todo-service", TODO.parse()?, ready).await?;

    stack.spawn("gateway", Command::new(bin_dir.join("gateway")))?;
    wait_for_port("gateway", GATEWAY.parse()?, ready).await?;
    Ok(())
}
