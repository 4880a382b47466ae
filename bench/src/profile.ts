import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

/**
 * The V8 CPU profiler of this process, started and stopped around a measured window (not the
 * whole process with its boot), writing the same .cpuprofile `node --cpu-prof` writes.
 */
export class Profiler {
  private session: Session | undefined;

  async start(samplingIntervalUs = 1000): Promise<void> {
    this.session = new Session();
    this.session.connect();
    await this.session.post('Profiler.enable');
    await this.session.post('Profiler.setSamplingInterval', { interval: samplingIntervalUs });
    await this.session.post('Profiler.start');
  }

  async stop(file: string): Promise<void> {
    const session = this.session;
    if (!session) throw new Error('The profiler was not started.');
    this.session = undefined;
    try {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
    } finally {
      session.disconnect();
    }
  }
}

/** Runs `fn` under the profiler and writes `file`. */
export async function profiled<T>(file: string, fn: () => Promise<T>, samplingIntervalUs = 1000): Promise<T> {
  const profiler = new Profiler();
  await profiler.start(samplingIntervalUs);
  try {
    return await fn();
  } finally {
    await profiler.stop(file);
  }
}
