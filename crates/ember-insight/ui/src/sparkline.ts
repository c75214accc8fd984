// Event rates: per kind, events counted per second from /stream, drawn as sparklines of the
// last minute. Counting is a few increments per event; drawing happens once a second.

import { byId, el, rate, setText } from "./dom";

export const KINDS = ["exec", "fork", "exit", "oom", "tcp"] as const;
const HISTORY = 60;

interface Series {
  counts: number[];
  current: number;
  canvas: HTMLCanvasElement;
  value: HTMLElement;
}

export class Rates {
  private series = new Map<string, Series>();

  constructor() {
    const root = byId("rates");
    for (const kind of KINDS) {
      const canvas = el("canvas", { width: "180", height: "36", "aria-hidden": "true" });
      const value = el("span", { class: "rate-value" }, "0/s");
      root.append(el("div", { class: "rate", "data-kind": kind }, el("span", { class: "rate-kind" }, kind), value, canvas));
      this.series.set(kind, { counts: new Array(HISTORY).fill(0), current: 0, canvas, value });
    }
  }

  /** Zeroes every series (logout). */
  clear(): void {
    for (const s of this.series.values()) {
      s.counts.fill(0);
      s.current = 0;
    }
    this.tick();
  }

  /** Counts one event of `kind` (other kinds are ignored). */
  count(kind: string): void {
    const s = this.series.get(kind);
    if (s) s.current++;
  }

  /** Closes the current second: shifts the history and redraws. */
  tick(): void {
    for (const s of this.series.values()) {
      s.counts.push(s.current);
      s.counts.shift();
      s.current = 0;
      setText(s.value, rate(s.counts[HISTORY - 1]));
      draw(s.canvas, s.counts);
    }
  }
}

function draw(canvas: HTMLCanvasElement, counts: number[]): void {
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const max = Math.max(1, ...counts);
  const step = width / (counts.length - 1);
  ctx.beginPath();
  counts.forEach((c, i) => {
    const x = i * step;
    const y = height - 2 - (c / max) * (height - 4);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.strokeStyle = "#3b82f6";
  ctx.lineWidth = 1.5;
  ctx.stroke();
  ctx.lineTo(width, height);
  ctx.lineTo(0, height);
  ctx.closePath();
  ctx.fillStyle = "rgba(59,130,246,0.15)";
  ctx.fill();
}
