/**
 * The consuming service `ledger` as one OS process, in the build `BANK_BUILD` names (compiled to
 * dist/test/processes/bank/ledger-consumer.js, spawned by test/deploy through
 * test/fault/support/cluster.ts). Builds (ledger.handlers.ts): v1 CreditLedger; v2 adds GrantBonus
 * on the same type and DebitLedger for a new type; v3 drops GrantBonus and retires it
 * (`retiredHandlers`), the explicit step.
 *
 *   DATABASE_URL, REDIS_URL, OUTBOX_PREFIX   where to work (the ledger's own database)
 *   BANK_BUILD                               v1 | v2 | v3 (required)
 *   CONCURRENCY (8), WAIT_FOR_HANDLERS_MS, LOCK_DURATION_MS, STALLED_INTERVAL_MS
 *                                            worker options (library defaults when unset)
 *
 * IPC out: ready { build }; status (the worker's counters) every 500 ms. SIGTERM closes the
 * application (Nest's shutdown hooks: the worker lets its jobs finish).
 */
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { OutboxMonitor } from 'nest-outbox';
import { dieWithSuite, envNumber, send } from '../ipc.js';
import { BankProcessModule } from './bank-process.module.js';
import { BUILD, LEDGER_BUILDS } from './ledger.handlers.js';

dieWithSuite();

async function main(): Promise<void> {
  const build = LEDGER_BUILDS[BUILD];
  if (!build) throw new Error(`BANK_BUILD must be one of ${Object.keys(LEDGER_BUILDS).join(', ')}, got "${BUILD}".`);
  const app = await NestFactory.createApplicationContext(
    BankProcessModule.register({
      entities: [],
      handlers: build.handlers,
      outbox: {
        service: 'ledger',
        version: `ledger-${BUILD}`,
        retiredHandlers: build.retiredHandlers,
        relay: { enabled: false },
        worker: {
          concurrency: envNumber('CONCURRENCY') ?? 8,
          waitForHandlersMs: envNumber('WAIT_FOR_HANDLERS_MS'),
          lockDurationMs: envNumber('LOCK_DURATION_MS'),
          stalledIntervalMs: envNumber('STALLED_INTERVAL_MS'),
        },
      },
    }),
    { logger: ['error', 'warn', 'log'] },
  );
  app.enableShutdownHooks();
  const monitor = app.get(OutboxMonitor);
  setInterval(() => void send({ kind: 'status', ...monitor.processCounters().worker }), 500).unref();
  await send({ kind: 'ready', build: BUILD });
}

main().catch((error: unknown) => {
  console.error('ledger-consumer failed:', error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
