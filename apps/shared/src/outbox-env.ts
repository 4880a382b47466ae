import type { OutboxModuleOptions } from 'nest-outbox';

/**
 * Outbox settings of the example services from the environment, so one build runs as any part of
 * a deployment: `OUTBOX_RELAY=off` / `OUTBOX_WORKER=off` make API-only, relay-only or worker-only
 * processes (each sends the rows it commits itself, the library's default); `OUTBOX_PREFIX` and
 * `REDIS_URL` choose where in Redis the services meet.
 */
export function outboxFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<OutboxModuleOptions> {
  return {
    ...(env.OUTBOX_PREFIX ? { prefix: env.OUTBOX_PREFIX } : {}),
    ...(env.REDIS_URL ? { redis: env.REDIS_URL } : {}),
    relay: { enabled: onOff(env, 'OUTBOX_RELAY') },
    worker: { enabled: onOff(env, 'OUTBOX_WORKER') },
  };
}

function onOff(env: NodeJS.ProcessEnv, name: string): boolean {
  const value = (env[name] ?? 'on').toLowerCase();
  if (value !== 'on' && value !== 'off') throw new Error(`${name} must be "on" or "off", got "${env[name]}".`);
  return value === 'on';
}

/** What a process runs, for its start-up line. */
export function describeParts(outbox: Partial<OutboxModuleOptions>): string {
  const relay = outbox.relay?.enabled === false ? 'off' : 'on';
  const sending = outbox.relay?.dispatchOnCommit === false ? 'off' : 'on';
  return `relay ${relay}, sending on commit ${sending}, worker ${outbox.worker?.enabled === false ? 'off' : 'on'}`;
}
