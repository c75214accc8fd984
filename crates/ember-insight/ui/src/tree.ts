// The process tree: rows keyed by pid and reused between refreshes, so a refresh of 2 000
// processes rewrites only the cells that changed and rebuilds the row order only when the
// visible set or its order changed.

import { byId, bytes, duration, el, setText } from "./dom";
import type { ProcessInfo } from "./types";

/** A parent with more children than this starts collapsed (e.g. a shell with 2 000 sleeps). */
const COLLAPSE_ABOVE = 20;
/** Rows drawn at most; a filter narrows the rest. */
const MAX_ROWS = 3000;

interface Row {
  node: HTMLElement;
  toggle: HTMLButtonElement;
  comm: HTMLElement;
  cpu: HTMLElement;
  rss: HTMLElement;
  age: HTMLElement;
  kids: HTMLElement;
}

export class ProcessTree {
  private procs = new Map<number, ProcessInfo>();
  private children = new Map<number, number[]>();
  private roots: number[] = [];
  private expanded = new Map<number, boolean>();
  private rows = new Map<number, Row>();
  private order: number[] = [];
  private filter = "";
  private readonly root = byId("process-tree");
  private readonly count = byId("process-count");
  private readonly more = byId("process-more");

  constructor() {
    this.root.addEventListener("click", (e) => {
      const button = (e.target as HTMLElement).closest("button.toggle");
      const row = button?.closest<HTMLElement>(".proc");
      if (!row) return;
      const pid = Number(row.dataset.pid);
      this.expanded.set(pid, !this.isExpanded(pid));
      this.render();
    });
    const input = byId<HTMLInputElement>("process-filter");
    input.addEventListener("input", () => {
      this.filter = input.value.trim().toLowerCase();
      this.render();
    });
  }

  /** Forgets every process (logout): nothing stays on the page. */
  clear(): void {
    this.update([], 0);
    setText(this.count, "");
  }

  /** Replaces the table with a fresh `/processes` answer. */
  update(list: ProcessInfo[], total: number): void {
    this.procs = new Map(list.map((p) => [p.pid, p]));
    this.children = new Map();
    this.roots = [];
    for (const p of list) {
      if (p.ppid !== p.pid && this.procs.has(p.ppid)) {
        let kids = this.children.get(p.ppid);
        if (!kids) this.children.set(p.ppid, (kids = []));
        kids.push(p.pid);
      } else {
        this.roots.push(p.pid);
      }
    }
    for (const kids of this.children.values()) kids.sort((a, b) => a - b);
    this.roots.sort((a, b) => a - b);
    for (const pid of this.rows.keys()) if (!this.procs.has(pid)) this.rows.delete(pid);
    for (const pid of this.expanded.keys()) if (!this.procs.has(pid)) this.expanded.delete(pid);
    setText(this.count, `${total} processes`);
    this.render();
  }

  private isExpanded(pid: number): boolean {
    return this.expanded.get(pid) ?? (this.children.get(pid)?.length ?? 0) <= COLLAPSE_ABOVE;
  }

  /** The pids to show, in order, with their depth. */
  private visible(): [number, number][] {
    const out: [number, number][] = [];
    let shown: Set<number> | null = null;
    if (this.filter) {
      shown = new Set();
      for (const p of this.procs.values()) {
        const hit =
          p.comm.toLowerCase().includes(this.filter) ||
          String(p.pid) === this.filter ||
          p.argv.some((a) => a.toLowerCase().includes(this.filter)) ||
          (p.pod !== null && p.pod.uid.includes(this.filter));
        if (!hit) continue;
        // The match and its ancestors.
        for (let q: ProcessInfo | undefined = p; q && !shown.has(q.pid); q = this.procs.get(q.ppid)) {
          shown.add(q.pid);
          if (q.ppid === q.pid) break;
        }
      }
    }
    const walk = (pid: number, depth: number) => {
      if (out.length >= MAX_ROWS) return;
      if (shown && !shown.has(pid)) return;
      out.push([pid, depth]);
      if (shown || this.isExpanded(pid)) {
        for (const kid of this.children.get(pid) ?? []) walk(kid, depth + 1);
      }
    };
    for (const pid of this.roots) walk(pid, 0);
    return out;
  }

  render(): void {
    const visible = this.visible();
    const order = visible.map(([pid]) => pid);
    for (const [pid, depth] of visible) this.fill(this.row(pid), pid, depth);
    if (order.length !== this.order.length || order.some((pid, i) => pid !== this.order[i])) {
      this.root.replaceChildren(...order.map((pid) => this.row(pid).node));
      this.order = order;
    }
    const hidden = visible.length >= MAX_ROWS ? this.procs.size - visible.length : 0;
    setText(this.more, hidden > 0 ? `${hidden} more not drawn: type a filter to narrow` : "");
  }

  private row(pid: number): Row {
    let row = this.rows.get(pid);
    if (!row) {
      const toggle = el("button", { class: "toggle", type: "button" });
      const comm = el("span", { class: "comm" });
      const kids = el("span", { class: "kids" });
      const cpu = el("span", { class: "cpu" });
      const rss = el("span", { class: "rss" });
      const age = el("span", { class: "age" });
      const node = el(
        "div",
        { class: "proc", role: "treeitem", "data-pid": String(pid) },
        el("span", { class: "name" }, toggle, comm, kids),
        el("span", { class: "pid" }, String(pid)),
        cpu,
        rss,
        age,
      );
      row = { node, toggle, comm, cpu, rss, age, kids };
      this.rows.set(pid, row);
    }
    return row;
  }

  private fill(row: Row, pid: number, depth: number): void {
    const p = this.procs.get(pid);
    if (!p) return;
    const n = this.children.get(pid)?.length ?? 0;
    const open = this.filter !== "" || this.isExpanded(pid);
    row.node.dataset.ppid = String(p.ppid);
    row.node.style.setProperty("--depth", String(depth));
    setText(row.comm, p.comm);
    row.comm.title = p.argv.join(" ") + (p.pod ? `\npod ${p.pod.uid}${p.pod.container_id ? `, container ${p.pod.container_id}` : ""}` : "");
    if (p.pod) row.node.dataset.podUid = p.pod.uid;
    else delete row.node.dataset.podUid;
    setText(row.kids, n > 0 && !open ? `(${n})` : "");
    setText(row.cpu, `${p.cpu_percent.toFixed(1)}%`);
    setText(row.rss, bytes(p.rss_bytes));
    setText(row.age, duration(p.age_s));
    row.node.classList.toggle("busy", p.cpu_percent >= 50);
    row.toggle.hidden = n === 0;
    if (n > 0) {
      const state = String(open);
      if (row.toggle.getAttribute("aria-expanded") !== state) {
        row.toggle.setAttribute("aria-expanded", state);
        row.toggle.setAttribute("aria-label", `${open ? "collapse" : "expand"} ${p.comm} (${n} children)`);
      }
    } else if (row.toggle.hasAttribute("aria-expanded")) {
      row.toggle.removeAttribute("aria-expanded");
    }
  }
}
