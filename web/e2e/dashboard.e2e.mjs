// End-to-end test in a real browser: Debian's Chromium driven by playwright-core against the
// whole stack (Better Auth, auth-service, todo-service, gateway serving web/dist), all started
// here on free loopback ports. Run with `npm run e2e` after `npm run build` and
// `cargo build -p auth-service -p todo-service -p gateway`.
//
// Env: STACK_BIN_DIR (default ../target/debug), REQUIRE_BROWSER=1 (a missing Chromium fails
// instead of skipping), UPDATE_SCREENSHOT=1 (copy dashboard.png to docs/screenshot.png).

import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { freePort, startStack } from "./stack.mjs";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const SESSION_COOKIE = "better-auth.session_token";
const PASSWORD = "correct horse battery staple";
const UI_TIMEOUT_MS = 10_000;

const webDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = resolve(webDir, "..");
const artifacts = join(repoRoot, "test-artifacts", "e2e");
const binDir = resolve(process.env.STACK_BIN_DIR || join(repoRoot, "target", "debug"));

const browserMissing = !existsSync(CHROMIUM);
const requireBrowser = process.env.REQUIRE_BROWSER === "1";
if (browserMissing) {
  const message = `${CHROMIUM} is not installed (apt-get install -y chromium): the browser end-to-end test`;
  if (requireBrowser) {
    console.error(`${message} is REQUIRED (REQUIRE_BROWSER=1) and fails.`);
  } else {
    console.error(`${message} is SKIPPED.`);
  }
}

const skip = browserMissing && !requireBrowser ? `${CHROMIUM} is not installed` : false;

