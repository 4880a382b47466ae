import { TransactionContext, type MikroORM } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { OutboxHeaders } from '../message/message-headers.js';
import type { OutboxMetrics } from '../telemetry/outbox.metrics.js';
import type { OutboxTracing } from '../telemetry/outbox.tracing.js';
import { runInMessageContext } from '../message/message.context.js';
import { OutboxError, OutboxHandlerError } from '../outbox.errors.js';
import { errorText } from '../util/error-text.js';
import { settlement } from '../util/settlement.js';
import { handlerCaughtFailedStatement } from '../outbox.messages.js';
import type { CommitWatch } from './commit-watch.js';
import { handlerTransaction } from './handler-transaction.js';
import type { HandlerEntry } from './handler.explorer.js';
import type { InboxStore } from './inbox.store.js';
import type { KeyOrderStore, KeyPlace } from './key-order.store.js';
import { SharedTransactions, type AbortScope, type SharedOutcome } from './shared-transaction.js';

/** The message a handler runs for. */
export interface RunMessage {
  type: string;
  headers: OutboxHeaders;
  source: string;
  key: string | null;
  attempt: number;
}

/** Where handler runs report: the metrics and spans, and the service and queue they run for. */
export interface RunTelemetry {
  metrics: OutboxMetrics;
  tracing: OutboxTracing;
  service: string;
  queue: string;
}

/** A handler run that can share a transaction: one that keeps no key order. */
interface SharedRun {
  handler: HandlerEntry;
  event: object;
  message: RunMessage;
}

/** What one handler's run did. */
export type RunOutcome =
  | { kind: 'handled'; successor?: string }
  | { kind: 'duplicate'; successor?: string }
  /** Its turn had not come: an earlier message of its key has not been handled by this handler yet. */
  | { kind: 'parked'; place: KeyPlace; seq: number };

/**
 * Runs one handler for one message in a transaction with its inbox mark — its own, or one shared
 * with other runs ready at the same moment (`worker.handlersPerTransaction`): a mark already
 * there means it ran before, and nothing happens. For an ordered handler the key's
 * position is locked in the same transaction: a message whose turn has not come is parked, a
 * handled one moves the position on and names the next parked message, whose turn it now is.
 */
export class HandlerRunner {
  /** Aborters of the runs in progress, so a shutdown out of time can end them. */
  private readonly running = new Set<(reason: Error) => void>();

  /** Present when runs share transactions (`worker.handlersPerTransaction` above 1). */
  private readonly shared: SharedTransactions<SharedRun> | undefined;

  constructor(
    private readonly orm: MikroORM,
    private readonly inbox: InboxStore,
    private readonly order: KeyOrderStore,
    private readonly telemetry: RunTelemetry,
    private readonly commits: CommitWatch,
    handlersPerTransaction = 1,
  ) {
    this.shared =
      handlersPerTransaction > 1
        ? new SharedTransactions(orm, commits, handlersPerTransaction, {
            inShared: (em, run, aborted, committed) => this.inShared(em, run, aborted, committed),
            alone: (run) =>
              this.alone(run.handler, run.event, run.message, undefined, undefined) as Promise<SharedOutcome>,
            abortable: () => this.abortable(),
          })
        : undefined;
  }

  async run(handler: HandlerEntry, event: object, message: RunMessage, seq: number | undefined): Promise<RunOutcome> {
    const place =
      seq !== undefined && message.key !== null
        ? { handler: handler.name, source: message.source, key: message.key }
        : undefined;
    const { metrics } = this.telemetry;
    const startedAt = metrics.startTimer();
    try {
      // Ordered runs lock their key's position: they keep a transaction of their own.
      const outcome =
        this.shared && seq === undefined
          ? await this.shared.run({ handler, event, message })
          : await this.alone(handler, event, message, place, seq);
      if (outcome.kind === 'handled') {
        metrics.handlerRun(message.type, handler.name, 'handled', startedAt, message.headers.occurredAt);
      }
      return outcome;
    } catch (error) {
      metrics.handlerRun(message.type, handler.name, 'failed', startedAt, message.headers.occurredAt);
      const failure = new OutboxHandlerError(handler.name, message.headers.messageId, message.type, error);
      if (place && seq !== undefined) await this.recordBlock(place, seq, message.headers.messageId, errorText(error));
      throw failure;
    }
  }

