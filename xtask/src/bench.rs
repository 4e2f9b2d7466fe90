//! `cargo xtask bench`: the whole chain side by side on one Better Auth, on PostgreSQL.
//!
//! Builds release binaries, starts Better Auth, the auth-service, the todo-service and the gateway
//! on free ports, signs up users, then runs a closed-loop load generator against each target:
//! (A) Better Auth get-session direct, (B) ValidateSession, (C) ListTodos on the todo-service,
//! (D) ListTodos as grpc-web through the gateway, (E) CreateTodo through the gateway. Every
//! non-OK answer is counted and reported. The table goes to stdout and to `--out`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use prost::Message;
use proto::auth::v1::{ValidateSessionRequest, auth_service_client::AuthServiceClient};
use proto::todo::v1::{
    CreateTodoRequest, ListTodosRequest, todo_service_client::TodoServiceClient,
};
use tonic::transport::Channel;

use crate::harness::{self, Databases, grpc_web_frame, rss_kib, sign_up, trailer_status};
use crate::npm;
use crate::stack::{Stack, free_port, wait_for_port};

/// Flags of `cargo xtask bench`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Short runs (2 s per cell, fewer users) that finish in under a minute.
    #[arg(long)]
    quick: bool,
    /// Seconds of load per cell (after a short warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent callers, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Distinct signed-up users (sessions).
    #[arg(long, default_value_t = 64)]
    users: usize,
    /// Parallel calls per session in the "page load" rows.
    #[arg(long, default_value_t = 8)]
    per_session: usize,
    /// PostgreSQL server for Better Auth and the todo-service (fresh databases are created on it).
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    postgres: String,
    /// Where the markdown table is written.
    #[arg(long, default_value = "bench-results/bench.md")]
    out: PathBuf,
    /// Pass `--coalesce=false` to the auth-service.
    #[arg(long)]
    no_coalesce: bool,
    /// Targets to run, comma-separated: a (get-session), b (ValidateSession), c (ListTodos), d
    /// (gateway ListTodos), e (gateway CreateTodo). The ratio columns need (a).
    #[arg(long, value_delimiter = ',', default_value = "a,b,c,d,e")]
    targets: Vec<Target>,
    /// Runs every cell this many times, interleaved; each row then covers all its rounds (so a
    /// slow minute of the machine is spread over all targets instead of hitting one).
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Runtime worker threads of each Rust service (`TOKIO_WORKER_THREADS`); unset, tokio's
    /// default of one per core.
    #[arg(long)]
    service_threads: Option<usize>,
}

/// One load target.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    #[value(name = "a", alias = "get-session")]
    GetSession,
    #[value(name = "b", alias = "validate-session")]
    ValidateSession,
    #[value(name = "c", alias = "list-todos")]
    ListTodos,
    #[value(name = "d", alias = "gateway-list-todos")]
    GatewayListTodos,
    #[value(name = "e", alias = "gateway-create-todo")]
    GatewayCreateTodo,
}

impl Target {
    const ALL: [Target; 5] = [
        Target::GetSession,
        Target::ValidateSession,
        Target::ListTodos,
        Target::GatewayListTodos,
        Target::GatewayCreateTodo,
    ];

    fn label(self) -> &'static str {
        match self {
            Target::GetSession => "(A) Better Auth get-session",
            Target::ValidateSession => "(B) auth ValidateSession",
            Target::ListTodos => "(C) todo ListTodos",
            Target::GatewayListTodos => "(D) gateway grpc-web ListTodos",
            Target::GatewayCreateTodo => "(E) gateway grpc-web CreateTodo",
        }
    }
}

