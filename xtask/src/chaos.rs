//! `cargo xtask chaos`: fault scenarios against the real stack (release builds, PostgreSQL).
//!
//! Starts Better Auth, two auth-services (one direct, one behind the [`FaultProxy`]), the
//! todo-service and the gateway on free ports, signs up users, then runs five scenarios under a
//! paced load of concurrent callers: (1) Better Auth killed and restarted, (2) Better Auth slow or
//! failing through the fault proxy, (3) the auth-service killed and restarted, (4) PostgreSQL
//! restarted under a CreateTodo load with idempotent retries, (5) SIGTERM of each Rust service.
//! Every call is recorded (start, end, status); the checks run on those records and on the
//! database afterwards. The table goes to stdout and to `--out`; the exit code is non-zero when
//! any scenario fails. Service logs go to `<out dir>/chaos-logs/`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prost::Message as _;
use proto::auth::v1::{ValidateSessionRequest, auth_service_client::AuthServiceClient};
use proto::todo::v1::{
    CreateTodoRequest, ListTodosRequest, Todo, todo_service_client::TodoServiceClient,
};
use telemetry::metrics::code_name;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tonic_types::StatusExt as _;

use crate::fault_proxy::{Fault, FaultProxy};
use crate::harness::{self, Databases};
use crate::npm;
use crate::stack::{Stack, free_port};

/// Flags of `cargo xtask chaos`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Run only these scenarios (1-5), comma-separated; all by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
    /// Skip scenario 4, which restarts the machine's PostgreSQL (shared by everyone on it).
    #[arg(long)]
    skip_postgres_restart: bool,
    /// PostgreSQL server for Better Auth and the todo-service (fresh databases are created on it;
    /// scenario 4 restarts the local cluster with `pg_ctlcluster`).
    #[arg(
        long,
        env = "CHAOS_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    postgres: String,
    /// `BETTER_AUTH_TIMEOUT_MS` given to the auth-services.
    #[arg(long, default_value_t = 1000)]
    better_auth_timeout_ms: u64,
    /// Concurrent callers per kind of call.
    #[arg(long, default_value_t = 8)]
    callers: usize,
    /// Where the markdown report is written (logs go to `chaos-logs/` beside it).
    #[arg(long, default_value = "bench-results/chaos.md")]
    out: PathBuf,
}

/// Slack on top of a configured timeout before a call counts as too slow (process wake-ups on a
/// busy 2-core machine, the todo hop, the client).
const MARGIN: Duration = Duration::from_millis(500);
/// A call without any answer after this long is recorded as hung.
const CALL_LIMIT: Duration = Duration::from_secs(15);
/// Pause between two calls of one caller: keeps the machine responsive so timings mean something.
const PAUSE: Duration = Duration::from_millis(10);
/// Load before a fault, so every connection is open and warm.
const WARM: Duration = Duration::from_millis(1500);
/// How long a killed process stays down.
const OUTAGE: Duration = Duration::from_secs(3);
/// How long recovery is watched after a process returns.
const WATCH: Duration = Duration::from_secs(4);
/// Recovery bound after Better Auth or the fault returns (issue 6: "within 2 s").
const RECOVERY: Duration = Duration::from_secs(2);
/// Recovery bound after the auth-service returns (no figure in the issue; the watch is 4 s).
const AUTH_RECOVERY: Duration = Duration::from_secs(3);
/// Other callers of a faulty auth-service (health, no cookie) must stay this fast.
const QUICK: Duration = Duration::from_millis(250);
/// The todo-service's default `AUTH_TIMEOUT_MS`: the bound of a todo call while auth is down.
const TODO_AUTH_TIMEOUT: Duration = Duration::from_millis(3000);
/// Allowed growth of the auth-service after the faults.
const RSS_GROWTH_KIB: u64 = 16 * 1024;
const FD_GROWTH: usize = 8;
/// A call started this shortly before a signal may not have reached the server yet.
const SIGNAL_RACE: Duration = Duration::from_millis(10);

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    npm::ensure_installed("better-auth")?;
    let bin_dir = harness::build_release()?;
    let out_dir = args
        .out
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let log_dir = out_dir.join("chaos-logs");
    let _ = std::fs::remove_dir_all(&log_dir);
    std::fs::create_dir_all(&log_dir)?;

    let started = Instant::now();
    let reports = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let databases = Databases::create(&args.postgres, "chaos").await?;
            let mut stack = Stack::logging_to(log_dir.clone());
            let result = scenarios(&mut stack, &databases, &args, &bin_dir, &log_dir).await;
            stack.shutdown().await;
            databases.drop_all().await;
            result
        })?;

    let report = render(&reports, &args, started.elapsed(), &log_dir);
    println!("{report}");
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(&args.out, &report)?;
    eprintln!("[chaos] written to {}", args.out.display());
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.name.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("chaos scenarios failed: {}", failed.join("; "))
    }
}

// ---------------------------------------------------------------------------------------------
// The stack under test

/// The running stack: ports, URLs, sessions, and how to (re)start each process.
struct World<'a> {
    stack: &'a mut Stack,
    bin_dir: &'a Path,
    postgres: &'a str,
    databases: &'a Databases,
    log_dir: &'a Path,
    timeout: Duration,
    callers: usize,
    ports: Ports,
    proxy: FaultProxy,
    http: reqwest::Client,
    cookies: Vec<String>,
}

struct Ports {
    better_auth: u16,
    auth: u16,
    auth_proxied: u16,
    todo: u16,
    gateway: u16,
}

fn grpc_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

impl World<'_> {
    fn better_auth_url(&self) -> String {
        grpc_url(self.ports.better_auth)
    }
    fn gateway_url(&self) -> String {
        grpc_url(self.ports.gateway)
    }

    async fn start_better_auth(&mut self) -> anyhow::Result<()> {
        let url = self.better_auth_url();
        let cmd = harness::better_auth_command(
            self.ports.better_auth,
            &url,
            &self.databases.url(0, self.postgres),
            &self.gateway_url(),
        );
        self.stack.spawn("better-auth", cmd)?;
        wait_listening("Better Auth", self.ports.better_auth).await
    }

    /// An auth-service called `name` on `port`, asking Better Auth at `better_auth_url`.
    async fn start_auth(
        &mut self,
        name: &str,
        port: u16,
        better_auth_url: &str,
    ) -> anyhow::Result<()> {
        let mut cmd = harness::auth_command(self.bin_dir, port, better_auth_url);
        cmd.env(
            "BETTER_AUTH_TIMEOUT_MS",
            self.timeout.as_millis().to_string(),
        );
        self.stack.spawn(name, cmd)?;
        wait_listening(name, port).await
    }

    async fn start_todo(&mut self, name: &str, port: u16, auth_port: u16) -> anyhow::Result<()> {
        let cmd = harness::todo_command(
            self.bin_dir,
            port,
            &self.databases.url(1, self.postgres),
            auth_port,
        );
        self.stack.spawn(name, cmd)?;
        wait_listening(name, port).await
    }

    async fn start_gateway(
        &mut self,
        name: &str,
        port: u16,
        auth_port: u16,
        todo_port: u16,
    ) -> anyhow::Result<()> {
        let url = self.better_auth_url();
        let cmd = harness::gateway_command(self.bin_dir, port, auth_port, todo_port, &url);
        self.stack.spawn(name, cmd)?;
        wait_listening(name, port).await
    }

    fn pid(&self, name: &str) -> anyhow::Result<u32> {
        self.stack
            .pid(name)
            .with_context(|| format!("{name} is not running"))
    }

    /// Byte offsets of every log file now, to pick out what a scenario logged.
    fn log_mark(&self) -> HashMap<PathBuf, u64> {
        std::fs::read_dir(self.log_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
            .collect()
    }
}

