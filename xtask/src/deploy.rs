//! Checks of the deployment files that need no Docker engine: `docker-compose.yml` against the
//! binaries' `--help` (env names, ports), the Dockerfile targets, healthchecks and dependencies;
//! and `docs/configuration.md` against every flag of every service.
//!
//! Run by `cargo xtask test` after the service binaries are built (their `--help` is the truth).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use serde_norway::Value;

/// The Rust services: compose build target = binary name.
const SERVICES: [&str; 3] = ["auth-service", "todo-service", "gateway"];

/// Read from the environment by the tracing filter rather than by a flag.
const ENV_WITHOUT_FLAG: [&str; 1] = ["RUST_LOG"];

/// Runs every check; `bin_dir` holds the built service binaries.
pub(crate) fn check(bin_dir: &Path) -> anyhow::Result<()> {
    let mut helps = BTreeMap::new();
    for service in SERVICES {
        let output = Command::new(bin_dir.join(service))
            .arg("--help")
            .output()
            .with_context(|| format!("running {service} --help"))?;
        if !output.status.success() {
            bail!("{service} --help failed");
        }
        helps.insert(
            service,
            String::from_utf8_lossy(&output.stdout).into_owned(),
        );
    }
    let checked = check_compose(&helps)?;
    let documented = check_configuration_docs(&helps)?;
    eprintln!(
        "\n==> deployment checks passed: docker-compose.yml ({checked} env names and ports checked \
         against --help, healthchecks, depends_on, Dockerfile targets); docs/configuration.md \
         ({documented} env names of {} services)",
        SERVICES.len()
    );
    Ok(())
}

/// The env names a `--help` text documents (`[env: NAME=` or `[env: NAME]`).
fn env_names(help: &str) -> Vec<String> {
    help.split("[env: ")
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find(['=', ']'])?;
            Some(rest[..end].to_owned())
        })
        .collect()
}

/// The default of the flag whose env is `env` in a `--help` text.
fn default_of(help: &str, env: &str) -> Option<String> {
    let after = help.split(&format!("[env: {env}")).nth(1)?;
    let default = after.split("[default: ").nth(1)?;
    Some(default[..default.find(']')?].to_owned())
}

