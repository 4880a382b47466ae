// Run by `npm pack` / `npm publish` in libs/outbox (prepack): the package ships the repository's
// README and LICENSE, copied at pack time so there is one source of each.
import { copyFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
for (const file of ['README.md', 'LICENSE']) copyFileSync(join(root, file), join(root, 'libs', 'outbox', file));
