// insightd's dashboard. The page is static; all data comes from the API with the bearer
// token the operator types once (kept in sessionStorage). Updates are coalesced: stream
// events only bump counters, and the page redraws on timers (rates and exits once a second,
// the process tree every 2 s), so its cost does not grow with the event rate.

import { Unauthorized, getJson, readStream, setToken, token } from "./api";
import { byId } from "./dom";
import { Alerts, Insights, RecentExits, renderCounts, renderStatus } from "./panels";
import { Rates } from "./sparkline";
import { ProcessTree } from "./tree";
import type { Alert, ExitEvent, Insight, ProcessList, Status } from "./types";

/** Counters for tests and build-support/bench-ui. */
const stats = { events: 0, renders: 0, renderMs: 0 };
(window as unknown as { __insightd: typeof stats }).__insightd = stats;

function timed(f: () => void): void {
  const t0 = performance.now();
  f();
  stats.renders++;
  stats.renderMs += performance.now() - t0;
}

const login = byId<HTMLFormElement>("login");
const dashboard = byId("dashboard");
const loginError = byId("login-error");
const conn = byId("conn");
const errorLine = byId("error");

let session: AbortController | null = null;
const tree = new ProcessTree();
const rates = new Rates();
const alerts = new Alerts();
const insights = new Insights();
const exits = new RecentExits();

function showLogin(message: string): void {
  session?.abort();
  session = null;
  dashboard.hidden = true;
  // Nothing of a previous session stays on the page.
  tree.clear();
  rates.clear();
  alerts.clear();
  insights.clear();
  exits.clear();
  for (const id of ["version", "backend", "mode", "probes", "drops", "model", "counts"]) byId(id).replaceChildren();
  login.hidden = false;
  loginError.textContent = message;
  byId<HTMLInputElement>("token").focus();
}

login.addEventListener("submit", (e) => {
  e.preventDefault();
  const input = byId<HTMLInputElement>("token");
  setToken(input.value.trim() || null);
  input.value = "";
  void start(true);
});

byId("logout").addEventListener("click", () => {
  setToken(null);
  showLogin("");
});

async function start(typed = false): Promise<void> {
  let status: Status;
  try {
    // Ask for a token before any data request when the daemon wants one (no 401 to learn it).
    if (token() === null) {
      const auth = await getJson<{ token_required: boolean }>("/ui/auth.json");
      if (auth.token_required) return showLogin("");
    }
    status = await getJson<Status>("/status");
  } catch (err) {
    if (err instanceof Unauthorized) {
      const hadToken = token() !== null;
      setToken(null);
      showLogin(hadToken && typed ? "The daemon refused that token." : hadToken ? "The stored token was refused." : "");
      return;
    }
    errorLine.textContent = `${err}; retrying`;
    setTimeout(() => void start(), 2000);
    return;
  }
  login.hidden = true;
  loginError.textContent = "";
  dashboard.hidden = false;
  byId("logout").hidden = token() === null;
  run(status);
}

function run(first: Status): void {
  session?.abort();
  const ctl = new AbortController();
  session = ctl;
  let status = first;
  timed(() => {
    renderStatus(first);
    renderCounts(first, alerts, insights);
  });

  const failed = (err: unknown) => {
    if (ctl.signal.aborted) return;
    if (err instanceof Unauthorized) {
      setToken(null);
      showLogin("The daemon no longer accepts the stored token.");
      return;
    }
    errorLine.textContent = String(err);
  };
  /** Runs `f` now and then every `ms` after it finishes, until the session ends. */
  const every = (ms: number, f: () => Promise<void>) => {
    const loop = async () => {
      if (ctl.signal.aborted) return;
      try {
        await f();
        errorLine.textContent = "";
      } catch (err) {
        failed(err);
      }
      if (!ctl.signal.aborted) setTimeout(loop, ms);
    };
    void loop();
  };

  every(2000, async () => {
    const s = await getJson<Status>("/status", ctl.signal);
    status = s;
    timed(() => {
      renderStatus(s);
      renderCounts(s, alerts, insights);
    });
  });
  every(2000, async () => {
    const list = await getJson<ProcessList>("/processes", ctl.signal);
    timed(() => tree.update(list.processes, list.total));
  });
  every(5000, async () => {
    const list = await getJson<{ alerts: Alert[] }>("/alerts", ctl.signal);
    timed(() => alerts.replace(list.alerts));
  });
  every(10000, async () => {
    const list = await getJson<{ insights: Insight[]; reason: string | null }>("/insights", ctl.signal);
    timed(() => insights.replace(list.insights, list.reason));
  });

  const tick = setInterval(() => {
    if (ctl.signal.aborted) return clearInterval(tick);
    timed(() => {
      rates.tick();
      exits.flush();
    });
  }, 1000);

  // The stream: reconnects with backoff (the daemon drops a client that falls behind).
  void (async () => {
    let backoff = 1000;
    while (!ctl.signal.aborted) {
      try {
        await readStream((e) => {
          stats.events++;
          backoff = 1000;
          conn.dataset.state = "live";
          switch (e.kind) {
            case "alert":
              timed(() => {
                alerts.upsert(JSON.parse(e.data) as Alert);
                renderCounts(status, alerts, insights);
              });
              break;
            case "insight":
              timed(() => {
                insights.add(JSON.parse(e.data) as Insight);
                renderCounts(status, alerts, insights);
              });
              break;
            case "exit":
              rates.count(e.kind);
              exits.add(JSON.parse(e.data) as ExitEvent);
              break;
            default:
              rates.count(e.kind);
          }
        }, ctl.signal);
      } catch (err) {
        if (ctl.signal.aborted) return;
        if (err instanceof Unauthorized) return failed(err);
      }
      if (ctl.signal.aborted) return;
      conn.dataset.state = "reconnecting";
      conn.title = `the event stream ended; reconnecting in ${backoff / 1000} s`;
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 10000);
    }
  })();
  conn.dataset.state = "live";
  conn.title = "live: /stream";
}

void start();
