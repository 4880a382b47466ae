import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';

const ROOT = resolve(import.meta.dirname, '..');
const BENCH = join(ROOT, 'dist/bench/src/bench.js');
const PHASES = ['baseline', 'throughput', 'latency', 'flushOverhead', 'backlog'];

/** Every number anywhere in `value`, with its path, so a NaN or Infinity can be named. */
function numbers(value: unknown, path = ''): Array<[string, number]> {
  if (typeof value === 'number') return [[path, value]];
  if (Array.isArray(value)) return value.flatMap((v, i) => numbers(v, `${path}[${i}]`));
  if (value && typeof value === 'object')
    return Object.entries(value).flatMap(([k, v]) => numbers(v, path ? `${path}.${k}` : k));
  return [];
}

// Shape only, never speed: the figures depend on the machine and on whatever else runs on it.
describe('npm run bench -- --quick', () => {
  const out = mkdtempSync(join(tmpdir(), 'nest-outbox-bench-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('runs every phase, prints the table and writes results.json and results.svg', async () => {
    expect(existsSync(BENCH)).toBe(true); // built by `npm run build`, which `npm test` runs first
    const env = { ...process.env };
    delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the bench
    const child = spawn(process.execPath, [BENCH, '--quick', '--out', out], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((done) => child.on('exit', done));
    if (code !== 0) throw new Error(`bench --quick exited with ${code}\n${stdout}\n${stderr}`);

    expect(stdout).toMatch(/nest-outbox benchmark \(quick\) — .+, \d+ cores, .*node v\d+/);
    for (const label of ['a baseline', 'b throughput', 'c latency', 'd flush overhead', 'e backlog drain'])
      expect(stdout).toContain(label);
    expect(stdout).toMatch(/targets met: \d+\/9/);

    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(results.mode).toBe('quick');
    expect(results.errors).toEqual({});
    expect(Object.keys(results.phases).sort()).toEqual([...PHASES].sort());
    expect(results.phases.throughput.modes.map((m: { eventsPerAggregate: number }) => m.eventsPerAggregate)).toEqual([
      1, 10,
    ]);
    expect(results.phases.flushOverhead.cases.map((c: { aggregates: number }) => c.aggregates)).toEqual([1, 100]);
    expect(results.phases.backlog.rssAtQuartersMB).toHaveLength(4);
    const bad = numbers(results.phases).filter(([, v]) => !Number.isFinite(v));
    expect(bad).toEqual([]);
    expect(results.targets).toHaveLength(9);
    for (const target of results.targets) {
      expect(Number.isFinite(target.value)).toBe(true);
      expect(typeof target.met).toBe('boolean');
    }
    expect(readFileSync(join(out, 'results.svg'), 'utf8')).toMatch(
      /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"[\s\S]*<\/svg>\s*$/,
    );
  }, 180_000);
});
