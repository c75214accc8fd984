// What the dashboard's tests (and build-support/bench-ui) share: a real insightd on loopback,
// the system Chromium through playwright-core, a page guard that records console errors and
// every request (and aborts any that leaves the daemon's origin), bounded waits, and the
// skip-or-fail rule for missing resources. Not a test file itself (node --test runs
// *.test.mjs).

import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
export const INSIGHTD = resolve(process.env.INSIGHTD ?? join(ROOT, "target/debug/insightd"));
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const SCREENSHOTS = process.env.UI_SCREENSHOTS ?? join(ROOT, "target/ui-screenshots");
export const CI = process.env.CI === "true";
/** BPF must work (as in `cargo test`): insightd runs with --probe-mode bpf, and a fallback fails. */
export const REQUIRE_BPF = process.env.EMBER_REQUIRE_BPF === "1" || CI;

/**
 * A resource the test needs is missing: a failure under CI=true, else a visible skip (a
 * `SKIPPED` line on stderr, next to node:test's own "# SKIP"). Returns true when skipped.
 */
export function missing(t, what) {
  if (CI) throw new Error(`${what} (CI=true: a missing resource fails the test)`);
  process.stderr.write(`SKIPPED ${t.name}: ${what}\n`);
  t.skip(what);
  return true;
}

/** The test model, or null when EMBER_TEST_MODEL names no file. */
export function testModel() {
  const p = process.env.EMBER_TEST_MODEL ?? join(ROOT, "models/gemma-3-270m-q4_k_m.gguf");
  return existsSync(p) ? p : null;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Thrown inside an `until` probe: stops the wait at once (other errors are retried). */
export class Fatal extends Error {}

/**
 * Polls `f` until it returns a truthy value (returned), failing after `ms` with `what` (and the
 * last error `f` threw). A `Fatal` from `f` ends the wait at once.
 */
export async function until(what, ms, f, every = 250) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (err) {
      if (err instanceof Fatal) throw err;
      last = err;
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms / 1000} s waiting for ${what}${last ? `: ${last.message}` : ""}`);
    }
    await sleep(every);
  }
}

/** A private temporary directory, removed by `cleanup()`. */
export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), `ember-ui-${prefix}-`));
}

/**
 * Starts `insightd --bind 127.0.0.1:0` (the kernel picks a free loopback port; the daemon
 * prints it) with `args` and, when given, a TOML `config`. Waits (bounded) for the address and
 * for /readyz. Returns { base, port, token, pid, log(), get(path), json(path), stop() }.
 */
export async function startInsightd({ args = [], config = null, token = null, readyMs = 120_000 } = {}) {
  if (!existsSync(INSIGHTD)) throw new Error(`no insightd at ${INSIGHTD}: build it or set INSIGHTD`);
  const dir = tempDir("insightd");
  const argv = ["--bind", "127.0.0.1:0", ...args];
  if (token) argv.push("--token", token);
  if (config) {
    writeFileSync(join(dir, "insightd.toml"), config);
    argv.push("--config", join(dir, "insightd.toml"));
  }
  const child = spawn(INSIGHTD, argv, {
    env: { ...process.env, INSIGHTD_LOG: process.env.INSIGHTD_LOG ?? "info" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const lines = [];
  let exited = null;
  child.on("exit", (code, signal) => (exited = { code, signal }));
  let port = null;
  {
    let rest = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop();
      for (const line of parts) {
        lines.push(line);
        if (process.env.UI_TEST_VERBOSE) process.stderr.write(`[insightd] ${line}\n`);
        const m = line.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
        if (m && port === null) port = Number(m[1]);
      }
    });
  }
  const tail = () => lines.slice(-30).join("\n");
  const stop = async () => {
    if (exited === null) {
      child.kill("SIGTERM");
      const end = Date.now() + 20_000;
      while (exited === null && Date.now() < end) await sleep(50);
      if (exited === null) child.kill("SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const died = () => {
      if (exited) throw new Fatal(`insightd exited (${JSON.stringify(exited)})`);
    };
    await until("insightd to print its address", 30_000, () => (died(), port !== null), 50);
    const base = `http://127.0.0.1:${port}`;
    const auth = token ? { Authorization: `Bearer ${token}` } : {};
    const get = (path) => fetch(base + path, { headers: auth, signal: AbortSignal.timeout(30_000) });
    const json = async (path) => {
      const r = await get(path);
      if (!r.ok) throw new Error(`GET ${path}: ${r.status}`);
      return r.json();
    };
    await until(`${base}/readyz`, readyMs, async () => {
      died();
      const r = await fetch(base + "/readyz", { signal: AbortSignal.timeout(5000) });
      return r.status === 200;
    }, 100);
    return { base, port, token, pid: child.pid, log: () => lines.join("\n"), tail, get, json, stop, exited: () => exited };
  } catch (err) {
    await stop();
    throw new Error(`${err.message}\ninsightd log:\n${tail()}`);
  }
}

