import type { DrainRun } from './measure/drain.js';
import type { EndToEndRun } from './measure/end-to-end.js';
import type { Target } from './phases/phase.js';
import type { ConsumeCeilingResult } from './phases/consume-ceiling.js';
import type { EndToEndResult } from './phases/end-to-end.js';
import type { FlushOverheadResult } from './phases/flush-overhead.js';
import type { LatencyResult } from './phases/latency.js';
import type { NaiveDualWriteResult } from './phases/naive-dual-write.js';
import type { RawBullmqResult } from './phases/raw-bullmq.js';
import type { ScaleResult } from './phases/scale.js';
import type { Results } from './report.js';

/** A hand-written SVG of results.json for the README: six panels, bars coloured by their target. */

const W = 960;
const H = 900;
const PANEL_W = 460;
const PANEL_H = 270;
const LABEL_W = 170;
const COLORS = {
  met: '#2e9d5b',
  missed: '#e07b24',
  neutral: '#6b7b93',
  outbox: '#3b6fd8',
  naive: '#9b59b6',
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

/** One horizontal bar per row, split into segments (CPU ms per event by process). */
function stacked(
  x: number,
  y: number,
  title: string,
  rows: Array<{ label: string; parts: Array<[string, number]> }>,
  note: string,
): string {
  const palette = ['#3b6fd8', '#2e9d5b', '#e0a224', '#c0392b', '#6b7b93', '#9b59b6'];
  const names = [...new Set(rows.flatMap((r) => r.parts.map(([name]) => name)))];
  const colorOfPart = (name: string) => palette[names.indexOf(name) % palette.length];
  const out = [
    text(x, y + 16, title, 'font-weight="600" font-size="15"'),
    text(x, y + 34, note, 'font-size="11" fill="#666"'),
  ];
  const top = y + 48;
  const plotW = PANEL_W - LABEL_W - 80;
  const rowH = Math.min(34, (PANEL_H - 90) / Math.max(1, rows.length));
  const max =
    Math.max(0.001, ...rows.map((r) => r.parts.reduce((sum, [, v]) => sum + (Number.isFinite(v) ? v : 0), 0))) * 1.05;
  rows.forEach((row, i) => {
    const cy = top + i * rowH;
    out.push(text(x, cy + rowH / 2 + 4, row.label, 'font-size="12"'));
    let at = x + LABEL_W;
    let total = 0;
    for (const [name, value] of row.parts) {
      if (!Number.isFinite(value) || value <= 0) continue;
      const w = (value / max) * plotW;
      out.push(
        `<rect x="${at.toFixed(1)}" y="${(cy + 4).toFixed(1)}" width="${w.toFixed(1)}" height="${(rowH - 8).toFixed(1)}" fill="${colorOfPart(name)}"/>`,
      );
      at += w;
      total += value;
    }
    out.push(text(at + 6, cy + rowH / 2 + 4, `${total.toFixed(2)} ms`, 'font-size="12"'));
  });
  const legendY = top + rows.length * rowH + 14;
  names.forEach((name, i) => {
    const lx = x + LABEL_W + i * 78;
    out.push(`<rect x="${lx}" y="${legendY - 9}" width="10" height="10" fill="${colorOfPart(name)}"/>`);
    out.push(text(lx + 14, legendY, name, 'font-size="11"'));
  });
  return out.join('\n');
}

/** RSS over time during the two drains, with the 200 MB line of the handler drain's target. */
function rssLines(x: number, y: number, relay: DrainRun | undefined, handlers: DrainRun | undefined): string {
  const out = [text(x, y + 16, 'Backlog drains: RSS of the outbox process (MB)', 'font-weight="600" font-size="15"')];
  const drains = [
    { run: handlers, color: COLORS.outbox, name: 'through the handlers' },
    { run: relay, color: COLORS.neutral, name: 'relay alone' },
  ].filter((d): d is { run: DrainRun; color: string; name: string } => d.run !== undefined);
  if (drains.length === 0) return out.concat(text(x, y + 60, 'n/a')).join('\n');
  out.push(text(x, y + 34, `${int(drains[0].run.rows)} rows; dashed: 200 MB target`, 'font-size="11" fill="#666"'));
  const left = x + 50;
  const top = y + 48;
  const w = PANEL_W - 80;
  const h = PANEL_H - 100;
  const maxMB = Math.max(250, ...drains.map((d) => d.run.peakRssMB * 1.1));
  // Each drain on its own time scale (0 – 100 % of its duration): the relay alone is several times faster.
  const px = (share: number) => left + Math.min(1, share) * w;
  const py = (mb: number) => top + h - (mb / maxMB) * h;
  for (const mb of [0, 100, 200, 300, 400].filter((v) => v <= maxMB)) {
    out.push(
      `<line x1="${left}" x2="${left + w}" y1="${py(mb).toFixed(1)}" y2="${py(mb).toFixed(1)}" stroke="${COLORS.grid}"/>`,
    );
    out.push(text(left - 8, py(mb) + 4, String(mb), 'font-size="11" text-anchor="end"'));
  }
  out.push(
    `<line x1="${left}" x2="${left + w}" y1="${py(200).toFixed(1)}" y2="${py(200).toFixed(1)}" stroke="${COLORS.target}" stroke-width="1.5" stroke-dasharray="5 3"/>`,
  );
  drains.forEach((d, i) => {
    const points = d.run.rssSamples
      .map((s) => `${px(s.seconds / d.run.seconds).toFixed(1)},${py(s.mb).toFixed(1)}`)
      .join(' ');
    out.push(`<polyline points="${points}" fill="none" stroke="${d.color}" stroke-width="2"/>`);
    out.push(
      text(
        left + 8,
        top + h - 24 + i * 14,
        `${d.name}: peak ${int(d.run.peakRssMB)} MB, ${int(d.run.perSecond)}/s`,
        `font-size="11" fill="${d.color}"`,
      ),
    );
  });
  out.push(
    text(
      left + w / 2,
      top + h + 16,
      'share of each drain’s duration (0 – 100 %)',
      'font-size="11" text-anchor="middle"',
    ),
  );
  return out.join('\n');
}

export function renderChart(r: Results): string {
  const t = new Map(r.targets.map((target) => [target.id, target]));
  const p = r.phases as {
    rawBullmq?: RawBullmqResult;
    consumeCeiling?: ConsumeCeilingResult;
    naiveDualWrite?: NaiveDualWriteResult;
    endToEnd?: EndToEndResult;
    latency?: LatencyResult;
    flushOverhead?: FlushOverheadResult;
    relayDrain?: DrainRun;
    handlerDrain?: DrainRun;
    sharedDrain?: DrainRun;
    scale?: ScaleResult;
  };
  const rate = (label: string, value: number | undefined, color: string, target?: Target): Bar => ({
    label,
    value,
    text: value === undefined ? '' : `${int(value)}/s`,
    color: target ? colorOf(target) : color,
  });
  const two = p.scale?.runs.find((s) => s.outboxProcesses === 2)?.run;
  const rates: Bar[] = [
    rate('raw BullMQ', p.rawBullmq?.endToEndPerSecond, COLORS.neutral),
    rate('naive dual write', p.naiveDualWrite?.fullRate.eventsPerSecond, COLORS.naive),
    rate('outbox, API + outbox', p.endToEnd?.deployment.eventsPerSecond, COLORS.outbox, t.get('e2e.vs-naive')),
    rate('outbox, one process', p.endToEnd?.single.eventsPerSecond, COLORS.outbox),
    rate('outbox, 2 outbox procs', two?.eventsPerSecond, COLORS.outbox),
    rate('consume ceiling', p.consumeCeiling?.jobsPerSecond, COLORS.neutral),
    rate('drain via handlers', p.handlerDrain?.perSecond, COLORS.outbox, t.get('drain.vs-ceiling')),
    rate('  16 runs/transaction', p.sharedDrain?.perSecond, COLORS.outbox),
  ];
  const rateMax = Math.max(1, ...rates.map((bar) => bar.value ?? 0)) * 1.05;

  const ms = (v: number | undefined) => (v === undefined ? '' : `${v.toFixed(1)} ms`);
  const d = p.latency?.deployment.latency;
  const n = p.naiveDualWrite?.steady.latency;
  const s = p.latency?.single.latency;
  const latency: Bar[] = [
    { label: 'outbox p50', value: d?.p50, text: ms(d?.p50), color: COLORS.outbox },
    { label: 'outbox p99', value: d?.p99, text: ms(d?.p99), color: colorOf(t.get('latency.p99')), target: 12 },
    { label: 'outbox p99.9', value: d?.p999, text: ms(d?.p999), color: COLORS.outbox },
    { label: 'one process p99', value: s?.p99, text: ms(s?.p99), color: COLORS.outbox },
    { label: 'naive p50', value: n?.p50, text: ms(n?.p50), color: COLORS.naive },
    { label: 'naive p99', value: n?.p99, text: ms(n?.p99), color: COLORS.naive },
    { label: 'naive p99.9', value: n?.p999, text: ms(n?.p999), color: COLORS.naive },
  ];
  const latencyMax = Math.max(15, ...latency.map((bar) => (bar.value ?? 0) * 1.1));

  const cpuParts = (run: EndToEndRun | undefined): Array<[string, number]> =>
    run
      ? Object.entries(run.cpu.byProcess).map(([role, c]) => [role === 'worker' ? 'outbox' : role, c.msPerEvent])
      : [];
  const cpu = [
    { label: `outbox, ${p.latency?.rate ?? 200}/s`, parts: cpuParts(p.latency?.deployment) },
    { label: `naive, ${p.latency?.rate ?? 200}/s`, parts: cpuParts(p.naiveDualWrite?.steady) },
    { label: 'outbox, full speed', parts: cpuParts(p.endToEnd?.deployment) },
    { label: 'naive, full speed', parts: cpuParts(p.naiveDualWrite?.fullRate) },
  ];

  const ratio = (label: string, id: string, target: number): Bar => {
    const value = t.get(id)?.value ?? undefined;
    return { label, value, text: value === undefined ? '' : value.toFixed(2), color: colorOf(t.get(id)), target };
  };
  const ratios: Bar[] = [
    ratio('outbox / naive (≥1)', 'e2e.vs-naive', 1),
    ratio('drain / ceiling (≥0.8)', 'drain.vs-ceiling', 0.8),
    ratio('relay / addBulk (≥0.8)', 'relay.vs-addbulk', 0.8),
    ratio('flush ×, 1 agg (≤1.3)', 'flush.ratio.1', 1.3),
    ratio('flush ×, 100 aggs (≤1.5)', 'flush.ratio.100', 1.5),
    ratio('outbox core share (≤0.2)', 'latency.outbox-cpu', 0.2),
  ];
  const ratioMax = Math.max(1.6, ...ratios.map((bar) => (bar.value ?? 0) * 1.05));

  const flushBars: Bar[] = (p.flushOverhead?.cases ?? []).map((k) => ({
    label: `${k.aggregates} agg, ${k.column}`,
    value: k.addedMs,
    text: `${k.addedMs < 0 ? '−' : '+'}${Math.abs(k.addedMs).toFixed(2)} ms ×${k.ratio.toFixed(2)}`,
    color:
      k.column === 'json' ? colorOf(t.get(k.aggregates === 1 ? 'flush.ratio.1' : 'flush.ratio.100')) : COLORS.neutral,
  }));
  const flushMax = Math.max(0.3, ...flushBars.map((bar) => (bar.value ?? 0) * 1.05));

  const m = r.machine;
  const x2 = 20 + PANEL_W + 20;
  const y1 = 56;
  const y2 = y1 + PANEL_H + 10;
  const y3 = y2 + PANEL_H + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif" fill="${COLORS.text}">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    text(20, 28, `nest-outbox benchmark (${r.mode})`, 'font-weight="700" font-size="18"'),
    text(
      20,
      46,
      `${m.cpu}, ${m.cores} cores · node ${m.node} · ${r.startedAt.slice(0, 10)} · load ${m.loadAtStart[0]} at start · green: target met, orange: not met, dashed red: target`,
      'font-size="12" fill="#555"',
    ),
    bars(
      20,
      y1,
      'Events per second',
      rates,
      rateMax,
      `${r.sizes.writers} writers, one event per transaction; drains: ${int(r.sizes.backlogRows)} rows`,
    ),
    bars(
      x2,
      y1,
      `Commit → handler start at ${p.latency?.rate ?? 200}/s`,
      latency,
      latencyMax,
      'open loop; outbox: API process + outbox process',
    ),
    stacked(20, y2, 'CPU ms per event, by process', cpu, 'node API / outbox (or worker) / postgres / redis'),
    bars(x2, y2, 'Targets (ratios within this run)', ratios, ratioMax),
    bars(
      20,
      y3,
      'Time a flush adds (capture on − off)',
      flushBars,
      flushMax,
      'payload + headers column: jsonb (library) or a lever',
    ),
    rssLines(x2, y3, p.relayDrain, p.handlerDrain),
    '</svg>',
    '',
  ].join('\n');
}