/// Addresses and credentials of the running stack.
struct Env {
    better_auth: String,
    auth: Channel,
    todo: Channel,
    gateway: String,
    http: reqwest::Client,
    cookies: Vec<String>,
    /// Each Rust service's `/metrics` port.
    metrics: [(&'static str, u16); 3],
    /// The todo-service's database, to put the data set back after CreateTodo cells.
    todos: tokio_postgres::Client,
}

impl Env {
    /// Removes the todos CreateTodo cells added (and vacuums their dead rows away), so every
    /// ListTodos cell lists the same data set (each user's seeded todos) whatever ran before it.
    async fn reset_todos(&self) -> anyhow::Result<()> {
        self.todos
            .batch_execute(&format!(
                "DELETE FROM todos WHERE title LIKE '{CREATED_PREFIX}%'"
            ))
            .await
            .context("removing the todos CreateTodo cells added")?;
        // VACUUM refuses to run inside the implicit transaction of a multi-statement query.
        self.todos
            .batch_execute("VACUUM ANALYZE todos")
            .await
            .context("vacuuming the todos table")?;
        Ok(())
    }
}

/// Title prefix of the todos CreateTodo cells add.
const CREATED_PREFIX: &str = "bench ";

/// One measured cell.
struct Row {
    target: Target,
    callers: usize,
    sessions: usize,
    histogram: Histogram<u64>,
    ok: u64,
    errors: u64,
    elapsed: Duration,
    cpu: Vec<(String, f64)>,
}

impl Row {
    /// Adds another round of the same cell: latencies and counts add up, CPU is averaged over
    /// the time measured.
    fn merge(&mut self, other: Row) {
        let _ = self.histogram.add(&other.histogram);
        self.ok += other.ok;
        self.errors += other.errors;
        let (mine, theirs) = (self.elapsed.as_secs_f64(), other.elapsed.as_secs_f64());
        for ((_, cores), (_, more)) in self.cpu.iter_mut().zip(other.cpu) {
            *cores = (*cores * mine + more * theirs) / (mine + theirs).max(f64::EPSILON);
        }
        self.elapsed += other.elapsed;
    }

    fn rps(&self) -> f64 {
        (self.ok + self.errors) as f64 / self.elapsed.as_secs_f64()
    }
    fn ms(&self, q: f64) -> f64 {
        self.histogram.value_at_quantile(q) as f64 / 1000.0
    }
}

pub(crate) fn run(mut args: Args) -> anyhow::Result<()> {
    if args.quick {
        args.duration = args.duration.min(2);
        args.users = args.users.min(32);
    }
    npm::ensure_installed("better-auth")?;
    let bin_dir = harness::build_release()?;

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let databases = Databases::create(&args.postgres, "bench").await?;
            let mut stack = Stack::default();
            let result = async {
                let (env, pids) = start(&mut stack, &bin_dir, &databases, &args).await?;
                let idle = rss_kib(&pids);
                let mut report = measure(&env, &pids, &args).await?;
                let after = rss_kib(&pids);
                report.push_str(&scrape_metrics(&env).await);
                let _ = writeln!(report, "\n| process | RSS idle (after start-up and sign-ups) MiB | RSS after the load MiB |\n|---|---|---|");
                for ((name, idle), (_, after)) in idle.iter().zip(after) {
                    let _ = writeln!(report, "| {name} | {:.1} | {:.1} |", *idle as f64 / 1024.0, after as f64 / 1024.0);
                }
                anyhow::Ok(report)
            }
            .await;
            stack.shutdown().await;
            databases.drop_all().await;
            let report = result?;
            println!("{report}");
            if let Some(dir) = args.out.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&args.out, &report)?;
            eprintln!("[bench] written to {}", args.out.display());
            Ok(())
        })
}

/// Load on every target before the first measured cell.
const WARM_UP: Duration = Duration::from_secs(2);

/// Process ids of the stack, by name, for CPU accounting.
type Pids = Vec<(String, u32)>;

