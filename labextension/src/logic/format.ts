/** Display text for runs and targets: pure functions, unit-tested without a browser. */

export const TERMINAL = ['Completed', 'Failed', 'Canceled'];

export function isTerminal(status: string): boolean {
  return TERMINAL.includes(status);
}

/** CSS modifier for a status badge. */
export function statusClass(status: string): string {
  switch (status) {
    case 'Completed':
      return 'jp-AmlExec-status-ok';
    case 'Failed':
      return 'jp-AmlExec-status-failed';
    case 'Canceled':
      return 'jp-AmlExec-status-canceled';
    default:
      return 'jp-AmlExec-status-live';
  }
}

/** Workbench's "H:MM:SS.ffffff" as "1h 02m", "3m 04s" or "5.2s". */
export function shortDuration(text: string | null | undefined): string {
  if (!text) {
    return '';
  }
  const m = /^(\d+):(\d\d):(\d\d)(?:\.(\d+))?$/.exec(text);
  if (!m) {
    return text;
  }
  const [h, min, s] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const frac = m[4] ? Number(`0.${m[4]}`) : 0;
  if (h > 0) {
    return `${h}h ${String(min).padStart(2, '0')}m`;
  }
  if (min > 0) {
    return `${min}m ${String(s).padStart(2, '0')}s`;
  }
  return `${(s + frac).toFixed(1)}s`;
}

export function bytes(n: number): string {
  if (n < 1024) {
    return `${n} B`;
  }
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** A metric value in a table cell. */
export function metricText(value: unknown): string {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : value.toPrecision(4).replace(/\.?0+$/, '');
  }
  if (value === null || value === undefined) {
    return '';
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** Where a target is: "host:port", or its image/interpreter for local ones. */
export function targetWhere(t: {
  address?: string | null;
  port?: number | null;
  base_docker_image?: string | null;
  python_location?: string | null;
}): string {
  if (t.address) {
    return t.port ? `${t.address}:${t.port}` : t.address;
  }
  return t.base_docker_image || t.python_location || '';
}

/** The folder that holds a file path (the file browser's paths: '' is the root). */
export function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}