/** The probe arguments: BPF where it must work (fails, not falls back), else auto. */
export function bpfArgs() {
  return REQUIRE_BPF ? ["--probe-mode", "bpf", "--require-all-probes"] : ["--probe-mode", "auto"];
}

/** A copy of `bin` named `name` in `dir`, run with `args`: a process whose comm is `name`. */
export function spawnNamed(dir, bin, name, args, opts = {}) {
  const path = join(dir, name);
  copyFileSync(bin, path);
  const child = spawn(path, args, { stdio: "ignore", ...opts });
  return child;
}

/** Kills `child` (and its process group when it was spawned detached) and waits (bounded). */
export async function killChild(child, group = false) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once("exit", r));
  try {
    if (group) process.kill(-child.pid, "SIGKILL");
    else child.kill("SIGKILL");
  } catch {
    // already gone
  }
  let timer;
  await Promise.race([gone, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
  clearTimeout(timer);
}

/** The system Chromium, headless, nothing of its own on the network. */
export async function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 60_000,
  });
}

/**
 * Watches `page`: console errors, page errors, every request URL, and every response status.
 * A route aborts (and records) any request that is not on `origin`. The report is live.
 */
export async function guardPage(page, origin) {
  const seen = { consoleErrors: [], pageErrors: [], requests: [], offOrigin: [], responses: [], navigations: [] };
  page.on("console", (m) => {
    if (m.type() === "error") seen.consoleErrors.push({ text: m.text(), url: m.location()?.url ?? "", at: Date.now() });
  });
  page.on("pageerror", (e) => seen.pageErrors.push(String(e?.stack ?? e)));
  page.on("request", (r) => seen.requests.push({ url: r.url(), method: r.method(), headers: r.headers() }));
  page.on("response", (r) => seen.responses.push({ url: r.url(), status: r.status(), at: Date.now() }));
  page.on("framenavigated", (f) => seen.navigations.push(f.url()));
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + "/")) return route.continue();
    seen.offOrigin.push(url);
    return route.abort("blockedbyclient");
  });
  return seen;
}

/** Every request URL not of the form `${origin}/...`. */
export function foreignRequests(seen, origin) {
  return [...seen.offOrigin, ...seen.requests.map((r) => r.url).filter((u) => !u.startsWith(origin + "/"))];
}

/** Path of a screenshot named `name`, creating the folder. */
export function shot(name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return join(SCREENSHOTS, name);
}

/** Logs in through the form: types `token` into #token and submits. */
export async function logIn(page, token) {
  await page.locator("form#login").waitFor({ state: "visible", timeout: 30_000 });
  await page.locator("input#token").fill(token);
  await page.locator('form#login button[type="submit"]').click();
}

/** The daemon's running counters: the sum of insightd_events_total over its kinds. */
export function eventsTotal(metricsText) {
  let n = 0;
  for (const line of metricsText.split("\n")) {
    const m = line.match(/^insightd_events_total(?:\{[^}]*\})? ([0-9.eE+-]+)$/);
    if (m) n += Number(m[1]);
  }
  return n;
}

/**
 * Steps of one test as subtests, run in order: a step after a failed one is skipped (it would
 * only fail for want of the earlier step's state). Each step is bounded by `timeout` (ms).
 */
export function steps(t) {
  let failed = null;
  return (name, fn, timeout = 120_000) =>
    t.test(name, { timeout }, async (st) => {
      if (failed) return st.skip(`the step "${failed}" failed`);
      try {
        await fn(st);
      } catch (err) {
        failed = name;
        throw err;
      }
    });
}