async fn start(
    stack: &mut Stack,
    bin_dir: &std::path::Path,
    databases: &Databases,
    args: &Args,
) -> anyhow::Result<(Env, Pids)> {
    let ready = Duration::from_secs(30);
    let [ba_port, auth_port, todo_port, gw_port] =
        [free_port()?, free_port()?, free_port()?, free_port()?];
    let metrics_ports = [free_port()?, free_port()?, free_port()?];
    let metrics_env = |port: u16| format!("127.0.0.1:{port}");
    let better_auth = format!("http://127.0.0.1:{ba_port}");
    let gateway = format!("http://127.0.0.1:{gw_port}");

    stack.spawn(
        "better-auth",
        harness::better_auth_command(
            ba_port,
            &better_auth,
            &databases.url(0, &args.postgres),
            &gateway,
        ),
    )?;
    wait_for_port("Better Auth", ([127, 0, 0, 1], ba_port).into(), ready).await?;

    let mut cmd = harness::auth_command(bin_dir, auth_port, &better_auth);
    cmd.env("METRICS_LISTEN", metrics_env(metrics_ports[0]));
    if args.no_coalesce {
        cmd.arg("--coalesce=false");
    }
    with_threads(&mut cmd, args);
    stack.spawn("auth", cmd)?;
    wait_for_port("auth-service", ([127, 0, 0, 1], auth_port).into(), ready).await?;

    let todo_db = databases.url(1, &args.postgres);
    let mut cmd = harness::todo_command(bin_dir, todo_port, &todo_db, auth_port);
    cmd.env("METRICS_LISTEN", metrics_env(metrics_ports[1]));
    with_threads(&mut cmd, args);
    stack.spawn("todo", cmd)?;
    wait_for_port("todo-service", ([127, 0, 0, 1], todo_port).into(), ready).await?;

    let mut cmd = harness::gateway_command(bin_dir, gw_port, auth_port, todo_port, &better_auth);
    cmd.env("METRICS_LISTEN", metrics_env(metrics_ports[2]));
    with_threads(&mut cmd, args);
    stack.spawn("gateway", cmd)?;
    wait_for_port("gateway", ([127, 0, 0, 1], gw_port).into(), ready).await?;

    let pids = stack.pids();
    let http = harness::http_client()?;
    let auth = Channel::from_shared(format!("http://127.0.0.1:{auth_port}"))?
        .connect()
        .await?;
    let todo = Channel::from_shared(format!("http://127.0.0.1:{todo_port}"))?
        .connect()
        .await?;

    eprintln!("[bench] signing up {} users", args.users);
    let mut cookies = Vec::with_capacity(args.users);
    for i in 0..args.users {
        cookies.push(sign_up(&http, &better_auth, i).await?);
    }
    let env = Env {
        better_auth,
        auth,
        todo,
        gateway,
        http,
        cookies,
        metrics: [
            ("auth-service", metrics_ports[0]),
            ("todo-service", metrics_ports[1]),
            ("gateway", metrics_ports[2]),
        ],
        todos: harness::connect(&todo_db).await?,
    };
    // A few todos per user, so ListTodos returns a realistic page.
    for cookie in &env.cookies {
        for n in 0..5 {
            let mut client = TodoServiceClient::new(env.todo.clone());
            let mut request = tonic::Request::new(CreateTodoRequest {
                title: format!("seed {n}"),
                ..Default::default()
            });
            request.metadata_mut().insert("cookie", cookie.parse()?);
            client.create_todo(request).await.context("seeding todos")?;
        }
    }
    Ok((env, pids))
}

/// Passes `--service-threads` on to a Rust service.
fn with_threads(cmd: &mut tokio::process::Command, args: &Args) {
    if let Some(threads) = args.service_threads {
        cmd.env("TOKIO_WORKER_THREADS", threads.to_string());
    }
}