/// Waits (polling every 10 ms, so the moment is precise) until `port` accepts connections.
async fn wait_listening(name: &str, port: u16) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{name} did not listen on {addr} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn scenarios(
    stack: &mut Stack,
    databases: &Databases,
    args: &Args,
    bin_dir: &Path,
    log_dir: &Path,
) -> anyhow::Result<Vec<Report>> {
    let ports = Ports {
        better_auth: free_port()?,
        auth: free_port()?,
        auth_proxied: free_port()?,
        todo: free_port()?,
        gateway: free_port()?,
    };
    let proxy = FaultProxy::start(&grpc_url(ports.better_auth)).await?;
    let mut world = World {
        stack,
        bin_dir,
        postgres: &args.postgres,
        databases,
        log_dir,
        timeout: Duration::from_millis(args.better_auth_timeout_ms),
        callers: args.callers.max(2),
        ports,
        proxy,
        http: harness::http_client()?,
        cookies: Vec::new(),
    };
    world.start_better_auth().await?;
    let (auth, auth_proxied, todo, gateway) = (
        world.ports.auth,
        world.ports.auth_proxied,
        world.ports.todo,
        world.ports.gateway,
    );
    let direct = world.better_auth_url();
    world.start_auth("auth", auth, &direct).await?;
    let proxied = world.proxy.url();
    world
        .start_auth("auth-proxied", auth_proxied, &proxied)
        .await?;
    world.start_todo("todo", todo, auth).await?;
    world.start_gateway("gateway", gateway, auth, todo).await?;
    let users = world.callers;
    eprintln!("[chaos] stack up; signing up {users} users");
    for i in 0..users {
        let cookie = harness::sign_up(&world.http, &world.better_auth_url(), i).await?;
        world.cookies.push(cookie);
    }

    let wanted = |n: u8| args.only.is_empty() || args.only.contains(&n);
    let mut reports = Vec::new();
    if wanted(1) {
        reports.push(run_scenario(&mut world, 1, better_auth_killed).await);
    }
    if wanted(2) {
        reports.push(run_scenario(&mut world, 2, better_auth_faulty).await);
    }
    if wanted(3) {
        reports.push(run_scenario(&mut world, 3, auth_killed).await);
    }
    if wanted(4) {
        if args.skip_postgres_restart {
            let mut skipped = Report::new(4, "PostgreSQL restarted under a CreateTodo load");
            skipped.note("skipped (--skip-postgres-restart)");
            skipped.skipped = true;
            reports.push(skipped);
        } else {
            reports.push(run_scenario(&mut world, 4, postgres_restarted).await);
        }
    }
    if wanted(5) {
        reports.push(run_scenario(&mut world, 5, graceful_shutdown).await);
    }
    Ok(reports)
}

