import { SseParser } from '../src/logic/sse';

describe('SSE parser', () => {
  it('assembles events split across arbitrary chunks', () => {
    const p = new SseParser();
    const text = 'retry: 1000\n\nevent: log\nid: 5.0\ndata: {"text":"hi"}\n\nevent: end\ndata: {}\n\n';
    const out = [];
    for (let i = 0; i < text.length; i += 3) {
      out.push(...p.push(text.slice(i, i + 3)));
    }
    expect(out).toEqual([
      { event: 'log', id: '5.0', data: '{"text":"hi"}' },
      { event: 'end', id: '5.0', data: '{}' }
    ]);
  });

  it('joins multi-line data, skips comments and handles CRLF', () => {
    const p = new SseParser();
    expect(p.push(': keepalive\r\nevent: status\r\ndata: a\r\ndata: b\r\n\r\n')).toEqual([
      { event: 'status', data: 'a\nb' }
    ]);
  });

  it('holds back an event until its blank line arrives', () => {
    const p = new SseParser();
    expect(p.push('event: log\ndata: x\n')).toEqual([]);
    expect(p.push('\n')).toEqual([{ event: 'log', data: 'x' }]);
  });
});
