// The header, the alert list, the insights and the recent exits. Each keeps its data by id
// and redraws only when it changed.

import { byId, clock, el, setText } from "./dom";
import type { Alert, ExitEvent, Insight, Pod, Status } from "./types";

export function renderStatus(s: Status): void {
  setText(byId("version"), `${s.name} ${s.version}`);
  // Which of the binary's CPU variants runs (null when none can: then backend says why).
  setText(byId("backend"), s.cpu_variant ? `CPU variant ${s.cpu_variant} · ${s.backend}` : s.backend);
  const t = s.telemetry;
  setText(
    byId("mode"),
    t.running ? `probes: ${t.mode ?? "?"}${t.fallback_reason ? ` (${t.fallback_reason})` : ""}` : `telemetry: ${t.error ?? "starting"}`,
  );
  const probes = byId("probes");
  const wanted = t.probes.map((p) => `${p.name}:${p.state}:${p.reason ?? ""}`).join("|");
  if (probes.dataset.key !== wanted) {
    probes.dataset.key = wanted;
    probes.replaceChildren(
      ...t.probes.map((p) =>
        el("span", { class: "probe", "data-probe": p.name, "data-state": p.state, title: p.reason ?? p.state }, p.name),
      ),
    );
  }
  const drops = t.drops.ring_buffer + t.drops.channel;
  const dropsNode = byId("drops");
  setText(dropsNode, `drops: ${t.drops.ring_buffer} ring buffer, ${t.drops.channel} channel`);
  dropsNode.classList.toggle("bad", drops > 0);
  const m = s.model;
  let model: string;
  switch (m.state) {
    case "ready":
      model = `model: ${m.name} (${m.description})`;
      break;
    case "loading":
      model = `model: loading ${m.path}`;
      break;
    case "failed":
      model = `model: failed (${m.error})`;
      break;
    default:
      model = `model: none`;
  }
  setText(byId("model"), model);
  byId("model").dataset.state = m.state;
}

/** The header's counts: /status's figures, raised by what /stream has shown since (an alert or
 * insight that arrived between two polls is counted at once, not up to 2 s later). */
