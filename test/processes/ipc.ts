/**
 * What every spawned test process (test/processes/*, test/fault/processes/*) shares with the suite
 * that spawned it (test/fault/support/cluster.ts): IPC messages out, and never outliving the suite.
 */

/** A message to the suite; `kind` says what it is. */
export type ProcessMessage = Record<string, unknown> & { kind: string };

/** Sends a message to the suite; resolves once it is handed over (at once when there is no channel). */
export function send(message: ProcessMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(message, undefined, undefined, () => resolve());
  });
}

/** The suite holds the IPC channel; if the suite dies, this process must not outlive it. */
export function dieWithSuite(): void {
  process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
}

/** An environment variable as a number; `undefined` when unset or empty, an error when not a number. */
export function envNumber(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  const number = Number(value);
  if (!Number.isFinite(number)) throw new Error(`Environment variable ${name} must be a number, got "${value}".`);
  return number;
}
