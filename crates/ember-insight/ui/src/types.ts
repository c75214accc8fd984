// The shapes of the JSON the page reads (see /openapi.json for the full documents).

export interface Probe {
  name: string;
  state: "up" | "down" | "off";
  reason: string | null;
}

export interface Status {
  name: string;
  version: string;
  backend: string;
  cpu_variant: string | null;
  uptime_s: number;
  ready: boolean;
  telemetry: {
    running: boolean;
    mode: string | null;
    fallback_reason: string | null;
    error: string | null;
    processes: number | null;
    fork_rate: number | null;
    events_received: number;
    drops: { ring_buffer: number; channel: number };
    probes: Probe[];
  };
  model:
    | { state: "none"; reason: string }
    | { state: "loading"; path: string }
    | { state: "failed"; path: string; error: string }
    | { state: "ready"; name: string; description: string; ctx_size: number };
  alerts: { kept: number; active: number };
  insights: number;
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  comm: string;
  argv: string[];
  cpu_percent: number;
  rss_bytes: number;
  age_s: number | null;
  running: boolean;
  exit_code: number | null;
  pod: Pod | null;
}

/** A process's Kubernetes pod, from its cgroup path. */
export interface Pod {
  uid: string;
  container_id: string | null;
  qos_class: string;
  runtime: string | null;
}

export interface ProcessList {
  total: number;
  processes: ProcessInfo[];
}

export interface Alert {
  id: number;
  rule: string;
  severity: "info" | "warning" | "critical";
  subject: { pid: number; comm: string; cgroup: string | null; pod: Pod | null };
  evidence: {
    value: number;
    threshold: number;
    unit: string;
    window_s: number;
    details: [string, string][];
  };
  message: string;
  first_seen: string;
  last_seen: string;
  count: number;
  active: boolean;
}

export interface Insight {
  alert_id: number;
  rule: string;
  subject_comm: string;
  subject_pod: Pod | null;
  insight: {
    summary: string;
    likely_cause: string;
    suggested_actions: string[];
    confidence: number;
  };
  model: string;
  created: string;
  took_ms: number;
  tokens: number;
}

/** An `exit` event of /stream. */
export interface ExitEvent {
  pid: number;
  ppid: number;
  comm: string;
  code: number | null;
  signal: number | null;
}
