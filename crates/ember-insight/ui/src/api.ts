// The daemon's HTTP API as the page uses it: JSON GETs and the /stream event stream, both
// with the bearer token from sessionStorage (never in a URL).

const TOKEN_KEY = "insightd.token";

/** The API answered 401: the page needs a (new) token. */
export class Unauthorized extends Error {}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, value);
}

function headers(): HeadersInit {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

/** GET `path` as JSON; throws `Unauthorized` on 401, `Error` with the daemon's message else. */
export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const resp = await fetch(path, { headers: headers(), signal, cache: "no-store" });
  if (resp.status === 401) throw new Unauthorized("the daemon wants a bearer token");
  if (!resp.ok) {
    let message = `${resp.status} ${resp.statusText}`;
    try {
      const body = await resp.json();
      if (body?.error?.message) message = body.error.message;
    } catch {
      // not JSON: keep the status line
    }
    throw new Error(`GET ${path}: ${message}`);
  }
  return (await resp.json()) as T;
}

/** One server-sent event. */
export interface StreamEvent {
  kind: string;
  data: string;
}

/**
 * Reads `/stream` until it ends or `signal` aborts, calling `onEvent` per event. EventSource
 * cannot send a header, so this parses the SSE framing over fetch's body stream.
 */
export async function readStream(
  onEvent: (e: StreamEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  const resp = await fetch("/stream", {
    headers: { ...headers(), Accept: "text/event-stream" },
    signal,
    cache: "no-store",
  });
  if (resp.status === 401) throw new Unauthorized("the daemon wants a bearer token");
  if (!resp.ok || !resp.body) throw new Error(`GET /stream: ${resp.status} ${resp.statusText}`);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let kind = "message";
  let data: string[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop() ?? "";
    for (const raw of lines) {
      const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (line === "") {
        if (data.length > 0) onEvent({ kind, data: data.join("\n") });
        kind = "message";
        data = [];
      } else if (line.startsWith("event:")) {
        kind = line.slice(6).trim();
      } else if (line.startsWith("data:")) {
        data.push(line.slice(5).replace(/^ /, ""));
      }
      // ":" comments are keep-alives; insightd sends no "id:" or "retry:".
    }
  }
}