export function renderCounts(s: Status | null, alerts: Alerts, insights: Insights): void {
  const processes = s?.telemetry.processes;
  const active = Math.max(s?.alerts.active ?? 0, alerts.activeCount());
  const made = Math.max(s?.insights ?? 0, insights.count());
  setText(
    byId("counts"),
    `${processes ?? "–"} processes · ${plural(active, "active alert")} · ${plural(made, "insight")}`,
  );
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

export class Alerts {
  private alerts = new Map<number, Alert>();
  private key = "";
  private readonly root = byId("alerts");

  clear(): void {
    this.alerts.clear();
    this.key = "-";
    this.root.replaceChildren();
  }

  /** Replaces the list with `/alerts`. */
  replace(list: Alert[]): void {
    this.alerts = new Map(list.map((a) => [a.id, a]));
    this.render();
  }

  /** An `alert` event of /stream: new, or a repeat of a kept one. */
  upsert(a: Alert): void {
    this.alerts.set(a.id, a);
    this.render();
  }

  get(id: number): Alert | undefined {
    return this.alerts.get(id);
  }

  activeCount(): number {
    let n = 0;
    for (const a of this.alerts.values()) if (a.active) n++;
    return n;
  }

  private render(): void {
    const list = [...this.alerts.values()].sort((a, b) => b.id - a.id).slice(0, 200);
    const key = list.map((a) => `${a.id}:${a.count}:${a.active}`).join(",");
    if (key === this.key) return;
    this.key = key;
    if (list.length === 0) {
      this.root.replaceChildren(el("p", { class: "empty" }, "No alert has fired."));
      return;
    }
    this.root.replaceChildren(...list.map(alertNode));
  }
}

/** The pod and container of an alert's or insight's subject: short ids, the full ones on hover. */
export function podBadge(pod: Pod | null): HTMLElement | string {
  if (!pod) return "";
  const container = pod.container_id ? ` / ${pod.container_id.slice(0, 12)}` : "";
  const title = `pod ${pod.uid}${pod.container_id ? `, container ${pod.container_id}` : ""}, ${pod.qos_class}${pod.runtime ? `, ${pod.runtime}` : ""}`;
  return el("span", { class: "pod", title, "data-pod-uid": pod.uid }, `pod ${pod.uid.slice(0, 8)}${container}`);
}

function alertNode(a: Alert): HTMLElement {
  const e = a.evidence;
  const figures = [
    `${e.value.toFixed(1)} ${e.unit} (threshold ${e.threshold} over ${e.window_s} s)`,
    ...e.details.map(([k, v]) => `${k}: ${v}`),
  ];
  return el(
    "article",
    {
      class: `alert ${a.active ? "active" : "resolved"}`,
      "data-id": String(a.id),
      "data-rule": a.rule,
      "data-severity": a.severity,
    },
    el(
      "header",
      {},
      el("span", { class: "severity" }, a.severity),
      el("span", { class: "rule" }, a.rule),
      el("span", { class: "subject" }, a.subject.pid ? `${a.subject.comm} [${a.subject.pid}]` : a.subject.comm),
      podBadge(a.subject.pod),
      el("time", {}, `${clock(a.last_seen)}${a.count > 1 ? ` ×${a.count}` : ""}${a.active ? "" : " · resolved"}`),
    ),
    el("p", { class: "message" }, a.message),
    el("ul", { class: "evidence" }, ...figures.map((f) => el("li", {}, f))),
  );
}

export class Insights {
  private insights = new Map<number, Insight>();
  private key = "";
  private readonly root = byId("insights");
  private reason = "";

  clear(): void {
    this.insights.clear();
    this.key = "-";
    this.root.replaceChildren();
  }

  replace(list: Insight[], reason: string | null): void {
    this.insights = new Map(list.map((i) => [i.alert_id, i]));
    this.reason = reason ?? "";
    this.render();
  }

  add(i: Insight): void {
    this.insights.set(i.alert_id, i);
    this.render();
  }

  count(): number {
    return this.insights.size;
  }

  private render(): void {
    const list = [...this.insights.values()].sort((a, b) => b.alert_id - a.alert_id).slice(0, 100);
    const key = list.map((i) => i.alert_id).join(",") + "|" + this.reason;
    if (key === this.key) return;
    this.key = key;
    if (list.length === 0) {
      this.root.replaceChildren(el("p", { class: "empty" }, this.reason || "No insight yet."));
      return;
    }
    this.root.replaceChildren(...list.map(insightNode));
  }
}

function insightNode(i: Insight): HTMLElement {
  const body = i.insight;
  const confidence = Math.round(Math.min(1, Math.max(0, body.confidence)) * 100);
  return el(
    "article",
    { class: "insight", "data-alert-id": String(i.alert_id), "data-rule": i.rule },
    el(
      "header",
      {},
      el("span", { class: "rule" }, i.rule),
      el("span", { class: "subject" }, i.subject_comm),
      podBadge(i.subject_pod),
      el("span", { class: "confidence", title: "the model's own confidence" }, `${confidence}%`),
      el("time", {}, `${clock(i.created)} · ${(i.took_ms / 1000).toFixed(1)} s, ${i.tokens} tokens`),
    ),
    el("p", { class: "summary" }, body.summary),
    el("p", { class: "cause" }, el("b", {}, "Likely cause: "), body.likely_cause),
    el("ol", { class: "actions" }, ...body.suggested_actions.map((a) => el("li", {}, a))),
  );
}

/** The last exits seen on /stream, newest first. */
export class RecentExits {
  private exits: ExitEvent[] = [];
  private dirty = false;
  private readonly root = byId("recent-exits");

  clear(): void {
    this.exits = [];
    this.dirty = false;
    this.root.replaceChildren();
  }

  add(e: ExitEvent): void {
    this.exits.unshift(e);
    if (this.exits.length > 30) this.exits.length = 30;
    this.dirty = true;
  }

  /** Redraws if an exit came since the last call (called once a second, not per event). */
  flush(): void {
    if (!this.dirty) return;
    this.dirty = false;
    this.root.replaceChildren(
      ...this.exits.map((e) => {
        const failed = (e.code !== null && e.code !== 0) || e.signal !== null;
        return el(
          "li",
          { class: `exit${failed ? " failed" : ""}`, "data-pid": String(e.pid) },
          el("span", { class: "comm" }, e.comm),
          el("span", { class: "pid" }, String(e.pid)),
          el("span", { class: "code" }, e.signal !== null ? `signal ${e.signal}` : `exit ${e.code ?? "?"}`),
        );
      }),
    );
  }
}

