import type { Verification } from './probe.js';

/** The figures of one scenario, filled in as it runs; printed as one row of the suite's table. */
export class ScenarioFigures {
  events = 0;
  kills = 0;
  restarts = 0;
  redispatched = 0;
  redelivered = 0;
  lost: number | undefined;
  duplicates: number | undefined;
  deadLetters: number | undefined;
  recoveryMs: number | undefined;
  elapsedMs = 0;
  result = 'FAIL';
  notes: string[] = [];
  private readonly started = Date.now();

  constructor(readonly name: string) {}

  record(v: Verification): void {
    this.events = v.events;
    this.redispatched = v.redispatched;
    this.redelivered = v.redeliveries;
    if (v.stalledJobs > 0) this.note(`${v.stalledJobs} jobs were found stalled and re-run by BullMQ`);
    // Counted in effects (rows, inbox marks, read-model versions); points and statuses follow from them.
    this.lost = v.lost;
    this.duplicates = v.duplicates + v.orphans;
    if (v.pointsMissing || v.pointsExtra || v.statusWrong) {
      this.note(
        `loyalty points missing ${v.pointsMissing}, in excess ${v.pointsExtra}; read-model rows with a wrong status ${v.statusWrong}`,
      );
    }
    if (v.jobs.failed > 0) this.note(`dead letter: ${v.deadLetters[0]}`);
    this.deadLetters = v.jobs.failed;
    this.elapsedMs = Date.now() - this.started;
  }

  note(text: string): void {
    this.notes.push(text);
  }

  pass(): void {
    this.result = 'pass';
    this.elapsedMs = Date.now() - this.started;
  }

  fail(error: unknown): void {
    this.elapsedMs = Date.now() - this.started;
    const first = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    this.result = 'FAIL';
    // A failed exactly-once comparison is already described by the figures and notes.
    if (!first.startsWith('expect(')) this.notes.push(first.slice(0, 200));
  }
}

/** Collects the rows of every scenario and renders them as a compact table. */
export class Scoreboard {
  private readonly rows: ScenarioFigures[] = [];

  start(name: string): ScenarioFigures {
    const figures = new ScenarioFigures(name);
    this.rows.push(figures);
    return figures;
  }

  table(): string {
    const header = [
      'scenario',
      'events',
      'kills',
      'restarts',
      're-dispatched',
      'redelivered',
      'lost',
      'dup effects',
      'dead letters',
      'recovery s',
      'elapsed s',
      'result',
    ];
    const show = (n: number | undefined) => (n === undefined ? '?' : String(n));
    const seconds = (ms: number | undefined) => (ms === undefined ? '-' : (ms / 1000).toFixed(1));
    const body = this.rows.map((r) => [
      r.name,
      String(r.events),
      String(r.kills),
      String(r.restarts),
      String(r.redispatched),
      String(r.redelivered),
      show(r.lost),
      show(r.duplicates),
      show(r.deadLetters),
      seconds(r.recoveryMs),
      seconds(r.elapsedMs),
      r.result,
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
    const line = (cells: string[]) =>
      cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
    const notes = this.rows.flatMap((r) => r.notes.map((n) => `  ${r.name.split(' ')[0]}: ${n}`));
    return [
      'nest-outbox fault suite',
      line(header),
      line(widths.map((w) => '-'.repeat(w))),
      ...body.map(line),
      ...(notes.length ? ['notes:', ...notes] : []),
    ].join('\n');
  }
}