/// Runs one scenario; a harness error becomes a failed report with the error, so the others
/// still run (as long as the processes they need are up).
async fn run_scenario<F>(world: &mut World<'_>, number: u8, scenario: F) -> Report
where
    F: for<'w, 'x> AsyncFnOnce(&'w mut World<'x>, &'w mut Report) -> anyhow::Result<()>,
{
    let mark = world.log_mark();
    let mut report = Report::new(number, "");
    eprintln!("[chaos] scenario {number} starting");
    let started = Instant::now();
    if let Err(e) = scenario(world, &mut report).await {
        report.check(
            false,
            format!("the scenario ran to the end (harness error: {e:#})"),
        );
    }
    report.elapsed = started.elapsed();
    report.logs = interesting_log_lines(&mark, world.log_dir);
    eprintln!(
        "[chaos] scenario {number} {} in {:.1} s",
        if report.passed() { "passed" } else { "FAILED" },
        report.elapsed.as_secs_f64()
    );
    report
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// 1. Better Auth SIGKILLed under ValidateSession + ListTodos load, then restarted on the same
///    port and database.
async fn better_auth_killed(w: &mut World<'_>, r: &mut Report) -> anyhow::Result<()> {
    r.name = "Better Auth killed (SIGKILL) under load, restarted".to_owned();
    let c = w.callers;
    let load = Load::start(
        w,
        &[
            Plan::new(Op::Validate, grpc_url(w.ports.auth), c),
            Plan::new(Op::List, grpc_url(w.ports.todo), c),
            Plan::new(Op::WebList, w.gateway_url(), c / 2),
        ],
        "s1",
        0,
    )?;
    tokio::time::sleep(WARM).await;
    let kill_sent = Instant::now();
    w.stack.signal("better-auth", "KILL").await?;
    w.stack
        .wait_exit("better-auth", Duration::from_secs(5))
        .await?;
    let dead = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    let respawn = Instant::now();
    w.start_better_auth().await?;
    let back = Instant::now();
    r.note(format!(
        "Better Auth down for {:.2} s (SIGKILL to listening again), start-up took {:.2} s",
        (back - kill_sent).as_secs_f64(),
        (back - respawn).as_secs_f64()
    ));
    tokio::time::sleep(WATCH).await;
    let result = load.finish().await;
    r.record(&result);

    let before: Vec<&Call> = result.calls.iter().filter(|c| c.end < kill_sent).collect();
    r.expect_some_ok("calls before the kill", &before);
    let down: Vec<&Call> = result
        .calls
        .iter()
        .filter(|c| c.start >= dead && c.start < respawn)
        .collect();
    r.expect_all_unavailable("calls started after the kill until the restart", &down);
    let limit = w.timeout + MARGIN;
    let during: Vec<&Call> = result
        .calls
        .iter()
        .filter(|c| c.end >= kill_sent && c.start < back)
        .collect();
    r.expect_max_latency(
        &format!(
            "calls during the outage (BETTER_AUTH_TIMEOUT_MS {} + {} ms)",
            w.timeout.as_millis(),
            MARGIN.as_millis()
        ),
        &during,
        limit,
    );
    for op in [Op::Validate, Op::List, Op::WebList] {
        r.expect_recovery(
            op,
            &result.calls,
            back,
            RECOVERY,
            "Better Auth listens again",
        );
    }
    Ok(())
}

/// 2. Better Auth slow (delay), failing (500) and rate limiting (429) through the fault proxy.
async fn better_auth_faulty(w: &mut World<'_>, r: &mut Report) -> anyhow::Result<()> {
    r.name = "Better Auth slow / 500 / 429 (fault proxy)".to_owned();
    let c = w.callers;
    let target = grpc_url(w.ports.auth_proxied);
    let pid = w.pid("auth-proxied")?;
    let requests_before = w.proxy.requests();
    let load = Load::start(
        w,
        &[
            Plan::new(Op::Validate, target.clone(), c),
            Plan::new(Op::ValidateNoCookie, target.clone(), 2),
            Plan::new(Op::Health, target, 2),
        ],
        "s2",
        0,
    )?;
    tokio::time::sleep(WARM + Duration::from_millis(500)).await;
    let baseline = Resources::sample(pid);
    let mut peak = baseline;
    let mut windows = Vec::new();
    let faults = [
        Fault::Delay(w.timeout * 3),
        Fault::ServerError,
        Fault::TooManyRequests,
    ];
    for fault in faults {
        w.proxy.set(fault);
        let from = Instant::now();
        // Several timeouts' worth, sampling the process as it goes.
        for _ in 0..6 {
            tokio::time::sleep(w.timeout / 2).await;
            peak = peak.max(Resources::sample(pid));
        }
        w.proxy.set(Fault::Pass);
        let to = Instant::now();
        windows.push((fault, from, to));
        tokio::time::sleep(RECOVERY).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = Resources::sample(pid);
    let result = load.finish().await;
    r.record(&result);

    let proxied = w.proxy.requests() - requests_before;
    r.check(
        proxied > 0,
        format!("the auth-service's Better Auth calls went through the proxy ({proxied} requests)"),
    );
    let valid: Vec<&Call> = result
        .calls
        .iter()
        .filter(|c| c.op == Op::Validate)
        .collect();
    let first_fault = windows.first().map(|w| w.1).unwrap_or_else(Instant::now);
    let before: Vec<&Call> = valid
        .iter()
        .copied()
        .filter(|c| c.end < first_fault)
        .collect();
    r.expect_some_ok("ValidateSession before the faults (proxy passing)", &before);
    let limit = w.timeout + MARGIN;
    for (fault, from, to) in &windows {
        let inside: Vec<&Call> = valid
            .iter()
            .copied()
            .filter(|c| c.start >= *from + SIGNAL_RACE && c.start + SIGNAL_RACE < *to)
            .collect();
        r.expect_all_unavailable(
            &format!("ValidateSession during '{}'", fault.label()),
            &inside,
        );
        r.expect_max_latency(
            &format!(
                "ValidateSession during '{}' (BETTER_AUTH_TIMEOUT_MS {} + {} ms)",
                fault.label(),
                w.timeout.as_millis(),
                MARGIN.as_millis()
            ),
            &inside,
            limit,
        );
        r.expect_recovery(
            Op::Validate,
            &result.calls,
            *to,
            RECOVERY,
            &format!("'{}' ends", fault.label()),
        );
    }
    let no_cookie: Vec<&Call> = result
        .calls
        .iter()
        .filter(|c| c.op == Op::ValidateNoCookie)
        .collect();
    let missing = no_cookie
        .iter()
        .filter(|c| c.outcome.label == "UNAUTHENTICATED:SESSION_MISSING")
        .count();
    r.check(
        !no_cookie.is_empty() && missing == no_cookie.len(),
        format!(
            "no-cookie ValidateSession answered UNAUTHENTICATED:SESSION_MISSING throughout: {missing} of {}",
            no_cookie.len()
        ),
    );
    let health: Vec<&Call> = result.calls.iter().filter(|c| c.op == Op::Health).collect();
    let serving = health.iter().filter(|c| c.outcome.is_ok()).count();
    r.check(
        !health.is_empty() && serving == health.len(),
        format!(
            "health check SERVING throughout: {serving} of {}",
            health.len()
        ),
    );
    let others: Vec<&Call> = no_cookie.iter().chain(health.iter()).copied().collect();
    r.expect_max_latency("health + no-cookie calls (other callers)", &others, QUICK);
    r.note(format!(
        "auth-service RSS {:.1} MiB before, peak {:.1}, after {:.1}; open fds {} before, peak {}, after {}",
        baseline.rss_kib as f64 / 1024.0,
        peak.rss_kib as f64 / 1024.0,
        after.rss_kib as f64 / 1024.0,
        baseline.fds,
        peak.fds,
        after.fds
    ));
    r.check(
        after.rss_kib <= baseline.rss_kib + RSS_GROWTH_KIB,
        format!(
            "auth-service RSS after the faults within {} MiB of before ({:+.1} MiB)",
            RSS_GROWTH_KIB / 1024,
            (after.rss_kib as f64 - baseline.rss_kib as f64) / 1024.0
        ),
    );
    r.check(
        after.fds <= baseline.fds + FD_GROWTH,
        format!(
            "auth-service open fds after the faults within {FD_GROWTH} of before ({} -> {})",
            baseline.fds, after.fds
        ),
    );
    Ok(())
}

/// 3. The auth-service SIGKILLed under ListTodos load (direct and through the gateway), then
///    restarted; the todo-service and gateway keep running.
async fn auth_killed(w: &mut World<'_>, r: &mut Report) -> anyhow::Result<()> {
    r.name = "auth-service killed (SIGKILL) under load, restarted".to_owned();
    let c = w.callers;
    let (todo_pid, gateway_pid) = (w.pid("todo")?, w.pid("gateway")?);
    let load = Load::start(
        w,
        &[
            Plan::new(Op::List, grpc_url(w.ports.todo), c),
            Plan::new(Op::WebList, w.gateway_url(), c / 2),
        ],
        "s3",
        0,
    )?;
    tokio::time::sleep(WARM).await;
    let kill_sent = Instant::now();
    w.stack.signal("auth", "KILL").await?;
    w.stack.wait_exit("auth", Duration::from_secs(5)).await?;
    let dead = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    let respawn = Instant::now();
    let (port, direct) = (w.ports.auth, w.better_auth_url());
    w.start_auth("auth", port, &direct).await?;
    let back = Instant::now();
    tokio::time::sleep(WATCH).await;
    let result = load.finish().await;
    r.record(&result);

    r.expect_some_ok(
        "calls before the kill",
        &result
            .calls
            .iter()
            .filter(|c| c.end < kill_sent)
            .collect::<Vec<_>>(),
    );
    let down: Vec<&Call> = result
        .calls
        .iter()
        .filter(|c| c.start >= dead && c.start < respawn)
        .collect();
    r.expect_all_unavailable("todo calls started while the auth-service was down", &down);
    let during: Vec<&Call> = result
        .calls
        .iter()
        .filter(|c| c.end >= kill_sent && c.start < back)
        .collect();
    r.expect_max_latency(
        "calls during the outage (todo AUTH_TIMEOUT_MS 3000 + 500 ms)",
        &during,
        TODO_AUTH_TIMEOUT + MARGIN,
    );
    for op in [Op::List, Op::WebList] {
        r.expect_recovery(
            op,
            &result.calls,
            back,
            AUTH_RECOVERY,
            "the auth-service listens again",
        );
    }
    let same = w.stack.pid("todo") == Some(todo_pid) && w.stack.pid("gateway") == Some(gateway_pid);
    r.check(
        same && process_alive(todo_pid) && process_alive(gateway_pid),
        "todo-service and gateway were not restarted (same pids, still running)",
    );
    Ok(())
}

/// 4. PostgreSQL restarted (once) under a CreateTodo load whose callers retry with the same
///    `request_id`; afterwards every acknowledged todo is stored exactly once.
async fn postgres_restarted(w: &mut World<'_>, r: &mut Report) -> anyhow::Result<()> {
    r.name = "PostgreSQL restarted under a CreateTodo load".to_owned();
    let c = w.callers;
    let todo_pid = w.pid("todo")?;
    let better_auth_pid = w.pid("better-auth")?;
    let load = Load::start(
        w,
        &[
            Plan::new(Op::Create, grpc_url(w.ports.todo), c),
            Plan::new(Op::WebCreate, w.gateway_url(), c / 2),
        ],
        "s4",
        WRITE_RETRIES,
    )?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let guard = PostgresGuard;
    let restart_sent = Instant::now();
    let restarted = guard.restart().await;
    let restart_done = Instant::now();
    r.note(format!(
        "pg_ctlcluster restart took {:.2} s",
        (restart_done - restart_sent).as_secs_f64()
    ));
    tokio::time::sleep(WATCH).await;
    let result = load.finish().await;
    drop(guard);
    restarted?;
    r.record(&result);

    let acked: Vec<&Write> = result
        .writes
        .iter()
        .filter(|w| w.todo_id.is_some())
        .collect();
    let errored = result.writes.len() - acked.len();
    r.expect_some_ok(
        "writes before the restart",
        &result
            .calls
            .iter()
            .filter(|c| c.end < restart_sent)
            .collect::<Vec<_>>(),
    );
    for op in [Op::Create, Op::WebCreate] {
        r.expect_recovery(
            op,
            &result.calls,
            restart_done,
            RECOVERY * 2,
            "pg_ctlcluster restart returns",
        );
    }
    let retried = result.writes.iter().filter(|w| w.attempts > 1).count();

    // Better Auth uses the same PostgreSQL: it must survive the restart too. If it did not, start
    // it again so the todo-service's own recovery (and the next scenario) can still be judged.
    let better_auth_alive = process_alive(better_auth_pid);
    r.check(
        better_auth_alive,
        "Better Auth survived the PostgreSQL restart (same process still running)",
    );
    if !better_auth_alive {
        let _ = w
            .stack
            .wait_exit("better-auth", Duration::from_secs(1))
            .await;
        w.start_better_auth().await?;
        r.note("Better Auth exited during the PostgreSQL restart; the harness started it again");
    }
    let probe = Load::start(
        w,
        &[
            Plan::new(Op::Create, grpc_url(w.ports.todo), 2),
            Plan::new(Op::WebCreate, w.gateway_url(), 1),
        ],
        "s4-probe",
        3,
    )?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let probe = probe.finish().await;
    let probe_acked: Vec<&Write> = probe
        .writes
        .iter()
        .filter(|w| w.todo_id.is_some())
        .collect();
    r.check(
        !probe.writes.is_empty() && probe_acked.len() == probe.writes.len(),
        format!(
            "the same todo-service process serves CreateTodo afterwards: {} of {} writes acknowledged{}",
            probe_acked.len(),
            probe.writes.len(),
            outcome_summary(&probe.calls.iter().collect::<Vec<_>>())
        ),
    );
    r.record(&probe);

    let stored = stored_todos(&w.databases.url(1, w.postgres), "s4-").await?;
    let mut rows_per_request: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, request_id) in &stored {
        rows_per_request.entry(request_id).or_default().push(id);
    }
    let duplicates = rows_per_request
        .values()
        .filter(|ids| ids.len() > 1)
        .count();
    let mut found = 0;
    let mut missing = Vec::new();
    for write in acked.iter().chain(&probe_acked) {
        match rows_per_request.get(write.request_id.as_str()) {
            Some(ids) if ids.len() == 1 && Some(ids[0]) == write.todo_id.as_deref() => found += 1,
            _ => missing.push(write.request_id.clone()),
        }
    }
    let errored_stored = result
        .writes
        .iter()
        .filter(|w| w.todo_id.is_none() && rows_per_request.contains_key(w.request_id.as_str()))
        .count();
    r.data = format!(
        "acked {} (+{} after), errored {errored} ({errored_stored} of them stored), retried {retried}, found {found}/{}, duplicates {duplicates}",
        acked.len(),
        probe_acked.len(),
        acked.len() + probe_acked.len()
    );
    r.check(
        !acked.is_empty() && missing.is_empty(),
        format!(
            "every acknowledged todo is in the database with the acknowledged id: {found} of {}{}",
            acked.len() + probe_acked.len(),
            sample_list(&missing)
        ),
    );
    r.check(
        duplicates == 0,
        format!(
            "no request_id stored twice ({} rows, {duplicates} request_ids with more than one)",
            stored.len()
        ),
    );
    r.check(
        w.stack.pid("todo") == Some(todo_pid) && process_alive(todo_pid),
        "todo-service was not restarted (same pid, still running)",
    );
    Ok(())
}

/// How often a writer retries one CreateTodo (same `request_id`) before giving up: with the
/// back-off below this covers about 10 s.
const WRITE_RETRIES: u32 = 25;

/// 5. SIGTERM of the gateway, the todo-service and the auth-service, each under load whose calls
///    are held ~300 ms by a slow Better Auth (the fault proxy), so calls are in flight.
async fn graceful_shutdown(w: &mut World<'_>, r: &mut Report) -> anyhow::Result<()> {
    r.name = "graceful shutdown (SIGTERM) of each Rust service under load".to_owned();
    let c = w.callers;
    // A second todo-service and gateway on the proxied auth-service, so the first ones stay.
    let (todo2, gateway2, auth2) = (free_port()?, free_port()?, w.ports.auth_proxied);
    w.start_todo("todo-2", todo2, auth2).await?;
    w.start_gateway("gateway-2", gateway2, auth2, todo2).await?;
    w.proxy.set(Fault::Delay(Duration::from_millis(300)));
    let half = (c / 2).max(1);
    let steps = [
        (
            "gateway-2",
            "gateway",
            vec![
                Plan::new(Op::WebList, grpc_url(gateway2), half),
                Plan::new(Op::WebCreate, grpc_url(gateway2), half),
            ],
        ),
        (
            "todo-2",
            "todo-service",
            vec![
                Plan::new(Op::List, grpc_url(todo2), half),
                Plan::new(Op::Create, grpc_url(todo2), half),
            ],
        ),
        (
            "auth-proxied",
            "auth-service",
            vec![Plan::new(Op::Validate, grpc_url(auth2), c)],
        ),
    ];
    let mut all = LoadResult::default();
    let mut data = Vec::new();
    for (process, label, plans) in steps {
        // Every call the stopped service handles makes exactly one Better Auth request through
        // the fault proxy (todo and gateway calls through their session check; each caller has
        // its own cookie and one call at a time, so nothing is coalesced): the server's count.
        let proxied_before = w.proxy.requests();
        let load = Load::start(w, &plans, &format!("s5-{process}"), 0)?;
        tokio::time::sleep(WARM).await;
        let signal_sent = Instant::now();
        w.stack.signal(process, "TERM").await?;
        let signalled = Instant::now();
        let status = w.stack.wait_exit(process, Duration::from_secs(20)).await?;
        let exited = Instant::now();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let result = load.finish().await;
        let handled = w.proxy.requests() - proxied_before;

        r.check(
            status.is_some_and(|s| s.success()),
            format!(
                "{label}: exited cleanly {:.2} s after SIGTERM ({})",
                (exited - signal_sent).as_secs_f64(),
                status.map_or("killed after 20 s".to_owned(), |s| s.to_string())
            ),
        );
        let in_flight = result
            .calls
            .iter()
            .filter(|c| c.start < signal_sent && c.end > signalled)
            .count();
        let before: Vec<&Call> = result
            .calls
            .iter()
            .filter(|c| c.start + SIGNAL_RACE < signal_sent)
            .collect();
        let failed_before: Vec<&Call> = before
            .iter()
            .copied()
            .filter(|c| !c.outcome.is_ok())
            .collect();
        r.check(
            in_flight > 0 && failed_before.is_empty(),
            format!(
                "{label}: calls started before SIGTERM completed OK ({in_flight} in flight at the signal; {} of {} not OK{})",
                failed_before.len(),
                before.len(),
                outcome_summary(&failed_before)
            ),
        );
        let after: Vec<&Call> = result
            .calls
            .iter()
            .filter(|c| c.start + SIGNAL_RACE >= signal_sent)
            .collect();
        // Calls our own client failed unsent (see `unsent_by_our_client`) are told apart only
        // with proof from the server side: it handled exactly as many calls as came back OK, so
        // none of them reached it. Without that proof they stay failures.
        let ok = result.calls.iter().filter(|c| c.outcome.is_ok()).count();
        let raced = after.iter().filter(|c| c.outcome.is_client_race()).count();
        let race_proven = raced > 0 && usize::try_from(handled).is_ok_and(|h| h == ok);
        if raced > 0 {
            r.check(
                race_proven,
                format!(
                    "{label}: {raced} refused before reaching the server (client-side race: the harness's tonic client reports a request it never sent as CANCELLED); the server handled {handled} calls, {ok} came back OK"
                ),
            );
        }
        let unclean: Vec<&Call> = after
            .iter()
            .copied()
            .filter(|c| !c.outcome.is_ok() && !c.outcome.is_unavailable())
            .filter(|c| !(race_proven && c.outcome.is_client_race()))
            .collect();
        let refused = after.iter().filter(|c| c.outcome.is_unavailable()).count();
        r.check(
            refused > 0 && unclean.is_empty(),
            format!(
                "{label}: calls started after SIGTERM were served or refused with UNAVAILABLE ({refused} refused, {} other{})",
                unclean.len(),
                outcome_summary(&unclean)
            ),
        );
        if !result.writes.is_empty() {
            let stored =
                stored_todos(&w.databases.url(1, w.postgres), &format!("s5-{process}-")).await?;
            let ids: HashMap<&str, &str> = stored
                .iter()
                .map(|(id, rq)| (rq.as_str(), id.as_str()))
                .collect();
            let acked: Vec<&Write> = result
                .writes
                .iter()
                .filter(|w| w.todo_id.is_some())
                .collect();
            let lost: Vec<String> = acked
                .iter()
                .filter(|w| ids.get(w.request_id.as_str()).copied() != w.todo_id.as_deref())
                .map(|w| w.request_id.clone())
                .collect();
            data.push(format!(
                "{label}: acked {}, found {}",
                acked.len(),
                acked.len() - lost.len()
            ));
            r.check(
                !acked.is_empty() && lost.is_empty(),
                format!(
                    "{label}: no acknowledged write lost ({} acked, {} missing{})",
                    acked.len(),
                    lost.len(),
                    sample_list(&lost)
                ),
            );
        }
        all.calls.extend(result.calls);
        all.writes.extend(result.writes);
    }
    w.proxy.set(Fault::Pass);
    r.record(&all);
    r.data = data.join("; ");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// Restarts the machine's PostgreSQL once, and makes sure it is running again when dropped
/// (also on an error or a panic in between).
struct PostgresGuard;

impl PostgresGuard {
    fn version() -> String {
        std::fs::read_dir("/etc/postgresql")
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .unwrap_or_else(|| "15".to_owned())
    }

    fn command(action: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new("pg_ctlcluster");
        cmd.args([
            "--skip-systemctl-redirect",
            &Self::version(),
            "main",
            action,
        ]);
        // Its own process group: a Ctrl-C of the harness must not stop it between stop and start.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd
    }

    async fn restart(&self) -> anyhow::Result<()> {
        eprintln!("[chaos] restarting PostgreSQL (pg_ctlcluster restart)");
        let status = tokio::task::spawn_blocking(|| Self::command("restart").status()).await??;
        anyhow::ensure!(status.success(), "pg_ctlcluster restart failed ({status})");
        Ok(())
    }
}

impl Drop for PostgresGuard {
    fn drop(&mut self) {
        let running = Self::command("status")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !running {
            eprintln!("[chaos] PostgreSQL is not running: starting it");
            let _ = Self::command("start").status();
        }
    }
}

/// `(id, request_id)` of every stored todo whose request_id starts with `prefix`, read directly
/// (retrying the connection for a while: PostgreSQL may just have restarted).
async fn stored_todos(url: &str, prefix: &str) -> anyhow::Result<Vec<(String, String)>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        match harness::connect(url).await {
            Ok(client) => break client,
            Err(e) if Instant::now() < deadline => {
                eprintln!("[chaos] waiting for PostgreSQL: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.context("reading the stored todos")),
        }
    };
    let rows = client
        .query(
            "SELECT id, request_id FROM todos WHERE starts_with(request_id, $1)",
            &[&prefix],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

// ---------------------------------------------------------------------------------------------
// Load

/// What one caller calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    Validate,
    ValidateNoCookie,
    Health,
    List,
    Create,
    WebList,
    WebCreate,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::Validate => "ValidateSession",
            Op::ValidateNoCookie => "ValidateSession (no cookie)",
            Op::Health => "Health.Check",
            Op::List => "ListTodos",
            Op::Create => "CreateTodo",
            Op::WebList => "grpc-web ListTodos",
            Op::WebCreate => "grpc-web CreateTodo",
        }
    }
}

/// `callers` concurrent callers of `op` against `target` (a gRPC URL, or the gateway's URL for
/// the grpc-web ops).
struct Plan {
    op: Op,
    target: String,
    callers: usize,
}

impl Plan {
    fn new(op: Op, target: String, callers: usize) -> Self {
        Self {
            op,
            target,
            callers,
        }
    }
}

/// How one call ended.
#[derive(Clone, Debug)]
struct Outcome {
    /// The gRPC status code; `None` when there was no gRPC answer at all.
    code: Option<Code>,
    /// Code, plus `:REASON` from `google.rpc.ErrorInfo` when present.
    label: String,
    /// The status message or transport error, for samples.
    detail: String,
}

impl Outcome {
    fn is_ok(&self) -> bool {
        self.code == Some(Code::Ok)
    }
    fn is_unavailable(&self) -> bool {
        self.code == Some(Code::Unavailable)
    }
    /// See [`unsent_by_our_client`]; still a failure unless a scenario proves otherwise.
    fn is_client_race(&self) -> bool {
        self.label == CLIENT_RACE
    }

    fn ok() -> Self {
        Self {
            code: Some(Code::Ok),
            label: "OK".to_owned(),
            detail: String::new(),
        }
    }

    fn from_status(status: &tonic::Status) -> Self {
        if unsent_by_our_client(status) {
            return Self {
                code: Some(status.code()),
                label: CLIENT_RACE.to_owned(),
                detail: error_chain(status),
            };
        }
        let reason = status
            .get_error_details()
            .error_info()
            .map(|info| info.reason.clone());
        let name = code_name(status.code());
        Self {
            code: Some(status.code()),
            label: match reason {
                Some(reason) => format!("{name}:{reason}"),
                None => name.to_owned(),
            },
            detail: status.message().to_owned(),
        }
    }

    fn transport(label: &str, detail: String) -> Self {
        Self {
            code: None,
            label: label.to_owned(),
            detail,
        }
    }
}

/// The label of a call our own tonic client failed without sending it (see
/// [`unsent_by_our_client`]).
const CLIENT_RACE: &str = "CANCELLED (refused before reaching the server: client-side race)";

/// Whether `status` is the CANCELLED that the harness's own tonic client makes up for a request
/// it never wrote. hyper's HTTP/2 client queues each request for its connection task; when the
/// connection stops taking requests (the server's graceful GOAWAY arriving is enough: h2 then
/// refuses new streams and hyper's dispatcher returns) the still-queued requests are handed back
/// as hyper `Canceled` ("connection closed", hyper 1.x `client/dispatch.rs` `Envelope::drop`;
/// "connection was not ready", `client/conn/http2.rs`), before any HEADERS frame was written.
/// tonic's Channel does not re-send them and maps them to CANCELLED (tonic 0.14
/// `Status::from_hyper_error`); hyper-util's pooled client (reqwest, our grpc-web callers)
/// re-sends them, which is why the gateway never shows this. A status a server sent carries no
/// Rust source error, so a hyper error in the chain is always our client's own.
fn unsent_by_our_client(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
        {
            return status.code() == Code::Cancelled;
        }
        source = error.source();
    }
    false
}

/// One recorded call.
#[derive(Clone, Debug)]
struct Call {
    op: Op,
    start: Instant,
    end: Instant,
    outcome: Outcome,
}

impl Call {
    fn latency(&self) -> Duration {
        self.end - self.start
    }
}

/// One CreateTodo as the client saw it, over all its attempts.
#[derive(Clone, Debug)]
struct Write {
    request_id: String,
    /// The id of the acknowledged todo; `None` when every attempt failed.
    todo_id: Option<String>,
    attempts: u32,
}

#[derive(Default)]
struct LoadResult {
    calls: Vec<Call>,
    writes: Vec<Write>,
}

/// Running callers; [`Load::finish`] stops them and collects what they recorded.
struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<LoadResult>>,
}

impl Load {
    /// Starts every plan's callers; caller `i` uses session `i % sessions`. CreateTodo callers
    /// retry a failed call up to `retries` times with the same `request_id` (`<tag>-<caller>-<n>`).
    fn start(world: &World<'_>, plans: &[Plan], tag: &str, retries: u32) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        let mut index = 0;
        for plan in plans {
            let conn = match plan.op {
                Op::WebList | Op::WebCreate => Conn::Web {
                    http: world.http.clone(),
                    base: plan.target.clone(),
                },
                _ => Conn::Grpc(Endpoint::from_shared(plan.target.clone())?.connect_lazy()),
            };
            for _ in 0..plan.callers {
                let caller = Caller {
                    op: plan.op,
                    conn: conn.clone(),
                    cookie: world.cookies[index % world.cookies.len()].clone(),
                    tag: format!("{tag}-{index}"),
                    retries,
                };
                index += 1;
                workers.push(tokio::spawn(caller.run(stop.clone())));
            }
        }
        Ok(Self { stop, workers })
    }

    async fn finish(self) -> LoadResult {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = LoadResult::default();
        for worker in self.workers {
            if let Ok(result) = worker.await {
                all.calls.extend(result.calls);
                all.writes.extend(result.writes);
            }
        }
        all
    }
}

#[derive(Clone)]
enum Conn {
    Grpc(Channel),
    Web { http: reqwest::Client, base: String },
}

struct Caller {
    op: Op,
    conn: Conn,
    cookie: String,
    tag: String,
    retries: u32,
}

impl Caller {
    async fn run(self, stop: Arc<AtomicBool>) -> LoadResult {
        let mut result = LoadResult::default();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let request_id = format!("{}-{n}", self.tag);
            let mut attempts = 0;
            loop {
                attempts += 1;
                let start = Instant::now();
                let (outcome, todo_id) =
                    match tokio::time::timeout(CALL_LIMIT, self.once(&request_id)).await {
                        Ok(answer) => answer,
                        Err(_) => (
                            Outcome::transport("no answer", format!("none within {CALL_LIMIT:?}")),
                            None,
                        ),
                    };
                let ok = outcome.is_ok();
                result.calls.push(Call {
                    op: self.op,
                    start,
                    end: Instant::now(),
                    outcome,
                });
                let writes = matches!(self.op, Op::Create | Op::WebCreate);
                if !writes {
                    break;
                }
                if ok || attempts > self.retries {
                    result.writes.push(Write {
                        request_id: request_id.clone(),
                        todo_id,
                        attempts,
                    });
                    break;
                }
                // Back-off 100, 200, ... 500 ms: about 10 s over 25 retries.
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempts.min(5)))).await;
            }
            tokio::time::sleep(PAUSE).await;
        }
        result
    }

    /// One call; for a CreateTodo that succeeded, also the new todo's id.
    async fn once(&self, request_id: &str) -> (Outcome, Option<String>) {
        match &self.conn {
            Conn::Grpc(channel) => self.grpc(channel.clone(), request_id).await,
            Conn::Web { http, base } => self.web(http, base, request_id).await,
        }
    }

    async fn grpc(&self, channel: Channel, request_id: &str) -> (Outcome, Option<String>) {
        let answer = match self.op {
            Op::Validate | Op::ValidateNoCookie => {
                let cookie = if self.op == Op::Validate {
                    self.cookie.clone()
                } else {
                    "theme=dark".to_owned()
                };
                AuthServiceClient::new(channel)
                    .validate_session(ValidateSessionRequest { cookie })
                    .await
                    .map(|_| None)
            }
            Op::Health => match HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
            {
                Ok(response) if response.get_ref().status() == ServingStatus::Serving => Ok(None),
                Ok(response) => {
                    return (
                        Outcome::transport(
                            "NOT_SERVING",
                            format!("{:?}", response.get_ref().status()),
                        ),
                        None,
                    );
                }
                Err(status) => Err(status),
            },
            Op::List => TodoServiceClient::new(channel)
                .list_todos(with_cookie(
                    tonic::Request::new(ListTodosRequest {
                        page_size: 10,
                        ..Default::default()
                    }),
                    &self.cookie,
                ))
                .await
                .map(|_| None),
            _ => TodoServiceClient::new(channel)
                .create_todo(with_cookie(
                    tonic::Request::new(CreateTodoRequest {
                        title: request_id.to_owned(),
                        request_id: request_id.to_owned(),
                        ..Default::default()
                    }),
                    &self.cookie,
                ))
                .await
                .map(|response| Some(response.into_inner().id)),
        };
        match answer {
            Ok(id) => (Outcome::ok(), id),
            Err(status) => (Outcome::from_status(&status), None),
        }
    }

    /// One unary grpc-web call (binary framing) as a browser makes it.
    async fn web(
        &self,
        http: &reqwest::Client,
        base: &str,
        request_id: &str,
    ) -> (Outcome, Option<String>) {
        let (path, body) = match self.op {
            Op::WebList => (
                "/todo.v1.TodoService/ListTodos",
                harness::grpc_web_frame(&ListTodosRequest {
                    page_size: 10,
                    ..Default::default()
                }),
            ),
            _ => (
                "/todo.v1.TodoService/CreateTodo",
                harness::grpc_web_frame(&CreateTodoRequest {
                    title: request_id.to_owned(),
                    request_id: request_id.to_owned(),
                    ..Default::default()
                }),
            ),
        };
        let response = http
            .post(format!("{base}{path}"))
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .header("origin", base)
            .header("cookie", &self.cookie)
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(e) if e.is_connect() => {
                return (
                    Outcome {
                        code: Some(Code::Unavailable),
                        label: "UNAVAILABLE (connection refused)".to_owned(),
                        detail: error_chain(&e),
                    },
                    None,
                );
            }
            Err(e) => return (Outcome::transport("transport error", error_chain(&e)), None),
        };
        let http_status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (header_status, message) = (header("grpc-status"), header("grpc-message"));
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => return (Outcome::transport("body error", error_chain(&e)), None),
        };
        let status = header_status.or_else(|| harness::trailer_status(&body));
        let code = status
            .as_deref()
            .and_then(|s| s.parse::<i32>().ok())
            .map(Code::from_i32);
        match code {
            Some(Code::Ok) => {
                let id = (self.op == Op::WebCreate)
                    .then(|| harness::first_message(&body).and_then(|m| Todo::decode(m).ok()))
                    .flatten()
                    .map(|todo| todo.id);
                (Outcome::ok(), id)
            }
            Some(code) => (
                Outcome {
                    code: Some(code),
                    label: code_name(code).to_owned(),
                    detail: percent_encoding::percent_decode_str(&message.unwrap_or_default())
                        .decode_utf8_lossy()
                        .into_owned(),
                },
                None,
            ),
            None => (
                Outcome::transport(
                    &format!("HTTP {} without grpc-status", http_status.as_u16()),
                    format!("{} bytes", body.len()),
                ),
                None,
            ),
        }
    }
}

