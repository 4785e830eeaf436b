import { initialView, MAX_LOG_CHARS, reduce, runsChanged } from '../src/logic/state';

const metric = (step: number, value: number) => ({
  event: 'metric' as const,
  data: { name: 'acc', value, kind: 'scalar', step, logged_utc: '' }
});

describe('run view reducer', () => {
  it('appends log text by source and remembers the cursor', () => {
    let v = initialView();
    v = reduce(v, { event: 'log', data: { text: 'a\n', source: 'driver', cursor: '2.0' } });
    v = reduce(v, { event: 'log', data: { text: 'built\n', source: 'control', cursor: '2.6' } });
    v = reduce(v, { event: 'log', data: { text: 'b\n', source: 'driver', cursor: '4.6' } });
    expect([v.driver, v.control, v.cursor]).toEqual(['a\nb\n', 'built\n', '4.6']);
  });

  it('keeps metric series in step order without repeats from a resumed stream', () => {
    let v = initialView();
    for (const ev of [metric(1, 0.5), metric(0, 0.1), metric(1, 0.5)]) {
      v = reduce(v, ev);
    }
    expect(v.metrics.acc.map(m => m.value)).toEqual([0.1, 0.5]);
  });

  it('never leaves a terminal status', () => {
    let v = reduce(initialView(), {
      event: 'status',
      data: { status: 'Canceled', detail: null, exit_code: null, done: true }
    });
    v = reduce(v, { event: 'status', data: { status: 'Running', detail: null, exit_code: null, done: false } });
    expect([v.status, v.done]).toEqual(['Canceled', true]);
  });

  it('caps the log it keeps and says so', () => {
    const big = 'x'.repeat(MAX_LOG_CHARS);
    let v = reduce(initialView(), { event: 'log', data: { text: big, source: 'driver', cursor: null } });
    v = reduce(v, { event: 'log', data: { text: 'tail', source: 'driver', cursor: null } });
    expect(v.driver.length).toBe(MAX_LOG_CHARS);
    expect(v.driver.endsWith('tail')).toBe(true);
    expect(v.truncated).toBe(true);
  });

  it('sees a status change in the runs list but not an unchanged page', () => {
    const a = [{ id: 'r1', status: 'Running' }];
    expect(runsChanged(a, [{ id: 'r1', status: 'Running' }])).toBe(false);
    expect(runsChanged(a, [{ id: 'r1', status: 'Completed' }])).toBe(true);
    expect(runsChanged(a, [{ id: 'r2', status: 'Queued' }, ...a])).toBe(true);
  });
});