test("a user signs up, manages todos in the dashboard, and no one else can see them", { skip, timeout: 180_000 }, async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is not installed and REQUIRE_BROWSER=1: install it with apt-get install -y chromium`);
  mkdirSync(artifacts, { recursive: true });
  // Failure screenshots describe the last run only.
  for (const name of readdirSync(artifacts)) {
    if (name.startsWith("failed-") && name.endsWith(".png")) rmSync(join(artifacts, name));
  }
  const logDir = join(artifacts, "logs");
  mkdirSync(logDir, { recursive: true });

  const { chromium } = await import("playwright-core");
  const stack = await startStack({ repoRoot, binDir, webDist: join(webDir, "dist"), logDir });
  t.after(() => stack.stop());
  const gw = stack.gatewayOrigin;

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 900, height: 560 } });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));

  const shot = (name) => page.screenshot({ path: join(artifacts, name), fullPage: true });
  /** Runs one named part of the flow; a failure leaves a screenshot named after it. */
  const step = async (name, body) => {
    try {
      await body();
    } catch (error) {
      await page
        .screenshot({ path: join(artifacts, `failed-${name.replace(/[^a-z0-9]+/gi, "-")}.png`), fullPage: true })
        .catch(() => {});
      error.message = `step "${name}": ${error.message}\n(service logs: ${logDir})`;
      throw error;
    }
  };

  const items = page.locator("#todo-list > li");
  const itemTitled = (title) => items.filter({ has: page.locator(".title", { hasText: title }) });
  const expectTitles = async (expected) => {
    await waitFor(async () => JSON.stringify(await items.locator(".title").allTextContents()) === JSON.stringify(expected),
      async () => `titles ${JSON.stringify(await items.locator(".title").allTextContents())}, expected ${JSON.stringify(expected)}`);
  };
  const expectText = async (locator, expected) => {
    await waitFor(async () => ((await locator.textContent()) ?? "").trim() === expected,
      async () => `text ${JSON.stringify(((await locator.textContent()) ?? "").trim())}, expected ${JSON.stringify(expected)}`);
  };
  const addTodo = async (title) => {
    const before = await items.count();
    await page.fill("#new-todo-title", title);
    await page.press("#new-todo-title", "Enter");
    await waitFor(async () => (await items.count()) === before + 1, async () => `${await items.count()} items after adding ${title}`);
    assert.equal(await page.inputValue("#new-todo-title"), "", "the new-todo field is emptied after adding");
  };
  const signUp = async (name, email) => {
    await page.goto(`${gw}/login`);
    await page.fill("#sign-up-name", name);
    await page.fill("#sign-up-email", email);
    await page.fill("#sign-up-password", PASSWORD);
    await page.click("#sign-up-form button[type=submit]");
    await page.waitForURL(`${gw}/dashboard`);
    await expectText(page.locator("#user-email"), email);
  };
  const sessionCookie = async () => (await context.cookies(gw)).find((c) => c.name === SESSION_COOKIE);

  // Every run has its own Better Auth database, so fixed addresses never collide.
  const alice = "alice@example.com";
  const bob = "bob@example.com";
  const aliceTitles = ["Buy milk", "Write the report", "Call the plumber"];

  await step("login page is served and never redirects", async () => {
    const response = await page.goto(`${gw}/login`);
    assert.equal(response.status(), 200);
    assert.equal(response.request().redirectedFrom(), null, "/login is served without a redirect");
    assert.equal(new URL(page.url()).pathname, "/login");
    for (const id of ["sign-in-email", "sign-in-password", "sign-up-name", "sign-up-email", "sign-up-password"]) {
      const labels = await page.locator(`label[for="${id}"]`).count();
      assert.equal(labels, 1, `#${id} has a label`);
    }
    await shot("login.png");
  });

  await step("sign up lands on the dashboard showing the email", async () => {
    await signUp("Alice", alice);
    await expectText(page.locator("#empty"), "Nothing to do yet. Add your first todo above.");
  });

  await step("add three todos", async () => {
    for (const title of aliceTitles) await addTodo(title);
    await expectTitles(aliceTitles);
    await expectText(page.locator("#items-left"), "3 items left");
  });

  await step("toggle one todo", async () => {
    await itemTitled("Buy milk").locator("input.toggle").check();
    await waitFor(async () => (await page.locator("#todo-list > li.completed").count()) === 1, async () => "Buy milk is not shown completed");
    await expectText(page.locator("#items-left"), "2 items left");
    assert.ok(await page.locator("#clear-completed").isVisible(), "clear completed is offered");
  });

  await step("edit a title inline: Enter saves, Escape cancels", async () => {
    await itemTitled("Write the report").locator("button.edit-button").click();
    const editor = page.locator("#todo-list input.edit");
    assert.equal(await editor.evaluate((el) => el === document.activeElement), true, "the editor has focus");
    await editor.fill("Write the quarterly report");
    await editor.press("Enter");
    await expectTitles(["Buy milk", "Write the quarterly report", "Call the plumber"]);
    await itemTitled("Call the plumber").locator("button.edit-button").click();
    await page.locator("#todo-list input.edit").fill("Something else");
    await page.locator("#todo-list input.edit").press("Escape");
    await expectTitles(["Buy milk", "Write the quarterly report", "Call the plumber"]);
    aliceTitles[1] = "Write the quarterly report";
  });

  await step("filter active and completed", async () => {
    await page.click("button.filter[data-filter=active]");
    await expectTitles(["Write the quarterly report", "Call the plumber"]);
    assert.equal(await page.getAttribute("button.filter[data-filter=active]", "aria-pressed"), "true");
    await shot("dashboard-active.png");
    await page.click("button.filter[data-filter=completed]");
    await expectTitles(["Buy milk"]);
    await page.click("button.filter[data-filter=all]");
    await expectTitles(aliceTitles);
    await shot("dashboard.png");
    if (process.env.UPDATE_SCREENSHOT === "1") {
      mkdirSync(join(repoRoot, "docs"), { recursive: true });
      copyFileSync(join(artifacts, "dashboard.png"), join(repoRoot, "docs", "screenshot.png"));
    }
  });

  await step("reload keeps the data", async () => {
    await page.reload();
    await expectText(page.locator("#user-email"), alice);
    await expectTitles(aliceTitles);
    assert.deepEqual(
      await items.evaluateAll((lis) => lis.map((li) => li.querySelector("input.toggle").checked)),
      [true, false, false],
      "only Buy milk is completed after a reload",
    );
    await expectText(page.locator("#items-left"), "2 items left");
  });

  await step("every control is labelled and works from the keyboard with visible focus", async () => {
    const unlabelled = await page.locator("input, button").evaluateAll((els) =>
      els
        .filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") || (el.tagName === "BUTTON" && el.textContent.trim())))
        .map((el) => el.outerHTML),
    );
    assert.deepEqual(unlabelled, [], "controls without a label");
    await page.focus("#new-todo-title");
    await page.keyboard.press("Tab"); // Add
    await page.keyboard.press("Tab"); // the first todo's checkbox
    const focused = () => page.evaluate(() => ({
      label: document.activeElement?.getAttribute("aria-label"),
      visible: document.activeElement?.matches(":focus-visible") && getComputedStyle(document.activeElement).outlineStyle !== "none",
    }));
    assert.deepEqual(await focused(), { label: "Completed: Buy milk", visible: true });
    await page.keyboard.press("Space");
    await expectText(page.locator("#items-left"), "3 items left");
    assert.deepEqual(await focused(), { label: "Completed: Buy milk", visible: true }, "focus stays on the checkbox");
    await page.keyboard.press("Space");
    await expectText(page.locator("#items-left"), "2 items left");
  });

  await step("sign out goes to the login page", async () => {
    await page.click("#sign-out");
    await page.waitForURL(`${gw}/login`);
    assert.equal(await sessionCookie(), undefined, "the session cookie is cleared");
  });

  await step("after sign-out /dashboard answers exactly one 303 to /login", async () => {
    const navigations = [];
    const onNavigate = (frame) => {
      if (frame === page.mainFrame()) navigations.push(frame.url());
    };
    page.on("framenavigated", onNavigate);
    const response = await page.goto(`${gw}/dashboard`);
    const redirects = [];
    for (let request = response.request().redirectedFrom(); request; request = request.redirectedFrom()) {
      const hop = await request.response();
      redirects.push({ url: request.url(), status: hop?.status(), location: hop?.headers().location });
    }
    assert.deepEqual(redirects, [{ url: `${gw}/dashboard`, status: 303, location: "/login" }], "one 303 redirect");
    assert.equal(response.status(), 200);
    assert.equal(page.url(), `${gw}/login`);
    // Nothing on the login page moves the browser on: still one navigation a second later.
    await page.waitForTimeout(1000);
    page.off("framenavigated", onNavigate);
    assert.deepEqual(navigations, [`${gw}/login`], "no further navigation (no loop)");
  });

  await step("a second user sees none of the first user's todos", async () => {
    await signUp("Bob", bob);
    await expectText(page.locator("#empty"), "Nothing to do yet. Add your first todo above.");
    assert.equal(await items.count(), 0);
    for (const title of ["Bob's first", "Bob's done"]) await addTodo(title);
    await itemTitled("Bob's done").locator("input.toggle").check();
    await expectText(page.locator("#items-left"), "1 item left");
    await page.click("#clear-completed");
    await expectTitles(["Bob's first"]);
    assert.equal(await page.locator("#clear-completed").isVisible(), false, "nothing left to clear");
    // Bad input is refused by the server and its own words are shown (INVALID_ARGUMENT).
    await page.locator("#new-todo-title").evaluate((el) => { el.value = "bell \u0007 title"; });
    await page.press("#new-todo-title", "Enter");
    await waitFor(async () => ((await page.textContent("#error")) ?? "").trim() !== "", async () => "no error shown for a control character");
    const invalid = (await page.textContent("#error")).trim();
    assert.match(invalid, /title/i, `the server's message names the field: ${invalid}`);
    await shot("invalid-input.png");
    await page.fill("#new-todo-title", "");
    await addTodo("Bob's secret plan");
    assert.equal(((await page.textContent("#error")) ?? "").trim(), "", "a successful call clears the error");
    await itemTitled("Bob's first").locator("button.delete-button").click();
    await expectTitles(["Bob's secret plan"]);
    await page.reload();
    await expectTitles(["Bob's secret plan"]);
    await shot("second-user.png");
  });

  await step("a page from another origin cannot use the cookie", async () => {
    const cookie = await sessionCookie();
    assert.ok(cookie, "Bob is signed in");
    const evil = await serveOtherOrigin();
    t.after(() => evil.close());
    const evilOrigin = `http://127.0.0.1:${evil.port}`;
    assert.notEqual(evilOrigin, gw);

    await page.goto(`${evilOrigin}/?gateway=${encodeURIComponent(gw)}`);
    await page.waitForSelector("#result[data-done]");
    const result = JSON.parse(await page.textContent("#result"));
    await shot("cross-origin.png");
    // The browser must not hand the page Bob's todos: the call is refused (CORS/Origin check).
    assert.equal(result.list.readable && result.list.grpcStatus === "0", false, `cross-origin ListTodos was answered: ${JSON.stringify(result.list)}`);
    assert.equal(JSON.stringify(result).includes("secret plan"), false, "no todo title reached the page");

    // The request itself (which a browser sends with the same-site cookie) is refused by the
    // gateway, not only hidden by the browser: replay it with that Origin and the cookie.
    const replay = await fetch(`${gw}/todo.v1.TodoService/ListTodos`, {
      method: "POST",
      headers: {
        origin: evilOrigin,
        cookie: `${SESSION_COOKIE}=${cookie.value}`,
        "content-type": "application/grpc-web+proto",
        "x-grpc-web": "1",
      },
      body: new Uint8Array(5),
    });
    const replayBody = Buffer.from(await replay.arrayBuffer()).toString("latin1");
    const grpcStatus = replay.headers.get("grpc-status") ?? /grpc-status:\s*(\d+)/.exec(replayBody)?.[1];
    assert.ok(replay.status !== 200 || (grpcStatus !== undefined && grpcStatus !== "0"), `gateway answered the foreign Origin: HTTP ${replay.status}, grpc-status ${grpcStatus}`);
    assert.equal(replayBody.includes("secret plan"), false, "the gateway returned no todo to a foreign Origin");
    assert.equal(replay.headers.get("access-control-allow-origin"), null, "no CORS grant for a foreign origin");

    // The no-cors CreateTodo the page fired created nothing.
    await page.goto(`${gw}/dashboard`);
    await expectTitles(["Bob's secret plan"]);
  });

  await step("the session cookie is HttpOnly", async () => {
    const cookie = await sessionCookie();
    assert.ok(cookie, "the session cookie exists");
    assert.equal(cookie.httpOnly, true, "HttpOnly");
    assert.equal(cookie.sameSite, "Lax");
    const visible = await page.evaluate(() => document.cookie);
    assert.equal(visible.includes(SESSION_COOKIE), false, `document.cookie shows the session: ${visible}`);
  });

  await step("an ended session sends the user to /login once", async () => {
    await context.clearCookies();
    const navigations = [];
    const onNavigate = (frame) => {
      if (frame === page.mainFrame()) navigations.push(frame.url());
    };
    page.on("framenavigated", onNavigate);
    await page.fill("#new-todo-title", "never saved");
    await page.press("#new-todo-title", "Enter");
    await page.waitForURL(`${gw}/login`);
    await expectText(page.locator("#notice"), "Your session has ended. Please sign in again.");
    await page.waitForTimeout(1000);
    page.off("framenavigated", onNavigate);
    assert.deepEqual(navigations, [`${gw}/login`], "exactly one trip to /login");
    await shot("session-ended.png");
  });

  await step("sign in again, then a stopped todo-service is reported in words", async () => {
    await page.fill("#sign-in-email", bob);
    await page.fill("#sign-in-password", "not the password");
    await page.press("#sign-in-password", "Enter");
    await expectText(page.locator("#error"), "Wrong email or password.");
    assert.equal(new URL(page.url()).pathname, "/login");
    await page.fill("#sign-in-email", bob);
    await page.fill("#sign-in-password", PASSWORD);
    await page.press("#sign-in-password", "Enter");
    await page.waitForURL(`${gw}/dashboard`);
    await expectTitles(["Bob's secret plan"]);
    await stack.stopService("todoService");
    await page.fill("#new-todo-title", "while it is down");
    await page.press("#new-todo-title", "Enter");
    await expectText(page.locator("#error"), "Service unavailable, try again.");
    assert.equal(new URL(page.url()).pathname, "/dashboard", "an outage does not send the user away");
    await shot("unavailable.png");
    // Loading the page while it is down says so and offers a retry, not an empty list.
    await page.reload();
    await expectText(page.locator("#error"), "Service unavailable, try again.");
    await waitFor(async () => (await page.textContent("#loading")).includes("could not be loaded"), async () => `loading says ${await page.textContent("#loading")}`);
    assert.ok(await page.locator("#loading button", { hasText: "Try again" }).isVisible(), "a retry is offered");
    assert.equal(await page.locator("#empty").isVisible(), false, "no misleading empty-list text");
  });

  assert.deepEqual(pageErrors, [], "no uncaught errors in the pages");
});

