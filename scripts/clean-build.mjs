// Removes build output before a build, so a source file that was moved or deleted leaves nothing
// behind in dist (tsc never deletes outputs it no longer produces). The build-info files live
// inside dist, so a clean build is also a full one. Arguments: folders relative to the repo root.
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const folders = process.argv.length > 2 ? process.argv.slice(2) : ['dist', 'libs/outbox/dist', 'libs/contracts/dist'];
for (const folder of folders) rmSync(join(root, folder), { recursive: true, force: true });
