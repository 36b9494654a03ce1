/**
 * A hand-rolled SVG chart of rate steps: deliveries/s and p99 latency against the offered rate, one
 * line per target. No dependencies; the file opens in any browser.
 */
import type { StepResult } from './run.js';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f'];
const W = 460;
const H = 300;
const M = { left: 64, right: 12, top: 28, bottom: 44 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function fmt(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(v % 1e6 === 0 ? 0 : 1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(v % 1e3 === 0 ? 0 : 1)}k`;
  if (v >= 1 || v === 0) return String(Math.round(v * 10) / 10);
  return v.toPrecision(1);
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

interface Series {
  readonly label: string;
  readonly points: readonly [number, number][];
}

function panel(x0: number, title: string, yLabel: string, series: readonly Series[], logY: boolean): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => !logY || v > 0);
  const xMax = niceMax(Math.max(1, ...xs));
  const yMaxRaw = Math.max(logY ? 1 : 0, ...ys);
  const yMin = logY ? 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(...ys, 1)))) : 0;
  const yMax = logY ? 10 ** Math.ceil(Math.log10(yMaxRaw)) : niceMax(yMaxRaw);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const px = (x: number): number => x0 + M.left + (x / xMax) * pw;
  const py = (y: number): number => {
    const f = logY
      ? (Math.log10(Math.max(y, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))
      : y / yMax;
    return M.top + ph - f * ph;
  };
  const out: string[] = [];
  out.push(`<text x="${x0 + W / 2}" y="16" text-anchor="middle" font-weight="bold">${esc(title)}</text>`);
  out.push(`<rect x="${x0 + M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  for (let i = 0; i <= 5; i++) {
    const x = (xMax * i) / 5;
    out.push(`<line x1="${px(x)}" y1="${M.top + ph}" x2="${px(x)}" y2="${M.top + ph + 4}" stroke="#999"/>`);
    out.push(`<text x="${px(x)}" y="${M.top + ph + 16}" text-anchor="middle">${fmt(x)}</text>`);
  }
  const yTicks: number[] = [];
  if (logY) for (let v = yMin; v <= yMax * 1.001; v *= 10) yTicks.push(v);
  else for (let i = 0; i <= 5; i++) yTicks.push((yMax * i) / 5);
  for (const y of yTicks) {
    out.push(`<line x1="${x0 + M.left}" y1="${py(y)}" x2="${x0 + M.left + pw}" y2="${py(y)}" stroke="#eee"/>`);
    out.push(`<text x="${x0 + M.left - 6}" y="${py(y) + 4}" text-anchor="end">${fmt(y)}</text>`);
  }
  out.push(`<text x="${x0 + M.left + pw / 2}" y="${H - 8}" text-anchor="middle">offered deliveries/s</text>`);
  out.push(
    `<text x="${x0 + 14}" y="${M.top + ph / 2}" text-anchor="middle" transform="rotate(-90 ${x0 + 14} ${M.top + ph / 2})">${esc(yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const pts = s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const [x, y] of s.points)
      out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${color}"/>`);
  });
  return out.join('\n');
}

/** Two panels (deliveries/s, p99 ms) against offered deliveries/s, with a legend of targets. */
export function rateChart(title: string, steps: readonly StepResult[]): string {
  const labels = [...new Set(steps.map((s) => s.label))];
  const by = (f: (s: StepResult) => number): Series[] =>
    labels.map((label) => ({
      label,
      points: steps.filter((s) => s.label === label).map((s) => [s.offered, f(s)] as [number, number]),
    }));
  const legendH = 18 * Math.ceil(labels.length / 3) + 10;
  const totalW = 2 * W;
  const totalH = H + legendH + 24;
  const legend = labels
    .map((label, i) => {
      const x = 20 + (i % 3) * 300;
      const y = H + 30 + Math.floor(i / 3) * 18;
      const c = COLORS[i % COLORS.length]!;
      return `<rect x="${x}" y="${y - 9}" width="14" height="10" fill="${c}"/><text x="${x + 20}" y="${y}">${esc(label)}</text>`;
    })
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${totalW}" height="${totalH}" viewBox="0 0 ${totalW} ${totalH}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="${totalW / 2}" y="${H + 16}" text-anchor="middle" fill="#555">${esc(title)}</text>
${panel(
  0,
  'Deliveries/s',
  'deliveries/s',
  by((s) => s.deliveriesPerSec),
  false,
)}
${panel(
  W,
  'p99 latency (ms, log scale)',
  'p99 ms',
  by((s) => s.p99),
  true,
)}
${legend}
</svg>
`;
}
