// The dashboard's cost in Chromium on a busy host: a benchmark, not a test (node --test does
// not run it; build-support/bench-ui does, and explains the figures). It prints figures and
// asserts nothing; it exits non-zero only when the setup fails.
//
// Setup: a real insightd (BPF, --token, no model) on loopback; SLEEPERS sleeping processes
// (one shell backgrounding copies of /bin/sleep named `emberuisleep`); the page in Chromium,
// logged in through the form, waiting until #process-count shows them all. Then, for each view
// (the default tree, where the shell's children start collapsed, and the tree with that shell
// expanded: every sleeper a row), two windows of WINDOW_S seconds: idle (no extra load), and
// loaded (a paced loop spawning SPAWN_RATE /bin/true per second, about 3 probe events each:
// fork, exec, exit). Per window: events/s offered (insightd_events_total from /metrics),
// events/s the page read (window.__insightd.events), Chromium's main thread (CDP
// Performance.getMetrics: TaskDuration, ScriptDuration, LayoutDuration, RecalcStyleDuration,
// in ms per s), renders/s and mean render ms (window.__insightd), insightd's CPU, /stream
// drops; then, with the load still on, the filter's input latency (typing `emberuisleep` into
// #process-filter one key at a time, and clearing it: time from each input event to the
// frame after it).

import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";

import {
  eventsTotal,
  killChild,
  launchChromium,
  logIn,
  sleep,
  spawnNamed,
  startInsightd,
  tempDir,
  until,
} from "./harness.mjs";

const WINDOW_S = Number(process.env.WINDOW_S ?? 20);
const SLEEPERS = Number(process.env.SLEEPERS ?? 2000);
const SPAWN_RATE = Number(process.env.SPAWN_RATE ?? 330);
const ROUNDS = Number(process.env.ROUNDS ?? 1);
const TOKEN = `bench-ui-${process.pid}-${Date.now()}`;
const SLEEPER = "emberuisleep";
const FARM = "emberuifarm";

const log = (s) => console.log(`bench-ui: ${s}`);

/** The paced load: SPAWN_RATE posix_spawn(/bin/true) per second, each waited for. */
const LOAD = `
import os, sys, time
rate = float(sys.argv[1])
t0 = time.monotonic()
n = 0
while True:
    due = int((time.monotonic() - t0) * rate)
    while n < due:
        os.waitpid(os.posix_spawn("/bin/true", ["true"], {}), 0)
        n += 1
    time.sleep(0.001)
`;

/** utime + stime of `pid`, in seconds. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
}

function metricValue(text, name) {
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line ? Number(line.split(" ")[1]) : 0;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN;
};

let daemon = null;
let browser = null;
let farm = null;
let load = null;
const dir = tempDir("bench");

async function cleanup() {
  await killChild(load, true);
  await killChild(farm, true);
  await browser?.close().catch(() => {});
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => void cleanup().then(() => process.exit(130)));
}

async function setup() {
  if (process.getuid?.() !== 0) throw new Error("BPF needs root");
  // Default rules: the loaded windows fire fork_rate, as such a host would.
  daemon = await startInsightd({ args: ["--probe-mode", "bpf"], token: TOKEN });
  const status = await daemon.json("/status");
  if (status.telemetry.mode !== "bpf") throw new Error(`insightd runs in ${status.telemetry.mode} mode`);
  const before = status.telemetry.processes ?? 0;

  // The sleepers: one shell (its own process group, killed as one) backgrounding copies of sleep.
  const sleeper = spawnNamed(dir, "/bin/sleep", SLEEPER, ["0"]);
  await new Promise((r) => sleeper.once("exit", r));
  farm = spawnNamed(
    dir,
    "/bin/sh",
    FARM,
    ["-c", `i=0; while [ $i -lt ${SLEEPERS} ]; do "$0" 600 & i=$((i+1)); done; wait`, `${dir}/${SLEEPER}`],
    { detached: true },
  );
  const t0 = Date.now();
  await until(`${SLEEPERS} sleepers in /processes`, 120_000, async () => {
    const list = await daemon.json("/processes");
    return list.processes.filter((p) => p.comm === SLEEPER).length >= SLEEPERS;
  }, 500);
  log(`${SLEEPERS} sleepers up in ${((Date.now() - t0) / 1000).toFixed(1)} s (host had ${before} processes)`);

  browser = await launchChromium();
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
  // No guardPage here: its route would pause every request in the measured windows.
  await page.goto(daemon.base + "/", { timeout: 30_000 });
  await logIn(page, TOKEN);
  await page.locator("main#dashboard").waitFor({ state: "visible", timeout: 30_000 });
  await until(`#process-count to show ${SLEEPERS}+ processes`, 60_000, async () => {
    const n = Number(((await page.locator("#process-count").textContent()) ?? "").match(/\d+/)?.[0] ?? 0);
    return n >= SLEEPERS + before * 0.5 && n;
  });
  // The latency probe: from each input event on the filter to the frame after it (the page's
  // own listener, registered first, has rendered by then).
  await page.evaluate(() => {
    const input = document.getElementById("process-filter");
    window.__latency = [];
    input.addEventListener("input", (e) => {
      const t0 = e.timeStamp;
      requestAnimationFrame(() => {
        const ch = new MessageChannel();
        ch.port1.onmessage = () => window.__latency.push(performance.now() - t0);
        ch.port2.postMessage(0);
      });
    });
  });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable");
  return { page, cdp, version: await browser.version() };
}

async function snapshot(page, cdp) {
  const [{ metrics }, stats, text] = await Promise.all([
    cdp.send("Performance.getMetrics"),
    page.evaluate(() => ({ ...window.__insightd })),
    daemon.get("/metrics").then((r) => r.text()),
  ]);
  const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
  return {
    at: performance.now(),
    task: m.TaskDuration,
    script: m.ScriptDuration,
    layout: m.LayoutDuration,
    style: m.RecalcStyleDuration,
    events: eventsTotal(text),
    sseDropped: metricValue(text, "insightd_sse_clients_dropped_total"),
    page: stats,
    cpu: cpuSeconds(daemon.pid),
  };
}

/** Types `emberuisleep` one key at a time, then clears it: one latency sample per input. */
async function filterLatency(page) {
  const filter = page.locator("input#process-filter");
  await page.evaluate(() => (window.__latency.length = 0));
  for (let round = 0; round < 2; round++) {
    await filter.click();
    for (const ch of SLEEPER) {
      await page.keyboard.press(ch);
      await sleep(150);
    }
    await page.keyboard.press("Control+A");
    await page.keyboard.press("Backspace");
    await sleep(300);
  }
  await until("the latency samples", 10_000, () =>
    page.evaluate((n) => window.__latency.length >= n, 2 * (SLEEPER.length + 1)),
  );
  return page.evaluate(() => [...window.__latency]);
}

