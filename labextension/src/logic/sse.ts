/**
 * An incremental parser of server-sent events: text arrives in arbitrary chunks from a fetch
 * reader (EventSource cannot send the Authorization header the server wants), events come out
 * whole. Only what our server sends is handled: `event:`, `id:`, `data:`, comments, `retry:`.
 */

export interface SseEvent {
  event: string;
  id?: string;
  data: string;
}

export class SseParser {
  private buffer = '';
  private event = 'message';
  private id: string | undefined;
  private data: string[] = [];

  /** Feed a chunk of text; returns the events it completed. */
  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const out: SseEvent[] = [];
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\n|\r/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith('\r\n', newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      const done = this.line(line);
      if (done) {
        out.push(done);
      }
    }
    return out;
  }

  private line(line: string): SseEvent | null {
    if (line === '') {
      if (!this.data.length) {
        this.event = 'message';
        return null;
      }
      const ev: SseEvent = { event: this.event, data: this.data.join('\n') };
      if (this.id !== undefined) {
        ev.id = this.id;
      }
      this.event = 'message';
      this.data = [];
      return ev;
    }
    if (line.startsWith(':')) {
      return null;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    if (field === 'event') {
      this.event = value;
    } else if (field === 'data') {
      this.data.push(value);
    } else if (field === 'id') {
      this.id = value;
    }
    return null;
  }
}
