import type { Results, Target } from './report.js';

/** A hand-written SVG of results.json for the README: four panels, bars coloured by their target. */

const W = 960;
const H = 620;
const PANEL_W = 460;
const PANEL_H = 270;
const LABEL_W = 170;
const COLORS = {
  met: '#2e9d5b',
  missed: '#e07b24',
  neutral: '#6b7b93',
  outbox: '#3b6fd8',
  target: '#c0392b',
  grid: '#e3e6ea',
  text: '#222',
};

interface Bar {
  label: string;
  value: number | null | undefined;
  text: string;
  color: string;
  target?: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const int = (v: number) => Math.round(v).toLocaleString('en-US');
const text = (x: number, y: number, s: string, attrs = '') =>
  `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`;

function colorOf(target: Target | undefined): string {
  if (!target || target.met === null) return COLORS.neutral;
  return target.met ? COLORS.met : COLORS.missed;
}

/** Horizontal bars on a linear axis from 0 to `max`; a bar past `max` is clipped and says so. */
function bars(x: number, y: number, title: string, items: Bar[], max: number, note = ''): string {
  const out = [text(x, y + 16, title, 'font-weight="600" font-size="15"')];
  if (note) out.push(text(x, y + 34, note, 'font-size="11" fill="#666"'));
  const top = y + 48;
  const plotW = PANEL_W - LABEL_W - 80;
  const rowH = Math.min(40, (PANEL_H - 60) / items.length);
  const scale = (v: number) => (Math.min(v, max) / max) * plotW;
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    const cy = top + i * rowH;
    out.push(text(x, cy + rowH / 2 + 4, item.label, 'font-size="12"'));
    const x0 = x + LABEL_W;
    out.push(
      `<rect x="${x0}" y="${(cy + 4).toFixed(1)}" width="${plotW}" height="${(rowH - 8).toFixed(1)}" fill="${COLORS.grid}"/>`,
    );
    if (item.value !== null && item.value !== undefined && Number.isFinite(item.value)) {
      const w = scale(item.value);
      out.push(
        `<rect x="${x0}" y="${(cy + 4).toFixed(1)}" width="${w.toFixed(1)}" height="${(rowH - 8).toFixed(1)}" fill="${item.color}"/>`,
      );
      const clipped = item.value > max ? ' ›' : '';
      out.push(text(x0 + plotW + 6, cy + rowH / 2 + 4, item.text + clipped, 'font-size="12"'));
    } else {
      out.push(text(x0 + plotW + 6, cy + rowH / 2 + 4, 'n/a', 'font-size="12"'));
    }
    if (item.target !== undefined) {
      const tx = x0 + scale(item.target);
      out.push(
        `<line x1="${tx.toFixed(1)}" x2="${tx.toFixed(1)}" y1="${(cy + 1).toFixed(1)}" y2="${(cy + rowH - 1).toFixed(1)}" stroke="${COLORS.target}" stroke-width="2" stroke-dasharray="3 2"/>`,
      );
    }
  }
  return out.join('\n');
}

/** RSS during the backlog drain against the share of rows dispatched, with the 250 MB line. */
function rssLine(x: number, y: number, r: Results): string {
  const e = r.phases.backlog;
  const out = [text(x, y + 16, 'e. RSS during backlog drain (MB)', 'font-weight="600" font-size="15"')];
  if (!e) return out.concat(text(x, y + 60, 'n/a')).join('\n');
  out.push(text(x, y + 34, `${int(e.rows)} rows, relay alone; dashed: 250 MB target`, 'font-size="11" fill="#666"'));
  const left = x + 50;
  const top = y + 48;
  const w = PANEL_W - 80;
  const h = PANEL_H - 90;
  const maxMB = Math.max(300, e.rssPeakMB * 1.1);
  const px = (percent: number) => left + (percent / 100) * w;
  const py = (mb: number) => top + h - (mb / maxMB) * h;
  for (const mb of [0, 100, 200, 300].filter((v) => v <= maxMB)) {
    out.push(
      `<line x1="${left}" x2="${left + w}" y1="${py(mb).toFixed(1)}" y2="${py(mb).toFixed(1)}" stroke="${COLORS.grid}"/>`,
    );
    out.push(text(left - 8, py(mb) + 4, String(mb), 'font-size="11" text-anchor="end"'));
  }
  for (const percent of [0, 25, 50, 75, 100])
    out.push(text(px(percent), top + h + 16, `${percent}%`, 'font-size="11" text-anchor="middle"'));
  out.push(
    `<line x1="${left}" x2="${left + w}" y1="${py(250).toFixed(1)}" y2="${py(250).toFixed(1)}" stroke="${COLORS.target}" stroke-width="1.5" stroke-dasharray="5 3"/>`,
  );
  const points = e.samples.map((s) => `${px(s.percent).toFixed(1)},${py(s.mb).toFixed(1)}`).join(' ');
  out.push(`<polyline points="${points}" fill="none" stroke="${COLORS.outbox}" stroke-width="2"/>`);
  out.push(
    text(
      left + w / 2,
      top + h + 32,
      `dispatched · peak ${int(e.rssPeakMB)} MB, live heap ${int(e.liveHeapAtBootMB)} → ${int(e.liveHeapAfterMB)} MB`,
      'font-size="11" text-anchor="middle"',
    ),
  );
  return out.join('\n');
}