async fn measure(env: &Env, pids: &Pids, args: &Args) -> anyhow::Result<String> {
    let duration = Duration::from_secs(args.duration);
    let chosen = |target: &Target| args.targets.contains(target);
    // (target, callers, sessions) of every cell, in the order they run.
    let mut cells = Vec::new();
    for target in Target::ALL.into_iter().filter(chosen) {
        for &callers in &args.concurrency {
            cells.push((target, callers, callers.min(env.cookies.len())));
        }
    }
    // A dashboard page load: several parallel calls per session.
    let per = args.per_session.max(1);
    let callers = *args.concurrency.iter().max().unwrap_or(&64);
    let sessions = (callers / per).clamp(1, env.cookies.len());
    for target in [
        Target::GetSession,
        Target::ValidateSession,
        Target::GatewayListTodos,
    ]
    .into_iter()
    .filter(chosen)
    {
        cells.push((target, sessions * per, sessions));
    }

    // Node compiles its hot paths during the first seconds of load: warm every process up
    // before the first cell, so (A), which runs first, is not measured on a cold Better Auth.
    eprintln!("[bench] warming up");
    let warm_up = if args.quick { WARM_UP / 4 } else { WARM_UP };
    for target in Target::ALL.into_iter().filter(chosen) {
        drive(env, target, 16, 16.min(env.cookies.len()), warm_up).await;
    }
    env.reset_todos().await?;

    let mut rows: Vec<Row> = Vec::new();
    for round in 1..=args.rounds.max(1) {
        if args.rounds > 1 {
            eprintln!("[bench] round {round} of {}", args.rounds);
        }
        for (index, &(target, callers, sessions)) in cells.iter().enumerate() {
            let row = run_cell(env, pids, target, callers, sessions, duration, args.quick).await?;
            if target == Target::GatewayCreateTodo {
                env.reset_todos().await?;
            }
            match rows.get_mut(index) {
                Some(total) => total.merge(row),
                None => rows.push(row),
            }
        }
    }
    Ok(report(&rows, args))
}

async fn run_cell(
    env: &Env,
    pids: &Pids,
    target: Target,
    callers: usize,
    sessions: usize,
    duration: Duration,
    quick: bool,
) -> anyhow::Result<Row> {
    // Warm-up: connections open, caches of the processes warm.
    let warmup = Duration::from_millis(if quick { 250 } else { 500 });
    drive(env, target, callers, sessions, warmup).await;

    let before = cpu_ticks(pids);
    let started = Instant::now();
    let (histogram, ok, errors) = drive(env, target, callers, sessions, duration).await;
    let elapsed = started.elapsed();
    let after = cpu_ticks(pids);
    let cpu = cores_used(&before, &after, elapsed);
    let row = Row {
        target,
        callers,
        sessions,
        histogram,
        ok,
        errors,
        elapsed,
        cpu,
    };
    eprintln!(
        "[bench] {} c={} sessions={}: p50 {:.2} ms, p95 {:.2} ms, {:.0} req/s, {} errors",
        target.label(),
        callers,
        sessions,
        row.ms(0.5),
        row.ms(0.95),
        row.rps(),
        errors
    );
    Ok(row)
}

/// Runs `callers` closed-loop workers for `duration`; worker `i` uses session `i % sessions`.
async fn drive(
    env: &Env,
    target: Target,
    callers: usize,
    sessions: usize,
    duration: Duration,
) -> (Histogram<u64>, u64, u64) {
    let deadline = Instant::now() + duration;
    let errors_seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::with_capacity(callers);
    for i in 0..callers {
        let cookie = env.cookies[i % sessions.max(1)].clone();
        let call = Caller::new(env, target, cookie);
        let errors_seen = errors_seen.clone();
        workers.push(tokio::spawn(async move {
            let mut histogram = new_histogram();
            let (mut ok, mut errors, mut n) = (0u64, 0u64, 0u64);
            while Instant::now() < deadline {
                let start = Instant::now();
                let result = call.once(n).await;
                let micros = start.elapsed().as_micros() as u64;
                histogram.saturating_record(micros.max(1));
                n += 1;
                match result {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        errors += 1;
                        if let Ok(mut seen) = errors_seen.lock() {
                            if seen.len() < 3 {
                                seen.push(e);
                            }
                        }
                    }
                }
            }
            (histogram, ok, errors)
        }));
    }
    let mut total = new_histogram();
    let (mut ok, mut errors) = (0, 0);
    for worker in workers {
        if let Ok((h, o, e)) = worker.await {
            let _ = total.add(h);
            ok += o;
            errors += e;
        }
    }
    if let Ok(seen) = errors_seen.lock() {
        for e in seen.iter() {
            eprintln!("[bench]   error sample ({}): {e}", target.label());
        }
    }
    (total, ok, errors)
}

/// Microseconds from 1 µs to 60 s at 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