fn with_cookie<T>(mut request: tonic::Request<T>, cookie: &str) -> tonic::Request<T> {
    if let Ok(value) = cookie.parse() {
        request.metadata_mut().insert("cookie", value);
    }
    request
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Resources {
    rss_kib: u64,
    fds: usize,
}

impl Resources {
    fn sample(pid: u32) -> Self {
        Self {
            rss_kib: harness::rss_of(pid).unwrap_or(0),
            fds: harness::open_fds(pid).unwrap_or(0),
        }
    }
    fn max(self, other: Self) -> Self {
        Self {
            rss_kib: self.rss_kib.max(other.rss_kib),
            fds: self.fds.max(other.fds),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks and the report

struct Check {
    passed: bool,
    text: String,
}

struct Report {
    number: u8,
    name: String,
    requests: usize,
    outcomes: BTreeMap<String, usize>,
    samples: BTreeMap<String, String>,
    data: String,
    checks: Vec<Check>,
    notes: Vec<String>,
    logs: Vec<String>,
    elapsed: Duration,
    skipped: bool,
}

impl Report {
    fn new(number: u8, name: &str) -> Self {
        Self {
            number,
            name: name.to_owned(),
            requests: 0,
            outcomes: BTreeMap::new(),
            samples: BTreeMap::new(),
            data: String::new(),
            checks: Vec::new(),
            notes: Vec::new(),
            logs: Vec::new(),
            elapsed: Duration::ZERO,
            skipped: false,
        }
    }

    fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    fn check(&mut self, passed: bool, text: impl Into<String>) {
        let text = text.into();
        eprintln!("[chaos]   {} {text}", if passed { "ok  " } else { "FAIL" });
        self.checks.push(Check { passed, text });
    }

    fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("[chaos]   note: {text}");
        self.notes.push(text);
    }

    fn record(&mut self, result: &LoadResult) {
        self.requests += result.calls.len();
        for call in &result.calls {
            *self.outcomes.entry(call.outcome.label.clone()).or_default() += 1;
            if !call.outcome.is_ok() {
                self.samples
                    .entry(format!("{} {}", call.op.label(), call.outcome.label))
                    .or_insert_with(|| call.outcome.detail.clone());
            }
        }
    }

    fn expect_some_ok(&mut self, what: &str, calls: &[&Call]) {
        let ok = calls.iter().filter(|c| c.outcome.is_ok()).count();
        self.check(
            ok > 0 && ok == calls.len(),
            format!(
                "{what} were OK: {ok} of {}{}",
                calls.len(),
                outcome_summary(calls)
            ),
        );
    }

    fn expect_all_unavailable(&mut self, what: &str, calls: &[&Call]) {
        let unavailable = calls.iter().filter(|c| c.outcome.is_unavailable()).count();
        let ok = calls.iter().filter(|c| c.outcome.is_ok()).count();
        self.check(
            !calls.is_empty() && unavailable == calls.len(),
            format!(
                "{what} were UNAVAILABLE: {unavailable} of {} ({ok} OK){}",
                calls.len(),
                outcome_summary(calls)
            ),
        );
    }

    fn expect_max_latency(&mut self, what: &str, calls: &[&Call], limit: Duration) {
        let mut latencies: Vec<Duration> = calls.iter().map(|c| c.latency()).collect();
        latencies.sort();
        let max = latencies.last().copied().unwrap_or_default();
        let p50 = latencies
            .get(latencies.len() / 2)
            .copied()
            .unwrap_or_default();
        let over = latencies.iter().filter(|l| **l > limit).count();
        self.check(
            !calls.is_empty() && over == 0,
            format!(
                "{what}: max {} ms ≤ {} ms (p50 {} ms, {} calls, {over} over)",
                max.as_millis(),
                limit.as_millis(),
                p50.as_millis(),
                calls.len()
            ),
        );
    }

    /// The first OK `op` call that ended after `since` did so within `bound`.
    fn expect_recovery(
        &mut self,
        op: Op,
        calls: &[Call],
        since: Instant,
        bound: Duration,
        event: &str,
    ) {
        let first = calls
            .iter()
            .filter(|c| c.op == op && c.outcome.is_ok() && c.end >= since)
            .map(|c| c.end)
            .min();
        match first {
            Some(end) => {
                let took = end - since;
                self.check(
                    took <= bound,
                    format!(
                        "{}: first OK {} ms after {event} (bound {} ms)",
                        op.label(),
                        took.as_millis(),
                        bound.as_millis()
                    ),
                );
            }
            None => self.check(false, format!("{}: no OK at all after {event}", op.label())),
        }
    }
}

/// " [LABEL n, ...]" for the non-OK outcomes among `calls` (empty when all OK).
fn outcome_summary(calls: &[&Call]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for call in calls.iter().filter(|c| !c.outcome.is_ok()) {
        *counts.entry(call.outcome.label.as_str()).or_default() += 1;
    }
    if counts.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = counts.iter().map(|(l, n)| format!("{l} {n}")).collect();
    format!(" [{}]", parts.join(", "))
}

fn sample_list(items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let shown: Vec<&str> = items.iter().take(5).map(String::as_str).collect();
    format!(" (e.g. {})", shown.join(", "))
}

/// WARN/ERROR/panic lines the processes logged since `mark`, ANSI colours removed.
fn interesting_log_lines(mark: &HashMap<PathBuf, u64>, log_dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let Ok(entries) = std::fs::read_dir(log_dir) else {
        return lines;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let from = mark.get(&path).copied().unwrap_or(0) as usize;
        let text = String::from_utf8_lossy(bytes.get(from..).unwrap_or_default());
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut picked = 0;
        let mut more = 0;
        for line in text.lines().map(strip_ansi) {
            if ["WARN", "ERROR", "Error:", "panicked", "Unhandled"]
                .iter()
                .any(|word| line.contains(word))
            {
                if picked < 6 {
                    let short: String = line.chars().take(300).collect();
                    lines.push(format!("[{name}] {short}"));
                    picked += 1;
                } else {
                    more += 1;
                }
            }
        }
        if more > 0 {
            lines.push(format!("[{name}] … {more} more WARN/ERROR lines"));
        }
    }
    lines
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn render(reports: &[Report], args: &Args, elapsed: Duration, log_dir: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## cargo xtask chaos ({} callers per kind, BETTER_AUTH_TIMEOUT_MS {}, {:.0} s in all)\n",
        args.callers,
        args.better_auth_timeout_ms,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| scenario | requests | outcomes by status | data checks | result |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for r in reports {
        let outcomes: Vec<String> = r.outcomes.iter().map(|(l, n)| format!("{l} {n}")).collect();
        let passed = r.checks.iter().filter(|c| c.passed).count();
        let data = if r.data.is_empty() {
            format!("{passed}/{} checks", r.checks.len())
        } else {
            format!("{}; {passed}/{} checks", r.data, r.checks.len())
        };
        let result = if r.skipped {
            "SKIPPED"
        } else if r.passed() {
            "pass"
        } else {
            "**FAIL**"
        };
        let _ = writeln!(
            out,
            "| {}. {} | {} | {} | {} | {result} |",
            r.number,
            r.name,
            r.requests,
            outcomes.join(", "),
            data
        );
    }
    for r in reports {
        let _ = writeln!(
            out,
            "\n### {}. {} ({:.1} s)\n",
            r.number,
            r.name,
            r.elapsed.as_secs_f64()
        );
        for check in &r.checks {
            let _ = writeln!(
                out,
                "- {} {}",
                if check.passed { "ok" } else { "**FAIL**" },
                check.text
            );
        }
        for note in &r.notes {
            let _ = writeln!(out, "- note: {note}");
        }
        if !r.samples.is_empty() {
            let _ = writeln!(
                out,
                "\nnon-OK samples (first message per call and outcome):\n"
            );
            for (what, detail) in &r.samples {
                let detail: String = detail.chars().take(200).collect();
                let _ = writeln!(out, "- {what}: `{detail}`");
            }
        }
        if !r.passed() && !r.logs.is_empty() {
            let _ = writeln!(
                out,
                "\nservice log lines (WARN/ERROR) during the scenario:\n\n```"
            );
            for line in &r.logs {
                let _ = writeln!(out, "{line}");
            }
            let _ = writeln!(out, "```");
        }
    }
    let _ = writeln!(
        out,
        "\nEach caller pauses {} ms between calls; a call counts from just before the client sends \
         it to its answer. Full service logs: `{}`.",
        PAUSE.as_millis(),
        log_dir.display()
    );
    out
}
