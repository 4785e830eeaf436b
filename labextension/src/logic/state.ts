/**
 * The state of one open run panel, as a reducer over the server's follow events, so what the
 * panel shows after any sequence of events is testable without a browser.
 */

export interface MetricPoint {
  name: string;
  value: unknown;
  kind: string;
  step: number;
  logged_utc: string;
}

export interface RunView {
  status: string;
  detail: string | null;
  exitCode: number | null;
  done: boolean;
  driver: string;
  control: string;
  cursor: string | null;
  metrics: Record<string, MetricPoint[]>;
  truncated: boolean;
}

export type FollowEvent =
  | { event: 'log'; data: { text: string; source: string; cursor: string | null } }
  | { event: 'metric'; data: MetricPoint }
  | { event: 'status'; data: { status: string; detail: string | null; exit_code: number | null; done: boolean } }
  | { event: 'end'; data: Record<string, never> };

/** The log kept in the panel is capped: a 300 MB log must not live in the page. */
export const MAX_LOG_CHARS = 2_000_000;

export function initialView(status = 'Queued'): RunView {
  return {
    status,
    detail: null,
    exitCode: null,
    done: false,
    driver: '',
    control: '',
    cursor: null,
    metrics: {},
    truncated: false
  };
}

function capped(text: string): [string, boolean] {
  return text.length > MAX_LOG_CHARS ? [text.slice(text.length - MAX_LOG_CHARS), true] : [text, false];
}

export function reduce(view: RunView, ev: FollowEvent): RunView {
  switch (ev.event) {
    case 'log': {
      const key = ev.data.source === 'control' ? 'control' : 'driver';
      const [text, cut] = capped(view[key] + ev.data.text);
      return { ...view, [key]: text, cursor: ev.data.cursor ?? view.cursor, truncated: view.truncated || cut };
    }
    case 'metric': {
      const m = ev.data;
      const series = view.metrics[m.name] || [];
      if (series.some(p => p.step === m.step)) {
        return view; // a resumed stream may repeat a metric; steps identify them
      }
      const next = [...series, m].sort((a, b) => a.step - b.step);
      return { ...view, metrics: { ...view.metrics, [m.name]: next } };
    }
    case 'status':
      if (view.done) {
        return view; // a terminal status never changes
      }
      return {
        ...view,
        status: ev.data.status,
        detail: ev.data.detail,
        exitCode: ev.data.exit_code,
        done: ev.data.done
      };
    case 'end':
      return { ...view, done: true };
    default:
      return view;
  }
}

export interface RunSummary {
  id: string;
  status: string;
  [key: string]: unknown;
}

/** Did the runs list change in a way the user can see (ids, order or any status)? */
export function runsChanged(before: RunSummary[], after: RunSummary[]): boolean {
  if (before.length !== after.length) {
    return true;
  }
  return before.some(
    (r, i) => r.id !== after[i].id || r.status !== after[i].status || r.duration !== after[i].duration
  );
}