/// What one worker calls, with its session's cookie.
struct Caller {
    target: Target,
    cookie: String,
    http: reqwest::Client,
    better_auth: String,
    gateway: String,
    auth: AuthServiceClient<Channel>,
    todo: TodoServiceClient<Channel>,
}

impl Caller {
    fn new(env: &Env, target: Target, cookie: String) -> Self {
        Self {
            target,
            cookie,
            http: env.http.clone(),
            better_auth: env.better_auth.clone(),
            gateway: env.gateway.clone(),
            auth: AuthServiceClient::new(env.auth.clone()),
            todo: TodoServiceClient::new(env.todo.clone()),
        }
    }

    async fn once(&self, n: u64) -> Result<(), String> {
        match self.target {
            Target::GetSession => {
                let response = self
                    .http
                    .get(format!("{}/api/auth/get-session", self.better_auth))
                    .header("cookie", &self.cookie)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let body = response.bytes().await.map_err(|e| e.to_string())?;
                if status.is_success() && body.starts_with(b"{") {
                    Ok(())
                } else {
                    Err(format!("HTTP {status}, body {} bytes", body.len()))
                }
            }
            Target::ValidateSession => {
                let mut client = self.auth.clone();
                client
                    .validate_session(ValidateSessionRequest {
                        cookie: self.cookie.clone(),
                    })
                    .await
                    .map(drop)
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
            }
            Target::ListTodos => {
                let mut client = self.todo.clone();
                let mut request = tonic::Request::new(ListTodosRequest {
                    page_size: 10,
                    ..Default::default()
                });
                let cookie = self
                    .cookie
                    .parse()
                    .map_err(|_| "cookie is not valid metadata".to_owned())?;
                request.metadata_mut().insert("cookie", cookie);
                client
                    .list_todos(request)
                    .await
                    .map(drop)
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
            }
            Target::GatewayListTodos => {
                self.grpc_web(
                    "/todo.v1.TodoService/ListTodos",
                    ListTodosRequest {
                        page_size: 10,
                        ..Default::default()
                    },
                )
                .await
            }
            Target::GatewayCreateTodo => {
                let request = CreateTodoRequest {
                    title: format!("{CREATED_PREFIX}{n}"),
                    ..Default::default()
                };
                self.grpc_web("/todo.v1.TodoService/CreateTodo", request)
                    .await
            }
        }
    }

    /// One unary grpc-web call (binary framing) as a browser would make it.
    async fn grpc_web(&self, path: &str, message: impl Message) -> Result<(), String> {
        let response = self
            .http
            .post(format!("{}{path}", self.gateway))
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .header("origin", &self.gateway)
            .header("cookie", &self.cookie)
            .body(grpc_web_frame(&message))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let header_status = response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let http_status = response.status();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        let status = header_status.or_else(|| trailer_status(&body));
        match status.as_deref() {
            Some("0") if http_status.is_success() => Ok(()),
            other => Err(format!("HTTP {http_status}, grpc-status {other:?}")),
        }
    }
}

/// utime + stime, in clock ticks, per process id: of each process of the stack, of every
/// PostgreSQL process, and of this load generator, by name.
type CpuSnapshot = Vec<(String, HashMap<String, u64>)>;

fn cpu_ticks(pids: &Pids) -> CpuSnapshot {
    let ticks_of = |pids: Vec<String>| -> HashMap<String, u64> {
        pids.into_iter()
            .filter_map(|pid| Some((pid.clone(), process_ticks(&pid)?)))
            .collect()
    };
    let mut snapshot: CpuSnapshot = pids
        .iter()
        .map(|(name, pid)| (name.clone(), ticks_of(vec![pid.to_string()])))
        .collect();
    let postgres: Vec<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().into_string().ok()?;
            pid.bytes().all(|b| b.is_ascii_digit()).then_some(pid)
        })
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == "postgres")
        })
        .collect();
    snapshot.push(("postgres".to_owned(), ticks_of(postgres)));
    snapshot.push((
        "load generator".to_owned(),
        ticks_of(vec![std::process::id().to_string()]),
    ));
    snapshot
}

