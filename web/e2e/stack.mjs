// Starts the whole stack for the browser test on free loopback ports: Better Auth (Node, temp
// SQLite), auth-service, todo-service (temp SQLite) and the gateway serving web/dist. Every
// process is stopped by `stop()`, and killed outright if the test process exits first.

import { spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const STARTUP_TIMEOUT_MS = 60_000;

/** A port that was free a moment ago (the kernel picks it; the process binds it right after). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function httpOk(url) {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return response.ok;
  } catch {
    return false;
  }
}

/** One child process with its output in a log file. */
class Child {
  constructor(name, command, args, env, logDir, cwd) {
    this.name = name;
    this.logPath = join(logDir, `${name}.log`);
    const log = createWriteStream(this.logPath);
    this.process = spawn(command, args, {
      cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.process.stdout.pipe(log);
    this.process.stderr.pipe(log);
    this.exited = new Promise((resolve) => {
      this.process.once("exit", (code, signal) => resolve({ code, signal }));
      this.process.once("error", (error) => resolve({ code: null, signal: null, error }));
    });
    this.done = false;
    this.exited.then(() => {
      this.done = true;
    });
  }

  logTail(lines = 30) {
    try {
      return readFileSync(this.logPath, "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** SIGTERM (graceful shutdown), then SIGKILL after a grace period. */
  async stop(graceMs = 5000) {
    if (this.done) return;
    this.process.kill("SIGTERM");
    const result = await Promise.race([this.exited, sleep(graceMs, "timeout")]);
    if (result === "timeout" && !this.done) {
      this.process.kill("SIGKILL");
      await this.exited;
    }
  }
}

const running = new Set();
process.on("exit", () => {
  for (const child of running) {
    if (!child.done) child.process.kill("SIGKILL");
  }
});

/**
 * Starts everything and waits until it answers. Options: repoRoot, binDir, webDist, logDir.
 * Returns { gatewayOrigin, betterAuthUrl, ports, children, stop(), stopService(name) }.
 */
export async function startStack({ repoRoot, binDir, webDist, logDir }) {
  for (const bin of ["auth-service", "todo-service", "gateway"]) {
    if (!existsSync(join(binDir, bin))) {
      throw new Error(
        `${join(binDir, bin)} is missing: run cargo build first ` +
          "(cargo build -p auth-service -p todo-service -p gateway), or set STACK_BIN_DIR",
      );
    }
  }
  if (!existsSync(join(webDist, "dashboard.html")) || !existsSync(join(webDist, "login.html"))) {
    throw new Error(`${webDist} has no built pages: run npm run build in web/ first`);
  }
  const betterAuthServer = join(repoRoot, "better-auth", "server.mjs");
  if (!existsSync(join(repoRoot, "better-auth", "node_modules"))) {
    throw new Error("better-auth/node_modules is missing: run npm ci in better-auth/ first");
  }

  const tmp = mkdtempSync(join(tmpdir(), "todo-e2e-"));
  const ports = {
    betterAuth: await freePort(),
    auth: await freePort(),
    todo: await freePort(),
    gateway: await freePort(),
  };
  const gatewayOrigin = `http://127.0.0.1:${ports.gateway}`;
  const betterAuthUrl = `http://127.0.0.1:${ports.betterAuth}`;
  const authUrl = `http://127.0.0.1:${ports.auth}`;
  const todoUrl = `http://127.0.0.1:${ports.todo}`;

  // Only what each process needs: nothing from the caller's shell (DATABASE_URL, NODE_ENV=test
  // which would switch off Better Auth's origin checks, …) leaks in.
  const base = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? tmp,
    RUST_LOG: process.env.RUST_LOG ?? "info",
    RUST_BACKTRACE: "1",
    LOG_FORMAT: "pretty",
    NO_COLOR: "1",
  };
  const children = {};
  const stopAll = async () => {
    // Reverse start order: the gateway first, Better Auth last.
    for (const name of ["gateway", "todoService", "authService", "betterAuth"]) {
      const child = children[name];
      if (child) await child.stop();
      running.delete(child);
    }
    rmSync(tmp, { recursive: true, force: true });
  };

  const start = (key, name, command, args, env, cwd) => {
    const child = new Child(name, command, args, { ...base, ...env }, logDir, cwd);
    children[key] = child;
    running.add(child);
    return child;
  };

  const waitUntil = async (child, what, probe) => {
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (child.done) {
        const { code, signal, error } = await child.exited;
        throw new Error(
          `${child.name} exited during startup (code ${code}, signal ${signal}${error ? `, ${error.message}` : ""}); ` +
            `log ${child.logPath}:\n${child.logTail()}`,
        );
      }
      if (await probe()) return;
      await sleep(100);
    }
    throw new Error(`${child.name} did not answer ${what} within ${STARTUP_TIMEOUT_MS} ms; log:\n${child.logTail()}`);
  };

  try {
    const betterAuth = start("betterAuth", "better-auth", process.execPath, [betterAuthServer], {
      HOST: "127.0.0.1",
      PORT: String(ports.betterAuth),
      BETTER_AUTH_URL: betterAuthUrl,
      BETTER_AUTH_SECRET: "e2e-only-secret-0123456789abcdefghijklmnopqrstuvwxyz",
      TRUSTED_ORIGINS: gatewayOrigin,
      SQLITE_PATH: join(tmp, "better-auth.db"),
    }, join(repoRoot, "better-auth"));
    const authService = start("authService", "auth-service", join(binDir, "auth-service"), [], {
      AUTH_LISTEN: `127.0.0.1:${ports.auth}`,
      METRICS_LISTEN: "127.0.0.1:0",
      BETTER_AUTH_URL: betterAuthUrl,
    }, tmp);
    const todoService = start("todoService", "todo-service", join(binDir, "todo-service"), [], {
      TODO_LISTEN: `127.0.0.1:${ports.todo}`,
      METRICS_LISTEN: "127.0.0.1:0",
      DATABASE_URL: `sqlite://${join(tmp, "todos.db")}`,
      AUTH_SERVICE_URL: authUrl,
    }, tmp);
    const gateway = start("gateway", "gateway", join(binDir, "gateway"), [], {
      GATEWAY_LISTEN: `127.0.0.1:${ports.gateway}`,
      METRICS_LISTEN: "127.0.0.1:0",
      TODO_SERVICE_URL: todoUrl,
      AUTH_SERVICE_URL: authUrl,
      BETTER_AUTH_URL: betterAuthUrl,
      WEB_DIR: webDist,
      ALLOWED_ORIGINS: gatewayOrigin,
    }, tmp);

    await waitUntil(betterAuth, "GET /api/auth/ok", () => httpOk(`${betterAuthUrl}/api/auth/ok`));
    await waitUntil(authService, "TCP connect", () => canConnect(ports.auth));
    await waitUntil(todoService, "TCP connect", () => canConnect(ports.todo));
    await waitUntil(gateway, "GET /healthz", () => httpOk(`${gatewayOrigin}/healthz`));
  } catch (error) {
    await stopAll();
    throw error;
  }

  return {
    gatewayOrigin,
    betterAuthUrl,
    ports,
    children,
    stop: stopAll,
    /** Stops one service (e.g. "todoService") to observe how the dashboard reports it. */
    stopService: async (name) => {
      await children[name]?.stop();
    },
  };
}
