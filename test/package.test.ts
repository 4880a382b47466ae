import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from '@jest/globals';

const run = promisify(execFile);
const LIBRARY = join(process.cwd(), 'libs', 'outbox');

/** What `npm pack` would put in the tarball (it runs the prepack script: clean build, README and LICENSE copied in). */
async function packedFiles(): Promise<string[]> {
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts=false'], {
    cwd: LIBRARY,
    timeout: 120_000,
  });
  const [pack] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ files: Array<{ path: string }> }>;
  return pack.files.map((file) => file.path);
}

describe('the published package', () => {
  it('ships README, LICENSE, the build and the sources its source maps point at, and nothing else', async () => {
    const files = await packedFiles();
    expect(files).toEqual(
      expect.arrayContaining(['README.md', 'LICENSE', 'package.json', 'dist/index.js', 'dist/index.d.ts']),
    );
    expect(files.filter((file) => /\.spec\.|tsbuildinfo|^test\/|^bench\//.test(file))).toEqual([]);

    const shipped = new Set(files);
    const maps = files.filter((file) => file.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(20);
    const missing: string[] = [];
    for (const map of maps) {
      const { sources } = JSON.parse(readFileSync(join(LIBRARY, map), 'utf8')) as { sources: string[] };
      for (const source of sources) {
        const target = normalize(join(dirname(map), source));
        if (!shipped.has(target)) missing.push(`${map} -> ${target}`);
      }
    }
    expect(missing).toEqual([]);

    // Every compiled module has its source: nothing stale from a moved or deleted file.
    const stale = files.filter(
      (file) =>
        file.startsWith('dist/') &&
        file.endsWith('.js') &&
        !shipped.has(file.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts')),
    );
    expect(stale).toEqual([]);
  });

  it('gives the README the package ships the same text as the repository front door', async () => {
    await packedFiles();
    expect(readFileSync(join(LIBRARY, 'README.md'), 'utf8')).toBe(
      readFileSync(join(process.cwd(), 'README.md'), 'utf8'),
    );
  });
});
