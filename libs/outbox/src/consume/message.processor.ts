import { MikroORM, RequestContext } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { UnrecoverableError, type Job } from 'bullmq';
import { readEvent } from '../message/event-codec.js';
import { nextFailureRecord } from '../message/failure-record.js';
import type { OutboxHeaders, OutboxJobData } from '../message/message-headers.js';
import { isMessageId } from '../message/message-id.js';
import { runInMessageContext } from '../message/message.context.js';
import { OutboxError, OutboxHandlerError, OutboxMessageError, OutboxVersionAheadError } from '../outbox.errors.js';
import { notAnOutboxJob, unknownEventType } from '../outbox.messages.js';
import { errorText } from '../util/error-text.js';
import type { EventRoute, HandlerEntry } from './handler.explorer.js';
import type { InboxStore } from './inbox.store.js';

/**
 * Consumes one job: rebuild the event, then run each handler awaited in its own transaction
 * together with its inbox mark. A handler that already succeeded is skipped, so a retry runs
 * only the ones that failed. Unreadable messages fail without retry; handler errors are retried.
 */
export class MessageProcessor {
  /** Rejecters of the handler runs in progress, so a shutdown out of time can end them. */
  private readonly running = new Set<(reason: Error) => void>();

  constructor(
    private readonly orm: MikroORM,
    private readonly inbox: InboxStore,
    private readonly routes: ReadonlyMap<string, EventRoute>,
  ) {}

  async process(job: Job<OutboxJobData>): Promise<void> {
    try {
      await this.consume(job);
    } catch (error) {
      const handler = error instanceof OutboxHandlerError ? error.handler : null;
      const message = error instanceof OutboxHandlerError ? errorText(error.cause) : errorText(error);
      // Best effort: the record only enriches the dead-letter listing; the job fails either way.
      await job.updateProgress(nextFailureRecord(job.progress, handler, message)).catch(() => undefined);
      throw error;
    }
  }

  private async consume(job: Job<OutboxJobData>): Promise<void> {
    const { type, payload, headers } = readJob(job);
    const route = this.routes.get(type);
    if (!route) {
      throw new UnrecoverableError(unknownEventType(type, headers.messageId));
    }
    let event: object;
    try {
      event = readEvent(route.eventClass, { type, payload, headers });
    } catch (error) {
      // Written by a newer build: retried (another process may know the version), never a dead letter at once.
      if (error instanceof OutboxVersionAheadError) throw error;
      throw unrecoverable(error, headers.messageId);
    }
    for (const handler of route.handlers) {
      await this.runHandler(handler, event, type, headers, job.attemptsMade + 1);
    }
  }

  /**
   * Ends every handler run in progress with `reason`: its transaction rolls back and its pooled
   * connection is released (a hung handler would otherwise hold the ORM's shutdown forever).
   */
  abortAll(reason: string): void {
    for (const abort of this.running) abort(new OutboxError(reason));
  }

  private async runHandler(
    handler: HandlerEntry,
    event: object,
    type: string,
    headers: OutboxHeaders,
    attempt: number,
  ): Promise<void> {
    let abort!: (reason: Error) => void;
    const aborted = new Promise<never>((_, reject) => {
      abort = reject;
    });
    aborted.catch(() => undefined);
    this.running.add(abort);
    try {
      // The context spans the whole transaction: the closing flush captures the events the
      // handler raised, and they must inherit this message's correlation and causation.
      await runInMessageContext({ headers, type, handler: handler.name, attempt }, () =>
        RequestContext.create(this.orm.em, () =>
          this.orm.em.transactional(async (em) => {
            if (!(await this.inbox.markFirstRun(em as EntityManager, headers.messageId, handler.name))) return;
            await Promise.race([handler.instance.handle(event), aborted]);
          }),
        ),
      );
    } catch (error) {
      throw new OutboxHandlerError(handler.name, headers.messageId, type, error);
    } finally {
      this.running.delete(abort);
    }
  }
}

function readJob(job: Job<OutboxJobData>): OutboxJobData {
  const data = job.data as Partial<OutboxJobData> | undefined;
  const headers = data?.headers;
  if (
    !data ||
    typeof data.type !== 'string' ||
    typeof data.payload !== 'string' ||
    !headers ||
    !isMessageId(headers.messageId)
  ) {
    throw new UnrecoverableError(notAnOutboxJob(job.id));
  }
  return data as OutboxJobData;
}

function unrecoverable(error: unknown, messageId: string): UnrecoverableError {
  const reason = error instanceof OutboxMessageError ? error.message : String(error);
  return new UnrecoverableError(`${reason.replace(/\.$/, '')} (message ${messageId}; not retried).`);
}
