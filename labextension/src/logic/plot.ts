/** A metric series as an SVG polyline: numbers only, scaled into a fixed box. */

export interface Point {
  step: number;
  value: number;
}

export interface Scaled {
  points: string; // SVG polyline points "x,y x,y"
  min: number;
  max: number;
}

/** Numeric values of a series, in step order (text/list values are left out). */
export function numericPoints(series: { step: number; value: unknown }[]): Point[] {
  return series
    .filter(m => typeof m.value === 'number' && Number.isFinite(m.value))
    .map(m => ({ step: m.step, value: m.value as number }))
    .sort((a, b) => a.step - b.step);
}

export function scale(points: Point[], width: number, height: number, pad = 4): Scaled | null {
  if (!points.length) {
    return null;
  }
  const values = points.map(p => p.value);
  const min = Math.min(...values);
  const max = Math.max(...values);
  const first = points[0].step;
  const span = Math.max(1, points[points.length - 1].step - first);
  const range = max - min || 1;
  const xy = points.map(p => {
    const x = points.length === 1 ? width / 2 : pad + ((p.step - first) / span) * (width - 2 * pad);
    const y = max === min ? height / 2 : pad + (1 - (p.value - min) / range) * (height - 2 * pad);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  return { points: xy.join(' '), min, max };
}
