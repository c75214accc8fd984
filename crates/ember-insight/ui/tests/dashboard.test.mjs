// The whole dashboard in the system Chromium against a real insightd (--token, the test model,
// BPF probes) on loopback: log in through the form; the header shows the daemon's version and
// its CPU variant; the
// process tree, filtered, shows a marker process this test owns; a fork storm raises a
// fork_rate alert naming the storm's command, and the model's insight for that alert follows.
// No console error, no uncaught error, and no request off the daemon's origin all along.
// Screenshots (full page) go to target/ui-screenshots/. Run by build-support/check-ui.

import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { test } from "node:test";

import {
  CHROMIUM,
  INSIGHTD,
  REQUIRE_BPF,
  bpfArgs,
  foreignRequests,
  guardPage,
  killChild,
  launchChromium,
  logIn,
  missing,
  shot,
  spawnNamed,
  startInsightd,
  steps,
  tempDir,
  testModel,
  until,
} from "./harness.mjs";

/** The marker's command name: a copy of /bin/sleep under this name. */
const MARKER = "emberuimarker";
/** The storm's command name: a copy of /bin/sh under this name runs a fork loop. */
const STORM = "emberuistorm";
const TOKEN = `ui-dashboard-${process.pid}-${Date.now()}`;

// The config of crates/ember-insight/tests/storm.rs: fork_rate fires within seconds of the
// storm, one insight per rule and command, every other rule off.
const CONFIG = readFileSync(new URL("../../tests/fork-storm.toml", import.meta.url), "utf8");