async function window_(page, cdp, view, loaded) {
  if (loaded) {
    load = spawn("python3", ["-c", LOAD, String(SPAWN_RATE)], { stdio: "ignore", detached: true });
    await sleep(3000); // the rates and the tree settle
  } else {
    await sleep(2000);
  }
  const conn0 = await page.locator("#conn").getAttribute("data-state");
  const a = await snapshot(page, cdp);
  await sleep(WINDOW_S * 1000);
  const b = await snapshot(page, cdp);
  const rows = await page.locator("#process-tree .proc").count();
  const latency = await filterLatency(page);
  const conn = await page.locator("#conn").getAttribute("data-state");
  if (loaded) {
    await killChild(load, true);
    load = null;
  }
  const s = (b.at - a.at) / 1000;
  const renders = b.page.renders - a.page.renders;
  return {
    name: `${view}/${loaded ? "load" : "idle"}`,
    window: s,
    offered: (b.events - a.events) / s,
    read: (b.page.events - a.page.events) / s,
    task: ((b.task - a.task) * 1000) / s,
    script: ((b.script - a.script) * 1000) / s,
    layout: ((b.layout - a.layout) * 1000) / s,
    style: ((b.style - a.style) * 1000) / s,
    renders: renders / s,
    renderMs: renders ? (b.page.renderMs - a.page.renderMs) / renders : NaN,
    latency50: median(latency),
    latency90: quantile(latency, 0.9),
    latencyMax: Math.max(...latency),
    samples: latency.length,
    cpu: ((b.cpu - a.cpu) * 100) / s,
    dropped: b.sseDropped - a.sseDropped,
    rows,
    conn: `${conn0}→${conn}`,
  };
}

async function main() {
  let page, cdp, version;
  try {
    ({ page, cdp, version } = await setup());
  } catch (err) {
    console.error(`bench-ui: error: setup failed: ${err.stack ?? err}`);
    await cleanup();
    process.exit(1);
  }
  log(`Chromium ${version}, ${WINDOW_S} s windows, ${SPAWN_RATE} spawns/s offered in the loaded ones, ${ROUNDS} round(s)`);
  const results = [];
  try {
    for (const view of ["collapsed", "expanded"]) {
      if (view === "expanded") {
        const toggle = page.locator(`#process-tree .proc[data-pid="${farm.pid}"] button.toggle`);
        await toggle.click({ timeout: 15_000 });
        await until(`${SLEEPERS} rows drawn`, 30_000, async () =>
          (await page.locator("#process-tree .proc").count()) >= SLEEPERS,
        );
      }
      for (let round = 0; round < ROUNDS; round++) {
        for (const loaded of [false, true]) {
          const r = await window_(page, cdp, view, loaded);
          results.push(r);
          log(`window ${r.name}: ${r.window.toFixed(1)} s, ${r.rows} rows drawn, /stream ${r.conn}`);
        }
      }
    }
  } catch (err) {
    console.error(`bench-ui: error: setup failed during the windows: ${err.stack ?? err}`);
    await cleanup();
    process.exit(1);
  }
  await cleanup();

  const names = results.map((r) => r.name);
  const width = Math.max(...names.map((n) => n.length), 10) + 2;
  const figure = (label, key, digits = 1) =>
    log(label.padEnd(50) + results.map((r) => (Number.isFinite(r[key]) ? r[key].toFixed(digits) : "-").padStart(width)).join(""));
  log("figure".padEnd(50) + names.map((n) => n.padStart(width)).join(""));
  figure("events/s offered (insightd_events_total)", "offered");
  figure("events/s the page read (__insightd.events)", "read");
  figure("Chromium main thread busy, ms/s (TaskDuration)", "task");
  figure("script, ms/s (ScriptDuration)", "script");
  figure("layout, ms/s (LayoutDuration)", "layout");
  figure("style recalc, ms/s (RecalcStyleDuration)", "style");
  figure("renders/s (__insightd.renders)", "renders", 2);
  figure("mean render, ms (__insightd.renderMs/renders)", "renderMs", 2);
  figure("filter input to next frame, median ms", "latency50");
  figure("filter input to next frame, p90 ms", "latency90");
  figure("filter input to next frame, max ms", "latencyMax");
  figure("filter latency samples", "samples", 0);
  figure("insightd CPU, % of one core", "cpu");
  figure("/stream clients dropped in the window", "dropped", 0);
  figure("process rows drawn", "rows", 0);
}

await main();
