import { bytes, metricText, parentPath, shortDuration, statusClass, targetWhere } from '../src/logic/format';
import { numericPoints, scale } from '../src/logic/plot';

describe('formatting', () => {
  it('shortens Workbench durations', () => {
    expect(shortDuration('0:00:05.200000')).toBe('5.2s');
    expect(shortDuration('0:03:04.000000')).toBe('3m 04s');
    expect(shortDuration('26:02:00.000000')).toBe('26h 02m');
    expect(shortDuration(null)).toBe('');
  });

  it('formats sizes, metrics, places and parents', () => {
    expect([bytes(5), bytes(2048), bytes(5 * 1024 * 1024)]).toEqual(['5 B', '2.0 KB', '5.0 MB']);
    expect([metricText(0.912345), metricText(3), metricText([1, 2])]).toEqual(['0.9123', '3', '[1,2]']);
    expect(targetWhere({ address: 'gpu.lab', port: 2222 })).toBe('gpu.lab:2222');
    expect(targetWhere({ base_docker_image: 'python:3.11-slim' })).toBe('python:3.11-slim');
    expect([parentPath('a/b/train.py'), parentPath('train.py')]).toEqual(['a/b', '']);
    expect(statusClass('Failed')).toBe('jp-AmlExec-status-failed');
  });
});

describe('metric plot', () => {
  it('keeps numbers in step order and scales them into the box', () => {
    const pts = numericPoints([
      { step: 2, value: 1 },
      { step: 0, value: 0 },
      { step: 1, value: 'text' }
    ]);
    expect(pts).toEqual([
      { step: 0, value: 0 },
      { step: 2, value: 1 }
    ]);
    expect(scale(pts, 100, 50, 0)).toEqual({ points: '0.0,50.0 100.0,0.0', min: 0, max: 1 });
    expect(scale([], 100, 50)).toBeNull();
  });
});
