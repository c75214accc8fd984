// The dashboard behind insightd's bearer token, in the system Chromium against a real insightd
// (--token, /proc polling, no model) on loopback: without a token the page shows only the
// login form and no data; a wrong token says so and still shows nothing; the right one opens
// the dashboard with process rows, survives a reload (sessionStorage), and never appears in a
// URL. Run by build-support/check-ui.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";

import {
  CHROMIUM,
  INSIGHTD,
  foreignRequests,
  guardPage,
  launchChromium,
  logIn,
  missing,
  shot,
  sleep,
  startInsightd,
  steps,
  until,
} from "./harness.mjs";

const TOKEN = `ui-token-${process.pid}-${Date.now()}`;
const WRONG = `wrong-${TOKEN}`;
/** The page's own files (/, /ui/*: served without the token, no data). */
const isPageFile = (url) => {
  const path = new URL(url).pathname;
  return path === "/" || path.startsWith("/ui/");
};

/** What a logged-out page must not hold: rows, findings, the daemon's facts. */
async function assertNoData(page, seen, base) {
  assert.equal(await page.locator("main#dashboard").isHidden(), true, "main#dashboard is visible");
  for (const sel of [".proc[data-pid]", ".alert", ".insight", ".exit", ".probe"]) {
    assert.equal(await page.locator(sel).count(), 0, `the logged-out page has ${sel} elements`);
  }
  for (const id of ["version", "backend", "model", "drops", "process-count"]) {
    const text = (await page.locator(`#${id}`).textContent()) ?? "";
    assert.equal(text.trim(), "", `#${id} holds "${text}" while logged out`);
  }
  // The page got no data at all: every API answer it saw was a 401.
  const data = seen.responses.filter(
    (r) => r.url.startsWith(base) && !isPageFile(r.url) && r.status !== 401,
  );
  assert.deepEqual(data, [], "the page got API answers other than 401 without the right token");
}

test("the token flow: login form, wrong token, right token, reload", { timeout: 240_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) return missing(t, `no Chromium at ${CHROMIUM} (apt: chromium)`);
  if (!existsSync(INSIGHTD)) return missing(t, `no insightd at ${INSIGHTD} (cargo build -p ember-insight)`);
  const step = steps(t);
  let daemon = null;
  let browser = null;
  try {
    let page, seen, base;
    await step("insightd (--token, --probe-mode procfs, no model) and Chromium start", async () => {
      daemon = await startInsightd({ args: ["--probe-mode", "procfs"], token: TOKEN });
      base = daemon.base;
      browser = await launchChromium();
      page = await (await browser.newContext()).newPage();
      seen = await guardPage(page, base);
    });

    await step("without a token: only the login form, no data, nothing stored", async () => {
      await page.goto(base + "/", { timeout: 30_000 });
      await page.locator("form#login").waitFor({ state: "visible", timeout: 30_000 });
      await sleep(2500); // a page that polled anyway would have asked by now
      await assertNoData(page, seen, base);
      // No token stored: the page learns that one is needed without a 401 (/ui/auth.json).
      assert.deepEqual(seen.consoleErrors, [], "console errors before any token was typed");
      const refused = seen.responses.filter((r) => r.status === 401);
      assert.deepEqual(refused, [], "requests refused before any token was typed");
      assert.equal(await page.evaluate(() => sessionStorage.getItem("insightd.token")), null);
      assert.equal(await page.evaluate(() => sessionStorage.length), 0, "sessionStorage is not empty");
      await page.screenshot({ path: shot("login.png"), fullPage: true });
    });

    await step("a wrong token: #login-error says so, still no data", async () => {
      const errorsBefore = seen.consoleErrors.length;
      await logIn(page, WRONG);
      const error = page.locator("#login-error");
      await until("#login-error to hold a message", 15_000, async () => ((await error.textContent()) ?? "").trim());
      assert.equal(await page.locator("form#login").isVisible(), true, "the login form went away");
      await sleep(1000);
      await assertNoData(page, seen, base);
      assert.equal(
        await page.evaluate(() => sessionStorage.getItem("insightd.token")),
        null,
        "the refused token stayed in sessionStorage",
      );
      const asked = seen.requests.filter((r) => r.headers.authorization === `Bearer ${WRONG}`);
      assert.ok(asked.length > 0, "the wrong token was never sent in an Authorization header");
      // Exactly one refused request, which Chromium itself logs as a console error.
      const errors = seen.consoleErrors.slice(errorsBefore);
      assert.equal(errors.length, 1, `console errors after the wrong token: ${JSON.stringify(errors)}`);
      assert.match(errors[0].text, /status of 401 \(Unauthorized\)/, `console error: ${errors[0].text}`);
    });

    let loggedInAt;
    await step("the right token: the dashboard shows process rows", async () => {
      loggedInAt = Date.now();
      await logIn(page, TOKEN);
      await page.locator("main#dashboard").waitFor({ state: "visible", timeout: 15_000 });
      assert.equal(await page.locator("form#login").isHidden(), true, "the login form still shows");
      await until(".proc rows in #process-tree", 30_000, async () => (await page.locator("#process-tree .proc").count()) > 0);
      assert.equal(await page.evaluate(() => sessionStorage.getItem("insightd.token")), TOKEN);
      assert.match((await page.locator("#process-count").textContent()) ?? "", /^\d+ processes$/);
    });

    await step("a reload keeps the session; the token is in no URL, only in the header", async () => {
      const before = seen.requests.length;
      await page.reload({ timeout: 30_000 });
      await page.locator("main#dashboard").waitFor({ state: "visible", timeout: 15_000 });
      await until(".proc rows after the reload", 30_000, async () => (await page.locator("#process-tree .proc").count()) > 0);
      assert.equal(await page.locator("form#login").isHidden(), true, "the reload asked for the token again");
      await until("a /processes request after the reload", 10_000, () =>
        seen.requests.slice(before).some((r) => r.url === `${base}/processes`),
      );
      const urls = [page.url(), ...seen.navigations, ...seen.requests.map((r) => r.url)];
      for (const u of urls) {
        for (const secret of [TOKEN, WRONG]) {
          assert.ok(!u.includes(secret) && !decodeURIComponent(u).includes(secret), `a URL holds the token: ${u}`);
        }
      }
      // Every API request since the login carried the token, as a header.
      const api = seen.requests.filter((r, i) => i >= before && !isPageFile(r.url));
      assert.ok(api.length > 0, "no API request after the reload");
      for (const r of api) assert.equal(r.headers.authorization, `Bearer ${TOKEN}`, `${r.url} without the token`);
      assert.deepEqual(foreignRequests(seen, base), [], "requests left the daemon's origin");
      assert.deepEqual(seen.pageErrors, [], "uncaught errors in the page");
      // The only console error of the whole flow: Chromium's line for the wrong token's 401.
      const after = seen.consoleErrors.filter((e) => e.at >= loggedInAt);
      assert.deepEqual(after, [], "console errors after the login");
      assert.equal(seen.consoleErrors.length, 1, `console errors: ${JSON.stringify(seen.consoleErrors)}`);
    });
  } finally {
    await browser?.close().catch(() => {});
    await daemon?.stop();
  }
});
