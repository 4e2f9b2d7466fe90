//! `cargo xtask test`: every check the project makes, in the order that fails fastest.
//!
//! PostgreSQL and the browser are optional on a developer's machine: without them their runs are
//! skipped and the summary says so plainly. CI sets `REQUIRE_POSTGRES=1` and `REQUIRE_BROWSER=1`,
//! under which a skip is a failure.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{deploy, npm, run_step};

/// Flags of `cargo xtask test`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Skip rustfmt and clippy (for a quick local loop; CI never does).
    #[arg(long)]
    skip_lint: bool,
    /// Skip the browser end-to-end test.
    #[arg(long)]
    skip_browser: bool,
}

const CHROMIUM: &str = "/usr/bin/chromium";

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let required = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());

    npm::ensure_installed("better-auth")?;
    npm::ensure_installed("web")?;

    if !args.skip_lint {
        run_step(Command::new(&cargo).args(["fmt", "--all", "--", "--check"]))?;
        run_step(Command::new(&cargo).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]))?;
    }

    // The gateway's tests and the browser test serve the built dashboard.
    run_step(
        Command::new("npm")
            .args(["run", "build"])
            .current_dir("web"),
    )?;

    let postgres = postgres_reachable();
    match (&postgres, required("REQUIRE_POSTGRES")) {
        (Ok(_), _) => {}
        (Err(why), true) => anyhow::bail!("REQUIRE_POSTGRES=1 but {why}"),
        (Err(why), false) => eprintln!(
            "\n!!! {why}: the PostgreSQL runs of the test suites will be SKIPPED \
             (set TEST_DATABASE_URL or start PostgreSQL to run them)"
        ),
    }

    run_step(Command::new(&cargo).args(["test", "--workspace", "--locked"]))?;

    // The service binaries: their `--help` is checked against the deployment files and docs,
    // and the browser test runs them.
    run_step(Command::new(&cargo).args([
        "build",
        "--locked",
        "-p",
        "auth-service",
        "-p",
        "todo-service",
        "-p",
        "gateway",
    ]))?;
    let bin_dir = crate::target_dir().join("debug");
    deploy::check(&bin_dir)?;

    let browser = Path::new(CHROMIUM).is_file();
    let browser_ran = if args.skip_browser {
        false
    } else if !browser && !required("REQUIRE_BROWSER") {
        eprintln!(
            "\n!!! {CHROMIUM} is not installed: the browser end-to-end test is SKIPPED \
             (apt-get install chromium to run it)"
        );
        false
    } else {
        run_step(
            Command::new("npm")
                .args(["run", "e2e"])
                .current_dir("web")
                .env("STACK_BIN_DIR", &bin_dir),
        )?;
        true
    };

    eprintln!("\n== cargo xtask test: all checks passed");
    eprintln!(
        "   lint: {}",
        if args.skip_lint {
            "SKIPPED (--skip-lint)"
        } else {
            "rustfmt + clippy -D warnings"
        }
    );
    eprintln!(
        "   PostgreSQL runs: {}",
        match &postgres {
            Ok(url) => format!("executed against {url}"),
            Err(_) => "SKIPPED (PostgreSQL not reachable)".to_owned(),
        }
    );
    eprintln!(
        "   browser end-to-end: {}",
        if browser_ran {
            "executed in Debian chromium"
        } else {
            "SKIPPED"
        }
    );
    Ok(())
}

/// The PostgreSQL server the tests will use (`TEST_DATABASE_URL`, else the local default), if a
/// TCP connection to it succeeds.
fn postgres_reachable() -> Result<String, String> {
    let url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let host_port = url
        .split('@')
        .next_back()
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432");
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    let reachable = host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    if reachable {
        Ok(host_port)
    } else {
        Err(format!("PostgreSQL is not reachable at {host_port}"))
    }
}
