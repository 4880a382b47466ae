import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium (installed by `npm run browser`, scripts/ensure-chromium.mjs) or CHROMIUM_PATH. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Headless Chromium as this project's machines run it: no sandbox (tests run as root), and none of
 * Chromium's own network traffic, which a closed network refuses. Playwright gives every launch a
 * new, empty profile of its own (it refuses a `--user-data-dir` argument) and removes it at close.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
