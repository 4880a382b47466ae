import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from '@jest/globals';

const DIST = join(process.cwd(), 'libs', 'outbox', 'dist');
const run = promisify(execFile);

/** Every package a built module reaches through its static and dynamic imports, following the library's own files. */
function packagesReachedFrom(entry: string): Set<string> {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    for (const [, specifier] of source.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
      if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier));
      else
        packages.add(specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]);
    }
  };
  visit(join(DIST, entry));
  return packages;
}

describe('the entry points of the built package', () => {
  it("keeps terminus and Bull Board out of 'nest-outbox': only the subpaths load them", () => {
    const main = packagesReachedFrom('index.js');
    expect(main.has('bullmq')).toBe(true);
    for (const optional of ['@nestjs/terminus', '@bull-board/api', '@bull-board/express'])
      expect([optional, main.has(optional)]).toEqual([optional, false]);
    expect(packagesReachedFrom('health.js').has('@nestjs/terminus')).toBe(true);
    expect([...packagesReachedFrom('dashboard.js')]).toEqual(
      expect.arrayContaining(['@bull-board/api', '@bull-board/express']),
    );
    expect(packagesReachedFrom('dashboard.js').has('@nestjs/terminus')).toBe(false);
  });

  it('resolves nest-outbox/health and nest-outbox/dashboard through the package exports, as an app imports them', async () => {
    const script = `
      const main = await import('nest-outbox');
      const health = await import('nest-outbox/health');
      const dashboard = await import('nest-outbox/dashboard');
      console.log(JSON.stringify([typeof main.OutboxModule, typeof health.OutboxHealthModule,
        typeof health.OutboxHealthIndicator, typeof dashboard.OutboxDashboardModule]));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 60_000 });
    expect(JSON.parse(stdout)).toEqual(['function', 'function', 'function', 'function']);
  });
});