/** Polls `check` until it is true; on timeout fails with `describe()`'s account of the state. */
async function waitFor(check, describe, timeoutMs = UI_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`timed out: ${await describe()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A tiny site on another port (another origin, same site as 127.0.0.1): its page tries to read
 * the gateway's ListTodos with the browser's cookie, and fires a no-cors CreateTodo (CSRF), then
 * writes what it got into #result.
 */
async function serveOtherOrigin() {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Another site</title></head>
<body style="font-family:sans-serif;padding:1rem"><h1>Another origin</h1><pre id="result">running…</pre>
<script>
const gateway = new URLSearchParams(location.search).get("gateway");
const grpcWeb = { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" };
function frame(bytes) { const f = new Uint8Array(5 + bytes.length); new DataView(f.buffer).setUint32(1, bytes.length); f.set(bytes, 5); return f; }
async function attempt(path, init) {
  try {
    const response = await fetch(gateway + path, { method: "POST", credentials: "include", ...init });
    const out = { readable: response.type !== "opaque", type: response.type, status: response.status,
                  grpcStatus: response.headers.get("grpc-status") };
    if (out.readable) out.body = new TextDecoder("latin1").decode(await response.arrayBuffer());
    return out;
  } catch (error) {
    return { readable: false, blocked: String(error) };
  }
}
(async () => {
  const title = new TextEncoder().encode("evil todo");
  const result = {
    list: await attempt("/todo.v1.TodoService/ListTodos", { headers: grpcWeb, body: frame(new Uint8Array(0)) }),
    create: await attempt("/todo.v1.TodoService/CreateTodo", { mode: "no-cors", headers: { "content-type": "text/plain" },
      body: frame(new Uint8Array([0x12, title.length, ...title])) }),
  };
  const el = document.getElementById("result");
  el.textContent = JSON.stringify(result, null, 2);
  el.dataset.done = "1";
})();
</script></body></html>`;
  const port = await freePort();
  const server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(html);
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { port, close: () => new Promise((r) => server.close(r)) };
}
