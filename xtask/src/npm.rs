//! Installs a Node package folder's dependencies with `npm ci` when they are missing or stale.

use std::path::Path;
use std::process::Command;

use crate::run_step;

/// Runs `npm ci` in `dir` unless `node_modules` is at least as new as `package-lock.json`.
pub(crate) fn ensure_installed(dir: &str) -> anyhow::Result<()> {
    let dir = Path::new(dir);
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules/.package-lock.json");
    let fresh = match (modified(&lock), modified(&installed)) {
        (Some(lock), Some(installed)) => installed >= lock,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    which("npm").map_err(|_| {
        anyhow::anyhow!("npm is not installed: install Node.js 20 and npm, then run this again")
    })?;
    run_step(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir),
    )
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Fails when `program` is not on PATH.
pub(crate) fn which(program: &str) -> anyhow::Result<()> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        anyhow::bail!("`{program}` is not on PATH")
    }
}