  private async alone(
    handler: HandlerEntry,
    event: object,
    message: RunMessage,
    place: KeyPlace | undefined,
    seq: number | undefined,
  ): Promise<RunOutcome> {
    const scope = this.abortable();
    try {
      // The context (and the span) span the whole transaction: the closing flush captures the
      // events the handler raised, and they must inherit this message's correlation, causation
      // and trace.
      return await this.inContext(handler, message, undefined, () =>
        this.commits.run((check) =>
          handlerTransaction(this.orm, scope.signal, async (em) => {
            const outcome = await this.inTransaction(em, handler, event, message, place, seq, scope.aborted);
            // An ordered run's last statement (moving its key on) would already have failed.
            if (outcome.kind === 'handled' && !place) {
              await check.beforeCommit(em, () => handlerCaughtFailedStatement(handler.name, message.headers.messageId));
            }
            return outcome;
          }),
        ),
      );
    } finally {
      scope.end();
    }
  }

  /**
   * One run inside a transaction it shares with others: a fork of its own (so it sees only what
   * it loads, as alone), resolved by the application's injected EntityManager, and flushed in its
   * message context, so the events it raised are captured as its own.
   */
  private inShared(
    em: EntityManager,
    run: SharedRun,
    aborted: Promise<never>,
    committed: Promise<void>,
  ): Promise<SharedOutcome> {
    return this.inContext(run.handler, run.message, committed, () => {
      const fork = em.fork({ keepTransactionContext: true }) as EntityManager;
      return TransactionContext.create(fork, async () => {
        const outcome = await this.inTransaction(
          fork,
          run.handler,
          run.event,
          run.message,
          undefined,
          undefined,
          aborted,
        );
        await fork.flush();
        return outcome as SharedOutcome;
      });
    });
  }

  private inContext<T extends { kind: string }>(
    handler: HandlerEntry,
    message: RunMessage,
    committed: Promise<void> | undefined,
    fn: () => Promise<T>,
  ): Promise<T> {
    const context = { headers: message.headers, type: message.type, handler: handler.name, attempt: message.attempt };
    return this.telemetry.tracing.process(
      this.telemetry,
      handler.name,
      message,
      () => runInMessageContext(context, fn),
      committed,
    );
  }

  /** A run that `abortAll` can end: its transaction rolls back, and a query in flight is cancelled. */
  private abortable(): AbortScope {
    const controller = new AbortController();
    const aborted = settlement<never>();
    const abort = (reason: Error) => {
      aborted.reject(reason);
      // Also ends a query in flight (pg_cancel_backend), so the rollback need not wait for it.
      controller.abort(reason);
    };
    this.running.add(abort);
    return { signal: controller.signal, aborted: aborted.promise, end: () => this.running.delete(abort) };
  }

  /** Ends every run in progress with `reason`: its transaction rolls back and its connection is freed. */
  abortAll(reason: string): void {
    this.shared?.abortWaiting(new OutboxError(reason));
    for (const abort of this.running) abort(new OutboxError(reason));
  }

  private async inTransaction(
    em: EntityManager,
    handler: HandlerEntry,
    event: object,
    message: RunMessage,
    place: KeyPlace | undefined,
    seq: number | undefined,
    aborted: Promise<never>,
  ): Promise<RunOutcome> {
    if (place && seq !== undefined) {
      const last = await this.order.lock(em, place);
      if (last >= seq) {
        // Handled before: most likely its process died after the commit and BullMQ runs the job
        // again. That process may have died before it promoted the successor, which would then
        // sleep until its own set-aside delay (up to minutes) ends: name it, it is promoted again.
        const successor = await this.order.parkedAt(em, place, last + 1);
        return { kind: 'duplicate', ...(successor ? { successor } : {}) };
      }
      if (last < seq - 1) {
        await this.order.park(em, place, seq, message.headers.messageId);
        return { kind: 'parked', place, seq };
      }
    }
    const first = await this.inbox.markFirstRun(em, message.headers.messageId, handler.name);
    if (first) await Promise.race([handler.instance.handle(event), aborted]);
    const successor = place && seq !== undefined ? await this.order.advance(em, place, seq) : undefined;
    return { kind: first ? 'handled' : 'duplicate', ...(successor ? { successor } : {}) };
  }

  /** Best effort, in its own transaction: the key shows as held back by this message until it moves on. */
  private async recordBlock(place: KeyPlace, seq: number, messageId: string, error: string): Promise<void> {
    try {
      await this.orm.em
        .fork()
        .transactional((em) => this.order.block(em as EntityManager, place, seq, messageId, error));
    } catch {
      // The database may be what failed; the key still waits, visibly so once it answers again.
    }
  }

  /** Whether each parked handler's turn has come since it was parked. */
  async turnCame(parked: ReadonlyArray<{ place: KeyPlace; seq: number }>): Promise<boolean> {
    const em = this.orm.em.fork() as EntityManager;
    for (const { place, seq } of parked) {
      if ((await this.order.last(em, place)) >= seq - 1) return true;
    }
    return false;
  }
}