test("the dashboard: status, process tree, a fork storm's alert and its insight", { timeout: 600_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) return missing(t, `no Chromium at ${CHROMIUM} (apt: chromium)`);
  if (!existsSync(INSIGHTD)) return missing(t, `no insightd at ${INSIGHTD} (cargo build -p ember-insight)`);
  const model = testModel();
  if (!model) return missing(t, "test model not found (EMBER_TEST_MODEL): run build-support/fetch-model");
  const step = steps(t);
  const dir = tempDir("dashboard");
  let daemon = null;
  let browser = null;
  let marker = null;
  let storm = null;
  try {
    let page, seen, base, status, noBpf;
    await step("insightd (--token, --model, BPF probes) is ready and runs in BPF mode", async (st) => {
      // The model at normal priority: in background (the default) a busy test machine would
      // starve the insight this test waits for.
      daemon = await startInsightd({
        args: ["--model", model, "--model-priority", "normal", ...bpfArgs()],
        config: CONFIG,
        token: TOKEN,
      });
      base = daemon.base;
      status = await daemon.json("/status");
      if (status.telemetry.mode !== "bpf") {
        const why = `insightd runs in ${status.telemetry.mode} mode (${status.telemetry.fallback_reason})`;
        if (REQUIRE_BPF) assert.fail(`BPF is required but ${why}`);
        noBpf = `fork events need BPF (run as root): ${why}`;
      }
    }, 180_000);
    // Without BPF there is no fork event, so no storm alert: the rest cannot run.
    if (noBpf) return missing(t, noBpf);

    await step("the login form opens the dashboard; #version shows the daemon's version", async () => {
      marker = spawnNamed(dir, "/bin/sleep", MARKER, ["600"]);
      browser = await launchChromium();
      page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
      seen = await guardPage(page, base);
      await page.goto(base + "/", { timeout: 30_000 });
      await logIn(page, TOKEN);
      await page.locator("main#dashboard").waitFor({ state: "visible", timeout: 30_000 });
      const version = page.locator("#status #version");
      await until("#version to show the version", 15_000, async () =>
        (await version.textContent())?.includes(status.version),
      );
      assert.equal((await version.textContent()).trim(), `${status.name} ${status.version}`);
      // The CPU variant of ggml's CPU backend that this daemon runs, as /status reports it.
      assert.ok(status.cpu_variant, "/status names no CPU variant");
      const backend = (await page.locator("#status #backend").textContent()).trim();
      assert.ok(backend.startsWith(`CPU variant ${status.cpu_variant} · `), `#backend shows: ${backend}`);
      await until("#conn live", 15_000, async () => (await page.locator("#conn").getAttribute("data-state")) === "live");
      await until("process rows", 30_000, async () => (await page.locator("#process-tree .proc").count()) > 0);
      for (const probe of ["exec", "fork", "exit"]) {
        const state = await page.locator(`#probes .probe[data-probe="${probe}"]`).getAttribute("data-state", { timeout: 15_000 });
        assert.equal(state, "up", `probe ${probe} is ${state}`);
      }
      await page.screenshot({ path: shot("dashboard.png"), fullPage: true });
    });

    await step(`#process-filter "${MARKER}" shows the marker process (comm and pid)`, async () => {
      const filter = page.locator("input#process-filter");
      await filter.fill(MARKER);
      const row = page.locator(`#process-tree .proc[data-pid="${marker.pid}"]`);
      await row.waitFor({ state: "visible", timeout: 30_000 });
      assert.equal((await row.locator(".comm").textContent()).trim(), MARKER);
      assert.equal((await row.locator(".pid").textContent()).trim(), String(marker.pid));
      // The filter narrows the tree to the match and its ancestors.
      const rows = await page.locator("#process-tree .proc").count();
      const all = Number(((await page.locator("#process-count").textContent()) ?? "").match(/\d+/)?.[0]);
      assert.ok(rows < all, `the filter left ${rows} of ${all} rows`);
      const comms = await page.locator("#process-tree .proc .comm").allTextContents();
      assert.ok(comms.filter((c) => c === MARKER).length === 1, `rows: ${comms.join(", ")}`);
      await filter.fill("");
    });

    let alertId;
    await step(`a fork storm (${STORM}) raises an .alert[data-rule=fork_rate] naming it`, async () => {
      storm = spawnNamed(dir, "/bin/sh", STORM, ["-c", "while :; do /bin/true; done"]);
      const alert = await until(`a fork_rate alert for ${STORM}`, 90_000, async () => {
        for (const a of await page.locator('#alerts .alert[data-rule="fork_rate"]').all()) {
          const said = `${await a.locator(".message").textContent()} ${await a.locator(".evidence").textContent()}`;
          if (said.includes(STORM)) return { id: await a.getAttribute("data-id"), said, severity: await a.getAttribute("data-severity") };
        }
        return null;
      }, 500);
      alertId = alert.id;
      assert.match(alertId, /^\d+$/);
      assert.equal(alert.severity, "critical");
      assert.ok(alert.said.includes(`${STORM} (pid ${storm.pid})`), `the alert does not name pid ${storm.pid}: ${alert.said}`);
      await page.locator(`#alerts .alert[data-id="${alertId}"]`).scrollIntoViewIfNeeded();
      await page.screenshot({ path: shot("alert.png"), fullPage: true });
      // The storm has done its part: the model gets the CPU back.
      await killChild(storm);
    });

    await step("the model's .insight for that alert shows, with a summary", async () => {
      const insight = page.locator(`#insights .insight[data-alert-id="${alertId}"]`);
      await insight.waitFor({ state: "attached", timeout: 240_000 });
      const summary = ((await insight.locator(".summary").textContent()) ?? "").trim();
      assert.ok(summary.length > 0, "the insight's .summary is empty");
      await insight.scrollIntoViewIfNeeded();
      await page.screenshot({ path: shot("insight.png"), fullPage: true });
      console.log(`# insight for alert ${alertId}: ${summary}`);
    }, 260_000);

    await step("no console error, no page error, no request off the daemon's origin", async () => {
      assert.deepEqual(seen.pageErrors, [], "uncaught errors in the page");
      // None at all: with no token stored the page asks /ui/auth.json, not the API (no 401).
      assert.deepEqual(seen.consoleErrors, [], "console errors");
      assert.deepEqual(foreignRequests(seen, base), [], "requests left the daemon's origin");
      assert.ok(seen.requests.length > 0);
    });
  } finally {
    await killChild(storm);
    await killChild(marker);
    await browser?.close().catch(() => {});
    await daemon?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