/// Cores used by each named group between two snapshots `elapsed` apart, counting the processes
/// alive at both (a PostgreSQL backend that came or went in between is left out).
fn cores_used(before: &CpuSnapshot, after: &CpuSnapshot, elapsed: Duration) -> Vec<(String, f64)> {
    before
        .iter()
        .zip(after)
        .map(|((name, before), (_, after))| {
            let ticks: u64 = before
                .iter()
                .filter_map(|(pid, b)| Some(after.get(pid)?.saturating_sub(*b)))
                .sum();
            let cores = ticks as f64 / ticks_per_second() / elapsed.as_secs_f64();
            (name.clone(), cores)
        })
        .collect()
}

/// utime + stime of `/proc/{pid}`, in clock ticks.
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn ticks_per_second() -> f64 {
    // Linux's USER_HZ is 100 on every architecture we run on.
    100.0
}

fn report(rows: &[Row], args: &Args) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## cargo xtask bench{} ({} s per cell × {} round(s), {} users, coalescing {}, service runtime threads: {})\n",
        if args.quick { " --quick" } else { "" },
        args.duration,
        args.rounds.max(1),
        args.users,
        if args.no_coalesce { "off" } else { "on" },
        args.service_threads
            .map_or_else(|| "one per core".to_owned(), |n| n.to_string())
    );
    let processes: Vec<&str> = rows
        .first()
        .map(|row| row.cpu.iter().map(|(name, _)| name.as_str()).collect())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "| target | callers | sessions | p50 ms | p95 ms | p99 ms | max ms | req/s | errors | p95 / (A) | req/s / (A) | CPU cores: {} |",
        processes.join(", ")
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let baseline = rows.iter().find(|r| {
            r.target == Target::GetSession && r.callers == row.callers && r.sessions == row.sessions
        });
        let (p95_ratio, rps_ratio) = match baseline {
            Some(a) => (
                format!("{:.2}", row.ms(0.95) / a.ms(0.95).max(0.001)),
                format!("{:.2}", row.rps() / a.rps().max(0.001)),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let cpu: Vec<String> = row.cpu.iter().map(|(_, c)| format!("{c:.2}")).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {} | {} | {} |",
            row.target.label(),
            row.callers,
            row.sessions,
            row.ms(0.5),
            row.ms(0.95),
            row.ms(0.99),
            row.histogram.max() as f64 / 1000.0,
            row.rps(),
            row.errors,
            p95_ratio,
            rps_ratio,
            cpu.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\nsessions = distinct Better Auth sessions among the callers (callers / sessions calls per \
         session run in parallel). Closed loop over loopback; latency per call from an \
         HdrHistogram; CPU from /proc/PID/stat during the cell (postgres: every PostgreSQL \
         process on the machine that lived through the cell; load generator: this process). \
         With --rounds, each row covers all its rounds. Each user has 5 todos (ListTodos \
         page size 10); the todos CreateTodo adds are removed after each of its cells."
    );
    out
}

/// The counters each service reports after the load (non-zero samples of the main families),
/// so a run shows that the metrics endpoints count what the benchmark did.
async fn scrape_metrics(env: &Env) -> String {
    const FAMILIES: [&str; 6] = [
        "grpc_server_handled_total",
        "auth_validate_session_total",
        "auth_validate_coalesced_total",
        "todo_session_checks_total",
        "gateway_forwarded_requests_total",
        "gateway_csrf_refusals_total",
    ];
    let mut out = String::from("\n### Metrics scraped after the load (non-zero counters)\n\n```\n");
    for (service, port) in env.metrics {
        let url = format!("http://127.0.0.1:{port}/metrics");
        let text = match env.http.get(&url).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(e) => {
                let _ = writeln!(out, "# {service}: scrape of {url} failed: {e}");
                continue;
            }
        };
        let _ = writeln!(out, "# {service} ({url})");
        for line in text.lines() {
            let counted = FAMILIES.iter().any(|f| line.starts_with(f));
            let non_zero = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| v > 0.0);
            if counted && non_zero {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out.push_str("```\n");
    out
}
