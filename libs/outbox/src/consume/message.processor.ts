import type { Job } from 'bullmq';
import { readEvent } from '../message/event-codec.js';
import { isMessageId } from '../message/message-id.js';
import {
  OutboxHandlerError,
  OutboxHandlersError,
  OutboxMessageError,
  OutboxVersionAheadError,
} from '../outbox.errors.js';
import { notAnOutboxJob, stillFailing, unknownEventType } from '../outbox.messages.js';
import { MESSAGE, isFailureRecord, nextFailureRecord, recordChanged } from '../routing/failure-record.js';
import type { OutboxJobData } from '../routing/job-data.js';
import { errorText } from '../util/error-text.js';
import { GiveUp } from './give-up.js';
import type { EventRoute } from './handler.explorer.js';
import type { HandlerRunner, RunMessage } from './handler.runner.js';
import type { KeyPlace } from './key-order.store.js';

/** What became of a job once every handler this process has for it ran. */
export type Outcome =
  | { kind: 'done' }
  /**
   * This service registered handlers for the type that this process lacks — or the message was
   * written at a version of its event this build does not know yet: another process must run them.
   */
  | { kind: 'waiting-for-handlers'; missing: string[]; versionAhead?: OutboxVersionAheadError }
  /** Ordered handlers whose turn has not come; the message waits for the key's earlier messages. */
  | { kind: 'parked'; parked: Array<{ place: KeyPlace; seq: number }> };

/**
 * Consumes one job: rebuild the event, then run every handler the message needs that this
 * process has, each in a transaction of its own or shared with runs of other messages (never with
 * a sibling), whatever its siblings do. A retry runs only the ones that have not succeeded (their
 * inbox marks say so). Unreadable messages fail without retry; handler errors are retried;
 * handlers this process lacks are left for another process.
 */
export class MessageProcessor {
  constructor(
    private readonly routes: ReadonlyMap<string, EventRoute>,
    private readonly runner: HandlerRunner,
    /** Moves a parked message whose turn has come to the front of the queue (best effort). */
    private readonly promote: (messageId: string) => Promise<void>,
  ) {}

  async process(job: Job<OutboxJobData>): Promise<Outcome> {
    const data = readJob(job);
    const route = this.routes.get(data.type);
    // A job that does not say which handlers it needs (not routed by an outbox relay) can only be
    // run by the handlers of this process: with none, nothing will ever run it.
    if (!data.handlers && !route) throw new GiveUp('unreadable', unknownEventType(data.type, data.headers.messageId));
    const expected = data.handlers ?? route?.handlers.map((handler) => handler.name) ?? [];
    const wanted = expected.filter(
      (name) => !data.discarded?.includes(name) && (!data.retryOnly || data.retryOnly.includes(name)),
    );
    const present = wanted.map((name) => route?.handlers.find((handler) => handler.name === name)).filter(isDefined);
    const missing = wanted.filter((name) => !present.some((handler) => handler.name === name));
    if (present.length === 0) {
      return missing.length > 0 ? { kind: 'waiting-for-handlers', missing } : this.finish(job, data, new Map(), []);
    }
    let event: object;
    try {
      event = await rebuild(route!, data, job);
    } catch (error) {
      // Written by a newer build: a process that knows the version runs it, as in a rolling deploy.
      if (error instanceof OutboxVersionAheadError)
        return { kind: 'waiting-for-handlers', missing: wanted, versionAhead: error };
      throw error;
    }
    const message: RunMessage = {
      type: data.type,
      headers: data.headers,
      source: data.source ?? 'unknown',
      key: data.key ?? null,
      attempt: job.attemptsMade + 1,
    };
    const failed = new Map<string, unknown>();
    const succeeded: string[] = [];
    const parked: Array<{ place: KeyPlace; seq: number }> = [];
    for (const handler of present) {
      try {
        const outcome = await this.runner.run(handler, event, message, data.order?.[handler.name]);
        if (outcome.kind === 'parked') parked.push(outcome);
        else {
          succeeded.push(handler.name);
          if (outcome.successor) await this.promote(outcome.successor).catch(() => undefined);
        }
      } catch (error) {
        failed.set(handler.name, error instanceof OutboxHandlerError ? error.cause : error);
      }
    }
    if (failed.size === 0 && missing.length > 0) return { kind: 'waiting-for-handlers', missing };
    if (failed.size === 0 && parked.length > 0) return { kind: 'parked', parked };
    return this.finish(job, data, failed, succeeded);
  }

  /** Ends the handler runs still going (their transactions roll back); for a shutdown out of time. */
  abortAll(reason: string): void {
    this.runner.abortAll(reason);
  }

  /** Whether a parked message's turn came while it was being set aside (it is then promoted at once). */
  turnCame(parked: ReadonlyArray<{ place: KeyPlace; seq: number }>): Promise<boolean> {
    return this.runner.turnCame(parked);
  }

  /**
   * Records what failed (and what no longer fails) in the job's progress, then fails the job if
   * any handler failed: BullMQ retries it with backoff and, after the last attempt, keeps it as a
   * dead letter naming the handlers.
   */
  private async finish(
    job: Job<OutboxJobData>,
    data: OutboxJobData,
    failed: Map<string, unknown>,
    succeeded: string[],
  ): Promise<Outcome> {
    // The common case: nothing failed, now or before, so there is no record to keep.
    if (failed.size === 0 && !isFailureRecord(job.progress)) return { kind: 'done' };
    const errors = new Map([...failed].map(([name, error]) => [name, errorText(error)]));
    const record = nextFailureRecord(job.progress, errors, succeeded);
    // Best effort: the record only enriches the dead-letter listing; the job fails either way.
    if (recordChanged(job.progress, record)) await job.updateProgress(record).catch(() => undefined);
    if (failed.size > 0) throw new OutboxHandlersError(data.headers.messageId, data.type, failed);
    // A retry of some handlers only: the others that still fail keep the message a dead letter.
    const others = Object.keys(record.failures).filter((name) => name !== MESSAGE && !data.discarded?.includes(name));
    if (data.retryOnly && others.length > 0)
      throw new GiveUp('still-failing', stillFailing(data.headers.messageId, others));
    return { kind: 'done' };
  }
}

async function rebuild(route: EventRoute, data: OutboxJobData, job: Job<OutboxJobData>): Promise<object> {
  try {
    return readEvent(route.eventClass, { type: data.type, payload: data.payload, headers: data.headers });
  } catch (error) {
    if (error instanceof OutboxVersionAheadError) throw error;
    const reason = error instanceof OutboxMessageError ? error.message : String(error);
    // Recorded like a handler failure, under the message itself, for the dead-letter listing.
    await job.updateProgress(nextFailureRecord(job.progress, new Map([[MESSAGE, reason]]), [])).catch(() => undefined);
    throw new GiveUp('unreadable', `${reason.replace(/\.$/, '')} (message ${data.headers.messageId}; not retried).`);
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
    throw new GiveUp('unreadable', notAnOutboxJob(job.id));
  }
  return data as OutboxJobData;
}

function isDefined<T>(value: T | undefined): value is T {
  return value !== undefined;
}
