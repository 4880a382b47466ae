import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

/**
 * Runs `fn` under the V8 CPU profiler and writes `file` (the same .cpuprofile `node --cpu-prof`
 * writes), profiling only this phase rather than the whole process with its boots and other phases.
 */
export async function profiled<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    let result: T;
    try {
      result = await fn();
    } finally {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
    }
    return result;
  } finally {
    session.disconnect();
  }
}