fn check_compose(helps: &BTreeMap<&str, String>) -> anyhow::Result<usize> {
    let compose: Value = serde_norway::from_str(&std::fs::read_to_string("docker-compose.yml")?)
        .context("docker-compose.yml is not valid YAML")?;
    let dockerfile = std::fs::read_to_string("Dockerfile")?;
    let better_auth_source = std::fs::read_to_string("better-auth/server.mjs")?;
    let services = compose
        .get("services")
        .and_then(Value::as_mapping)
        .context("docker-compose.yml has no services")?;
    let mut problems = Vec::new();
    let mut checked = 0;

    for (name, service) in services {
        let name = name.as_str().unwrap_or_default();
        let optional = service.get("profiles").is_some();
        if !optional && service.get("healthcheck").is_none() {
            problems.push(format!("{name}: no healthcheck"));
        }
        if !optional && name != "gateway" && service.get("ports").is_some() {
            problems.push(format!("{name}: publishes ports (only the gateway should)"));
        }
        if let Some(deps) = service.get("depends_on").and_then(Value::as_mapping) {
            for (dep, condition) in deps {
                if condition.get("condition").and_then(Value::as_str) != Some("service_healthy") {
                    problems.push(format!(
                        "{name}: depends_on {dep:?} without condition: service_healthy"
                    ));
                }
            }
        }
        let env = service.get("environment").and_then(Value::as_mapping);
        let env_keys: Vec<&str> = env
            .map(|m| {
                m.keys()
                    .filter_map(Value::as_str)
                    .filter(|k| *k != "<<")
                    .collect()
            })
            .unwrap_or_default();

        if name == "better-auth" {
            for key in &env_keys {
                checked += 1;
                if *key != "NODE_ENV" && !better_auth_source.contains(&format!("process.env.{key}"))
                {
                    problems.push(format!(
                        "better-auth: {key} is not read by better-auth/server.mjs"
                    ));
                }
            }
            continue;
        }
        let Some(target) = service
            .get("build")
            .and_then(|b| b.get("target"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        if !dockerfile.contains(&format!(" AS {target}\n")) {
            problems.push(format!("{name}: Dockerfile has no stage named {target}"));
        }
        let Some(help) = helps.get(target) else {
            problems.push(format!(
                "{name}: build target {target} is not a known service"
            ));
            continue;
        };
        let known = env_names(help);
        for key in &env_keys {
            checked += 1;
            if !known.iter().any(|k| k == key) && !ENV_WITHOUT_FLAG.contains(key) {
                problems.push(format!("{name}: env {key} is not in `{target} --help`"));
            }
            if key.ends_with("_LISTEN") {
                let value = env
                    .and_then(|m| m.get(*key))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let default = default_of(help, key).unwrap_or_default();
                let port = |addr: &str| addr.rsplit(':').next().map(str::to_owned);
                if port(value) != port(&default) {
                    problems.push(format!(
                        "{name}: {key}={value} is not on the default port ({default})"
                    ));
                }
            }
        }
        if helps.contains_key(target) && service.get("healthcheck").is_none() {
            problems.push(format!("{name}: no healthcheck"));
        }
    }
    for service in SERVICES {
        let built = services.values().any(|s| {
            s.get("build")
                .and_then(|b| b.get("target"))
                .and_then(Value::as_str)
                == Some(service)
        });
        if !built {
            problems.push(format!("docker-compose.yml does not run {service}"));
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        bail!("docker-compose.yml:\n  {}", problems.join("\n  "))
    }
}

fn check_configuration_docs(helps: &BTreeMap<&str, String>) -> anyhow::Result<usize> {
    let docs = std::fs::read_to_string("docs/configuration.md")
        .context("docs/configuration.md is missing")?;
    let mut problems = Vec::new();
    let mut documented = 0;
    for (service, help) in helps {
        let section = docs
            .split("\n## ")
            .find(|s| s.starts_with(&format!("`{service}`")) || s.starts_with(service))
            .unwrap_or_default();
        if section.is_empty() {
            problems.push(format!("no `## {service}` section"));
            continue;
        }
        for env in env_names(help) {
            documented += 1;
            if !section.contains(&format!("`{env}`")) {
                problems.push(format!(
                    "{service}: `{env}` is in --help but not documented"
                ));
            }
        }
        // The other way round: every env the section documents must exist.
        for word in section.split('`').skip(1).step_by(2) {
            if looks_like_env_name(word)
                && !env_names(help).iter().any(|e| e == word)
                && !ENV_WITHOUT_FLAG.contains(&word)
            {
                problems.push(format!(
                    "{service}: `{word}` is documented but not in --help"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(documented)
    } else {
        bail!("docs/configuration.md:\n  {}", problems.join("\n  "))
    }
}

/// `AUTH_LISTEN`-shaped: starts with a capital letter, then capitals, digits and underscores.
fn looks_like_env_name(word: &str) -> bool {
    word.len() > 2
        && word.starts_with(|c: char| c.is_ascii_uppercase())
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "Options:\n      --listen <LISTEN>\n          Address [env: AUTH_LISTEN=] [default: 127.0.0.1:50051]\n      --log-format <F>\n          Format [env: LOG_FORMAT=] [default: pretty]\n";

    #[test]
    fn env_names_are_read_from_clap_help() {
        assert_eq!(env_names(HELP), vec!["AUTH_LISTEN", "LOG_FORMAT"]);
    }

    #[test]
    fn env_names_are_told_from_numbers_and_words() {
        assert!(looks_like_env_name("METRICS_LISTEN"));
        assert!(!looks_like_env_name("2000"));
        assert!(!looks_like_env_name("pretty"));
        assert!(!looks_like_env_name("OK"));
    }

    #[test]
    fn the_default_of_an_env_flag_is_found() {
        assert_eq!(
            default_of(HELP, "AUTH_LISTEN").as_deref(),
            Some("127.0.0.1:50051")
        );
        assert_eq!(default_of(HELP, "NOPE"), None);
    }
}
