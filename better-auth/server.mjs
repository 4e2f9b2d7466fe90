// The Better Auth server (email + password) used in development, tests and compose.
//
// Plain node:http: Better Auth's handler on /api/auth/*, GET /healthz without Better Auth.
// SQLite by default, PostgreSQL when DATABASE_URL is postgres://…; tables are created at startup.
// Configuration is environment only; see README.md. Never logs cookies, tokens or secrets.

import { createServer } from "node:http";
import { mkdirSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";

const here = dirname(fileURLToPath(import.meta.url));

// A fixed, public development secret: fine for local runs and tests, never for production.
const DEV_SECRET = "dev-only-insecure-better-auth-secret-change-me-0123456789";

function fail(message) {
  process.stderr.write(`better-auth: ${message}\n`);
  process.exit(1);
}

function optionalSeconds(name) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    fail(`${name} must be a positive whole number of seconds, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function parsePort(raw) {
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`PORT must be a port number, got ${JSON.stringify(raw)}`);
  }
  return port;
}

const host = process.env.HOST || "127.0.0.1";
const port = parsePort(process.env.PORT || "3000");
const baseURL = process.env.BETTER_AUTH_URL || `http://${host}:${port}`;
const production = process.env.NODE_ENV === "production";

let secret = process.env.BETTER_AUTH_SECRET;
if (!secret) {
  if (production) {
    fail("BETTER_AUTH_SECRET is not set and NODE_ENV=production: refusing to start with a public default secret");
  }
  secret = DEV_SECRET;
  process.stderr.write(
    [
      "",
      "################################################################################",
      "#  WARNING: BETTER_AUTH_SECRET is not set.                                     #",
      "#  Using a fixed, PUBLIC development secret: anyone can forge session cookies. #",
      "#  Set BETTER_AUTH_SECRET (32+ random characters) for anything but local dev.  #",
      "################################################################################",
      "",
      "",
    ].join("\n"),
  );
}

const trustedOrigins = (process.env.TRUSTED_ORIGINS || "")
  .split(",")
  .map((origin) => origin.trim())
  .filter((origin) => origin !== "");

const databaseUrl = process.env.DATABASE_URL || "";
const usePostgres = /^postgres(ql)?:\/\//.test(databaseUrl);

// Opened here (not by Better Auth) so shutdown can close them.
let pool;
let sqlite;
let database;
if (usePostgres) {
  const { default: pg } = await import("pg");
  pool = new pg.Pool({ connectionString: databaseUrl });
  // Without a listener an idle client's error (e.g. PostgreSQL restarted) would crash the process.
  pool.on("error", (error) => process.stderr.write(`better-auth: idle PostgreSQL client error: ${error.message}\n`));
  // A client that is checked out when PostgreSQL goes away (restart, failover) emits 'error' on
  // itself, not on the pool; unhandled, that would kill the process. Its query fails (Better
  // Auth answers 500, which the auth-service maps to UNAVAILABLE) and the pool replaces it.
  pool.on("connect", (client) => {
    client.on("error", (error) =>
      process.stderr.write(`better-auth: PostgreSQL connection error: ${error.message}\n`),
    );
  });
  database = pool;
} else {
  const { default: Database } = await import("better-sqlite3");
  const rawPath = process.env.SQLITE_PATH || ".data/better-auth.db";
  const inMemory = rawPath === ":memory:";
  const sqlitePath = inMemory || isAbsolute(rawPath) ? rawPath : resolve(here, rawPath);
  if (!inMemory) mkdirSync(dirname(sqlitePath), { recursive: true });
  sqlite = new Database(sqlitePath);
  database = sqlite;
}

const session = {};
const expiresIn = optionalSeconds("SESSION_EXPIRES_IN");
const updateAge = optionalSeconds("SESSION_UPDATE_AGE");
if (expiresIn !== undefined) session.expiresIn = expiresIn;
if (updateAge !== undefined) session.updateAge = updateAge;
// session.cookieCache stays off: a revoked session must be rejected at once (better-auth.md §3).

const options = {
  baseURL,
  secret,
  database,
  trustedOrigins,
  emailAndPassword: { enabled: true, autoSignIn: true },
  session,
  telemetry: { enabled: false },
  // Every get-session call comes from the auth-service without X-Forwarded-For: the default
  // production limiter would put all users into one bucket (better-auth.md §5b). The default
  // rules for sign-in, sign-up etc. stay.
  rateLimit: { customRules: { "/get-session": false } },
};

try {
  const { runMigrations } = await getMigrations(options);
  await runMigrations();
} catch (error) {
  fail(`creating the database tables failed: ${error?.message ?? error}`);
}

const auth = betterAuth(options);
const authHandler = toNodeHandler(auth);

const server = createServer((req, res) => {
  const path = (req.url || "/").split("?")[0];
  if (path === "/api/auth" || path.startsWith("/api/auth/")) {
    authHandler(req, res).catch((error) => {
      process.stderr.write(`better-auth: handler error on ${req.method} ${path}: ${error?.message ?? error}\n`);
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "application/json" });
      }
      res.end();
    });
    return;
  }
  if (path === "/healthz" && (req.method === "GET" || req.method === "HEAD")) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(req.method === "HEAD" ? undefined : '{"ok":true}');
    return;
  }
  res.writeHead(404);
  res.end();
});

server.on("error", (error) => fail(`server error: ${error.message}`));

server.listen(port, host, () => {
  const address = server.address();
  process.stdout.write(`better-auth listening on http://${host}:${address.port}\n`);
});

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`better-auth: ${signal} received, shutting down\n`);
  // Idle keep-alive connections would keep server.close() waiting.
  server.closeIdleConnections();
  const closed = new Promise((done) => server.close(() => done()));
  const timeout = new Promise((done) => setTimeout(done, 5000).unref());
  await Promise.race([closed, timeout]);
  server.closeAllConnections();
  try {
    if (pool) await pool.end();
    if (sqlite) sqlite.close();
  } catch (error) {
    process.stderr.write(`better-auth: closing the database failed: ${error?.message ?? error}\n`);
  }
  process.exit(0);
}

process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

// Test harnesses (testkit) hold our stdin open: when they exit, however they exit, the pipe
// closes and we follow, so no orphan server outlives a test run. Opt-in, because under a
// supervisor stdin may be /dev/null (an immediate end of file).
if (process.env.EXIT_ON_STDIN_EOF === "1") {
  process.stdin.on("end", () => void shutdown("end of stdin"));
  process.stdin.on("error", () => void shutdown("stdin error"));
  process.stdin.resume();
}
