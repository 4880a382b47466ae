#!/usr/bin/env node
// Makes sure a Chromium the browser tests can drive is installed: CHROMIUM_PATH if set, else
// Debian's `chromium` package at /usr/bin/chromium, installed with apt-get when missing (as root).
// The browsers that Playwright or Puppeteer download are not used: the project's machines and CI
// reach only the npm registry and Debian's packages.
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

const path = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

function runnable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function version(file) {
  return execFileSync(file, ['--version'], { encoding: 'utf8', timeout: 30_000 }).trim();
}

if (!runnable(path)) {
  const root = process.getuid?.() === 0;
  if (process.env.CHROMIUM_PATH || !root || !runnable('/usr/bin/apt-get')) {
    console.error(
      `No Chromium at ${path}. Install Debian's package (sudo apt-get install -y chromium) ` +
        'or point CHROMIUM_PATH at a Chromium or Chrome binary, then run the command again.',
    );
    process.exit(1);
  }
  console.log('Chromium is missing; installing Debian package chromium (apt-get) for the browser tests.');
  const apt = (args) =>
    execFileSync('apt-get', args, {
      stdio: 'inherit',
      timeout: 900_000,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  apt(['update']);
  apt(['install', '-y', '--no-install-recommends', 'chromium']);
}
console.log(`Browser for the tests: ${version(path)} (${path}).`);
