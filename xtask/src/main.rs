//! Project automation, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! Layout: `test` runs every check CI runs, `dev` runs the whole stack on the defaults,
//! `stack` starts and stops the processes (shared by `dev` and the harnesses), `npm` installs
//! the Node packages a step needs; `bench` and `chaos` measure the stack (their shared pieces in
//! `harness`, the fault-injecting proxy in `fault_proxy`).

mod bench;
mod chaos;
mod deploy;
mod dev;
mod fault_proxy;
mod harness;
mod npm;
mod stack;
mod test;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Run, test and measure the stack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Better Auth, the auth-service, the todo-service and the gateway (with the built
    /// dashboard) on the default ports until Ctrl-C.
    Dev(dev::Args),
    /// Benchmark the chain side by side on one Better Auth (release builds, PostgreSQL).
    Bench(bench::Args),
    /// Fault scenarios on the real stack (Better Auth, auth-service and PostgreSQL killed or
    /// restarted, a slow or failing Better Auth, SIGTERM under load); fails if any check fails.
    Chaos(chaos::Args),
    /// Check docker-compose.yml, the Dockerfiles and docs/configuration.md against the
    /// services' `--help` (part of `test`; no Docker engine needed).
    CheckDeploy,
    /// Run every check: rustfmt, clippy -D warnings, the web build, all Rust tests (SQLite and
    /// PostgreSQL) and the browser end-to-end test.
    Test(test::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    std::env::set_current_dir(workspace_root())?;
    match cli.command {
        Command::Bench(args) => bench::run(args),
        Command::Chaos(args) => chaos::run(args),
        Command::CheckDeploy => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            run_step(std::process::Command::new(cargo).args([
                "build",
                "-p",
                "auth-service",
                "-p",
                "todo-service",
                "-p",
                "gateway",
            ]))?;
            deploy::check(&target_dir().join("debug"))
        }
        Command::Dev(args) => dev::run(args),
        Command::Test(args) => test::run(args),
    }
}

/// The repository root (the parent of this crate's folder).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where cargo puts build output: `CARGO_TARGET_DIR` when set, else `target/` in the workspace.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Runs a command to completion, echoing it first; fails with the command line when it fails.
pub(crate) fn run_step(cmd: &mut std::process::Command) -> anyhow::Result<()> {
    eprintln!("\n==> {}", describe(cmd));
    let status = cmd
        .status()
        .map_err(|e| anyhow::anyhow!("could not start `{}`: {e}", describe(cmd)))?;
    if !status.success() {
        anyhow::bail!("`{}` failed ({status})", describe(cmd));
    }
    Ok(())
}

fn describe(cmd: &std::process::Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    if let Some(dir) = cmd.get_current_dir() {
        line.push_str(&format!("   (in {})", dir.display()));
    }
    line
}
