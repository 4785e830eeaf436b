/**
 * Requests to the jupyter_amlexec REST API through JupyterLab's ServerConnection (it adds the
 * token/XSRF the server wants). Streams are read with fetch, because EventSource cannot send the
 * Authorization header; the SSE text goes through the tested parser in logic/sse.
 */
import { ServerConnection } from '@jupyterlab/services';

import { SseEvent, SseParser } from './logic/sse';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

export class AmlClient {
  readonly settings: ServerConnection.ISettings;

  constructor(settings?: ServerConnection.ISettings) {
    this.settings = settings ?? ServerConnection.makeSettings();
  }

  get baseUrl(): string {
    return this.settings.baseUrl;
  }

  async json<T>(url: string, init: RequestInit = {}): Promise<T> {
    const resp = await ServerConnection.makeRequest(url, init, this.settings);
    const text = await resp.text();
    let doc: unknown = {};
    try {
      doc = text ? JSON.parse(text) : {};
    } catch {
      doc = { message: text };
    }
    if (!resp.ok) {
      const message = (doc as { message?: string }).message || resp.statusText;
      throw new ApiError(message, resp.status);
    }
    return doc as T;
  }

  post<T>(url: string, body: unknown = {}): Promise<T> {
    return this.json<T>(url, { method: 'POST', body: JSON.stringify(body) });
  }

  /** Server-sent events of `url` as they arrive; ends when the server ends the stream. */
  async *events(url: string, init: RequestInit = {}, signal?: AbortSignal): AsyncGenerator<SseEvent> {
    const resp = await ServerConnection.makeRequest(url, { ...init, signal }, this.settings);
    if (!resp.ok || !resp.body) {
      const text = await resp.text();
      let message = resp.statusText;
      try {
        message = JSON.parse(text).message || message;
      } catch {
        // not JSON: keep the status text
      }
      throw new ApiError(message, resp.status);
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          break;
        }
        for (const ev of parser.push(decoder.decode(value, { stream: true }))) {
          yield ev;
        }
      }
    } finally {
      reader.releaseLock();
    }
  }

  /** A URL the browser can open or download directly (cookie or token auth). */
  withToken(url: string): string {
    const token = this.settings.token;
    if (!token) {
      return url;
    }
    return url + (url.includes('?') ? '&' : '?') + `token=${encodeURIComponent(token)}`;
  }
}
