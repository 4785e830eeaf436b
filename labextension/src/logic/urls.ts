/**
 * URLs of the jupyter_amlexec REST API (server/openapi.yaml), built in one place so the widgets
 * never concatenate paths or forget to encode a query value.
 */

export const API_PREFIX = 'jupyter-amlexec/api';

export type Query = Record<string, string | number | boolean | undefined | null>;

/** Join URL parts with single slashes (a base URL ends with '/'). */
export function join(...parts: string[]): string {
  return parts
    .filter(p => p !== '')
    .map((p, i) => (i === 0 ? p.replace(/\/+$/, '') : p.replace(/^\/+|\/+$/g, '')))
    .join('/');
}

/** `?a=1&b=x` from the defined values of `query` (empty string when none). */
export function queryString(query: Query = {}): string {
  const pairs = Object.entries(query)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return pairs.length ? `?${pairs.join('&')}` : '';
}

/** Each path segment encoded, slashes kept (an artifact path like `sub/notes.txt`). */
export function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

export function apiUrl(baseUrl: string, path: string, query?: Query): string {
  return join(baseUrl, API_PREFIX, path) + queryString(query);
}

export interface RunsQuery {
  path?: string;
  status?: string;
  experiment?: string;
  target?: string;
  script?: string;
  order_by?: string;
  descending?: boolean;
  limit?: number;
  offset?: number;
}

export const urls = {
  runs: (base: string, q: RunsQuery = {}) => apiUrl(base, 'runs', { ...q }),
  run: (base: string, id: string) => apiUrl(base, `runs/${encodeURIComponent(id)}`),
  events: (base: string, id: string, cursor?: string) =>
    apiUrl(base, `runs/${encodeURIComponent(id)}/events`, { cursor: cursor || undefined }),
  log: (base: string, id: string, cursor?: string) =>
    apiUrl(base, `runs/${encodeURIComponent(id)}/log`, { cursor: cursor || undefined }),
  metrics: (base: string, id: string) => apiUrl(base, `runs/${encodeURIComponent(id)}/metrics`),
  artifacts: (base: string, id: string) => apiUrl(base, `runs/${encodeURIComponent(id)}/artifacts`),
  artifact: (base: string, id: string, path: string) =>
    apiUrl(base, `runs/${encodeURIComponent(id)}/artifacts/${encodePath(path)}`),
  cancel: (base: string, id: string) => apiUrl(base, `runs/${encodeURIComponent(id)}/cancel`),
  rerun: (base: string, id: string) => apiUrl(base, `runs/${encodeURIComponent(id)}/rerun`),
  targets: (base: string, path: string) => apiUrl(base, 'targets', { path }),
  target: (base: string, path: string, name: string) =>
    apiUrl(base, `targets/${encodeURIComponent(name)}`, { path }),
  check: (base: string, path: string, name: string) =>
    apiUrl(base, `targets/${encodeURIComponent(name)}/check`, { path }),
  prepare: (base: string, path: string, name: string) =>
    apiUrl(base, `targets/${encodeURIComponent(name)}/prepare`, { path })
};
