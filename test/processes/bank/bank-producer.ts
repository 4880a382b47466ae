/**
 * The producing service `bank` as one OS process (compiled to dist/test/processes/bank/bank-producer.js,
 * spawned by test/deploy through test/fault/support/cluster.ts). Its relay routes to whichever
 * services subscribed; it never names them.
 *
 *   DATABASE_URL, REDIS_URL, OUTBOX_PREFIX   where to work (its own database)
 *   LOOPS (2), ACCOUNTS_PER_LOOP (5)         closed loops, each on accounts of its own
 *   PAUSE_MS (40)                            pause after each write of a loop
 *   WITHDRAWALS=1                            write Withdrawn from the start (else after the IPC message)
 *
 * Each write loads (or opens) an account, deposits, and once withdrawals are on also withdraws,
 * in one flush: the events' rows commit with the balance.
 * IPC in:  { kind: 'withdrawals' } starts writing the new type; { kind: 'stop' } ends the loops.
 * IPC out: ready; status { deposits, withdrawals } every 500 ms; stopped { deposits, withdrawals }.
 */
import 'reflect-metadata';
import { MikroORM } from '@mikro-orm/postgresql';
import { NestFactory } from '@nestjs/core';
import { dieWithSuite, envNumber, send } from '../ipc.js';
import { Account } from './account.entity.js';
import { BankProcessModule } from './bank-process.module.js';

dieWithSuite();

let withdrawals = process.env.WITHDRAWALS === '1';
let stopping = false;
const written = { deposits: 0, withdrawals: 0 };

process.on('message', (message: { kind?: string }) => {
  if (message.kind === 'withdrawals') withdrawals = true;
  if (message.kind === 'stop') stopping = true;
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function writeLoop(orm: MikroORM<any>, loop: number, accounts: number, pauseMs: number): Promise<void> {
  for (let i = 0; !stopping; i++) {
    const em = orm.em.fork();
    const id = `account-${loop}-${i % accounts}`;
    let account = await em.findOne(Account, id);
    if (!account) {
      account = new Account(id);
      em.persist(account);
    }
    account.deposit(100 + (i % 7) * 10);
    const withdrawing = withdrawals && account.balance >= 50;
    if (withdrawing) account.withdraw(50);
    await em.flush();
    written.deposits++;
    if (withdrawing) written.withdrawals++;
    await sleep(pauseMs);
  }
}

async function main(): Promise<void> {
  const app = await NestFactory.createApplicationContext(
    BankProcessModule.register({
      entities: [Account],
      outbox: { service: 'bank', version: 'bank-1', worker: { enabled: false } },
    }),
    { logger: ['error', 'warn', 'log'] },
  );
  app.enableShutdownHooks();
  const orm = app.get<MikroORM<any>>(MikroORM);
  await send({ kind: 'ready' });
  const status = setInterval(() => void send({ kind: 'status', ...written }), 500);
  const loops = envNumber('LOOPS') ?? 2;
  const accounts = envNumber('ACCOUNTS_PER_LOOP') ?? 5;
  const pauseMs = envNumber('PAUSE_MS') ?? 40;
  await Promise.all(Array.from({ length: loops }, (_, loop) => writeLoop(orm, loop, accounts, pauseMs)));
  clearInterval(status);
  await send({ kind: 'stopped', ...written });
}

main().catch((error: unknown) => {
  console.error('bank-producer failed:', error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