export function renderChart(r: Results): string {
  const t = new Map(r.targets.map((target) => [target.id, target]));
  const { baseline: a, throughput: b, latency: c, flushOverhead: d, backlog: e } = r.phases;
  const mode = (n: number) => b?.modes.find((m) => m.eventsPerAggregate === n);
  const flush = (n: number) => d?.cases.find((k) => k.aggregates === n);

  const rates: Bar[] = [
    {
      label: 'a BullMQ end to end',
      value: a?.endToEndPerSecond,
      text: a ? `${int(a.endToEndPerSecond)}/s` : '',
      color: COLORS.neutral,
    },
    {
      label: 'a addBulk only',
      value: a?.addBulkPerSecond,
      text: a ? `${int(a.addBulkPerSecond)}/s` : '',
      color: COLORS.neutral,
    },
    {
      label: 'b outbox, 1 event/agg',
      value: mode(1)?.eventsPerSecond,
      text: mode(1) ? `${int(mode(1)!.eventsPerSecond)}/s` : '',
      color: COLORS.outbox,
    },
    {
      label: 'b outbox, 10 events/agg',
      value: mode(10)?.eventsPerSecond,
      text: mode(10) ? `${int(mode(10)!.eventsPerSecond)}/s` : '',
      color: COLORS.outbox,
    },
    {
      label: 'e relay drain',
      value: e?.rowsPerSecond,
      text: e ? `${int(e.rowsPerSecond)}/s` : '',
      color: COLORS.outbox,
    },
  ];
  const rateMax = Math.max(1, ...rates.map((bar) => bar.value ?? 0)) * 1.05;

  const ms = (v: number | undefined) => (v === undefined ? '' : `${v.toFixed(1)} ms`);
  const latency: Bar[] = [
    { label: 'p50', value: c?.p50, text: ms(c?.p50), color: colorOf(t.get('c.p50')), target: 5 },
    { label: 'p95', value: c?.p95, text: ms(c?.p95), color: COLORS.neutral },
    { label: 'p99', value: c?.p99, text: ms(c?.p99), color: colorOf(t.get('c.p99')), target: 20 },
    { label: 'max', value: c?.max, text: ms(c?.max), color: COLORS.neutral },
  ];
  const latencyMax = Math.max(25, (c?.p99 ?? 0) * 1.3);

  const ratio = (label: string, id: string, value: number | null | undefined, target: number): Bar => ({
    label,
    value,
    text: value === null || value === undefined ? '' : value.toFixed(2),
    color: colorOf(t.get(id)),
    target,
  });
  const ratios: Bar[] = [
    ratio('b/a, 1 event/agg (≥0.8)', 'b.ratio.1', mode(1)?.ratioToBaseline, 0.8),
    ratio('b/a, 10 events/agg (≥0.8)', 'b.ratio.10', mode(10)?.ratioToBaseline, 0.8),
    ratio('d on/off, 1 agg (≤1.35)', 'd.ratio.1', flush(1)?.ratio, 1.35),
    ratio('d on/off, 100 aggs (≤1.2)', 'd.ratio.100', flush(100)?.ratio, 1.2),
    ratio('e drain/addBulk (≥0.8)', 'e.ratio', e?.ratioToAddBulk, 0.8),
  ];
  const ratioMax = Math.max(1.5, ...ratios.map((bar) => (bar.value ?? 0) * 1.05));

  const m = r.machine;
  const x2 = 20 + PANEL_W + 20;
  const y1 = 56;
  const y2 = y1 + PANEL_H + 24;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif" fill="${COLORS.text}">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    text(20, 28, `nest-outbox benchmark (${r.mode})`, 'font-weight="700" font-size="18"'),
    text(
      20,
      46,
      `${m.cpu}, ${m.cores} cores · node ${m.node} · ${r.startedAt.slice(0, 10)} · load ${m.loadAtStart} at start · green: target met, orange: not met, dashed red: target`,
      'font-size="12" fill="#555"',
    ),
    bars(
      20,
      y1,
      'Throughput (per second)',
      rates,
      rateMax,
      b ? `b: ${b.modes[0]?.writers} writers, handler writes only its inbox row` : '',
    ),
    bars(
      x2,
      y1,
      'c. Latency commit → handler start',
      latency,
      latencyMax,
      c ? `${c.rate} events/s for ${c.seconds} s` : '',
    ),
    bars(20, y2, 'Ratios against targets', ratios, ratioMax),
    rssLine(x2, y2, r),
    '</svg>',
    '',
  ].join('\n');
}
