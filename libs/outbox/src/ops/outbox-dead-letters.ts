import { Inject, Injectable } from '@nestjs/common';
import type { Job, Queue } from 'bullmq';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OutboxArgumentError, OutboxDeadLetterNotFoundError } from '../outbox.errors.js';
import { invalidFilterField, invalidQueryCount, notAFailedHandler } from '../outbox.messages.js';
import { OUTBOX_OPTIONS } from '../outbox.tokens.js';
import type { OutboxJobData } from '../routing/job-data.js';
import { OutboxQueues } from '../routing/outbox-queues.js';
import {
  matchesFilter,
  toDeadLetter,
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterQuery,
} from './dead-letter.js';

const PAGE = 200;
const MAX_LIMIT = 1000;

/** Narrows a retry or a discard to one handler of the message; the others are left as they are. */
export interface HandlerChoice {
  handler?: string;
}

/**
 * Admin operations on the dead letters of one service's queue. BullMQ puts a job there only when
 * no attempt is left (or it was unrecoverable), so a job still being retried is never listed.
 * Reads Redis, so it sees the dead letters of every process. Retry and discard work on the whole
 * message or on one handler; a handler that already succeeded on a message never runs again for
 * it (its inbox mark is kept for as long as the job exists).
 */
export class DeadLetterQueue {
  constructor(
    /** The consuming service whose queue this is. */
    readonly service: string,
    private readonly queue: () => Queue<OutboxJobData>,
  ) {}

  /** Dead letters matching the query, newest failure first. */
  async list(query: DeadLetterQuery = {}): Promise<DeadLetter[]> {
    const offset = count('offset', query.offset, 0, Number.MAX_SAFE_INTEGER);
    const limit = count('limit', query.limit, 100, MAX_LIMIT);
    checkFilter(query);
    if (limit === 0) return [];
    if (query.type === undefined && query.handler === undefined) {
      // Without a filter the page is a plain range of the failed set.
      const ids = await this.queue().getRanges(['failed'], offset, offset + limit - 1, false);
      return (await this.jobs(ids)).map((job) => toDeadLetter(job, this.service));
    }
    const letters: DeadLetter[] = [];
    let skipped = 0;
    for await (const job of this.scan(query)) {
      if (skipped++ < offset) continue;
      letters.push(toDeadLetter(job, this.service));
      if (letters.length === limit) break;
    }
    return letters;
  }

  /** One dead letter, or `undefined` when the id is not in the failed set. */
  async get(messageId: string): Promise<DeadLetter | undefined> {
    const job = await this.queue().getJob(messageId);
    return job && (await job.getState()) === 'failed' ? toDeadLetter(job, this.service) : undefined;
  }

  /** How many dead letters the queue holds. */
  async count(): Promise<number> {
    return this.queue().getFailedCount();
  }

  /**
   * Puts a dead letter back to waiting with its attempts reset. Handlers that already succeeded on
   * it are skipped; with `{ handler }` only that handler runs, and the message stays a dead letter
   * for any other handler that still fails.
   */
  async retry(messageId: string, choice: HandlerChoice = {}): Promise<void> {
    const job = await this.deadJob(messageId);
    if (choice.handler !== undefined) this.checkHandler(job, choice.handler);
    const { retryOnly: _retryOnly, waitingSince: _waiting, setAside: _setAside, ...data } = job.data;
    await job.updateData(choice.handler === undefined ? data : { ...data, retryOnly: [choice.handler] });
    await this.retryJob(job, true);
  }

  /** Retries every dead letter matching the filter (all when empty), a page at a time; returns how many. */
  async retryAll(filter: DeadLetterFilter = {}): Promise<number> {
    checkFilter(filter);
    return this.eachMatching(filter, async (job) => {
      const { retryOnly: _retryOnly, waitingSince: _waiting, setAside: _setAside, ...data } = job.data;
      await job.updateData(data);
      return this.retryJob(job, false);
    });
  }

  /**
   * Gives up on a dead letter for good, or with `{ handler }` on that handler only: it never runs
   * for this message, and once no failing handler is left the dead letter is removed.
   */
  async discard(messageId: string, choice: HandlerChoice = {}): Promise<void> {
    const job = await this.deadJob(messageId);
    if (choice.handler === undefined) return job.remove();
    this.checkHandler(job, choice.handler);
    const discarded = [...new Set([...(job.data.discarded ?? []), choice.handler])];
    await job.updateData({ ...job.data, discarded });
    const letter = toDeadLetter(await this.deadJob(messageId), this.service);
    if (letter.handlers.length === 0 && letter.missing.length === 0 && letter.reason !== 'unreadable')
      await job.remove();
  }

  /** Removes every dead letter matching the filter (all when empty), a page at a time; returns how many. */
  async discardAll(filter: DeadLetterFilter = {}): Promise<number> {
    checkFilter(filter);
    return this.eachMatching(filter, async (job) => {
      // Checked per job: one retried meanwhile by someone else is no longer a dead letter.
      if ((await job.getState()) !== 'failed') return false;
      await job.remove();
      return true;
    });
  }

  private checkHandler(job: Job<OutboxJobData>, handler: string): void {
    const letter = toDeadLetter(job, this.service);
    const failing = [...letter.handlers.map((failed) => failed.name), ...letter.missing];
    if (!failing.includes(handler)) throw new OutboxArgumentError(notAFailedHandler(String(job.id), handler, failing));
  }

  private async retryJob(job: Job, strict: boolean): Promise<boolean> {
    try {
      // BullMQ keeps attemptsMade on retry unless told otherwise; without the reset a retried
      // dead letter would fail for good at its first error instead of getting its attempts again.
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      return true;
    } catch (error) {
      const state = await job.getState();
      if (state === 'failed') throw error;
      if (strict) throw new OutboxDeadLetterNotFoundError(String(job.id), state);
      return false;
    }
  }

  private async deadJob(messageId: string): Promise<Job<OutboxJobData>> {
    if (typeof messageId !== 'string' || messageId === '')
      throw new OutboxDeadLetterNotFoundError(String(messageId), 'unknown');
    const job = await this.queue().getJob(messageId);
    const state = job ? await job.getState() : 'unknown';
    if (!job || state !== 'failed') throw new OutboxDeadLetterNotFoundError(messageId, state);
    return job;
  }

  /**
   * Acts on the matching dead letters one page at a time, so memory stays bounded however many
   * there are. A job acted on leaves the failed set, so the next page starts fewer places on.
   */
  private async eachMatching(
    filter: DeadLetterFilter,
    act: (job: Job<OutboxJobData>) => Promise<boolean>,
  ): Promise<number> {
    let done = 0;
    let start = 0;
    for (;;) {
      const ids = await this.queue().getRanges(['failed'], start, start + PAGE - 1, false);
      let left = 0;
      for (const job of await this.jobs(ids)) {
        if (matchesFilter(toDeadLetter(job, this.service), filter) && (await act(job))) done++;
        else left++;
      }
      if (ids.length < PAGE) return done;
      start += left;
    }
  }

  /** Walks the failed set page by page; handlers are only in each job's failure record, so filtering happens here. */
  private async *scan(filter: DeadLetterFilter): AsyncGenerator<Job<OutboxJobData>> {
    for (let start = 0; ; start += PAGE) {
      const ids = await this.queue().getRanges(['failed'], start, start + PAGE - 1, false);
      for (const job of await this.jobs(ids)) {
        if (matchesFilter(toDeadLetter(job, this.service), filter)) yield job;
      }
      if (ids.length < PAGE) return;
    }
  }

  /** The jobs of these ids that still exist (one may be removed between listing and reading). */
  private async jobs(ids: readonly string[]): Promise<Array<Job<OutboxJobData>>> {
    const jobs = await Promise.all(ids.map((id) => this.queue().getJob(id)));
    return jobs.filter((job): job is Job<OutboxJobData> => job !== undefined && job !== null);
  }
}

/**
 * The dead letters of this service's queue (`list`, `retry`, `discard`, …), and through `of(name)`
 * those of any other consuming service sharing the Redis.
 */
@Injectable()
export class OutboxDeadLetters extends DeadLetterQueue {
  constructor(
    private readonly queues: OutboxQueues,
    @Inject(OUTBOX_OPTIONS) options: ResolvedOutboxOptions,
  ) {
    super(options.service, () => queues.own());
  }

  /** The dead letters of another consuming service's queue. */
  of(service: string): DeadLetterQueue {
    return new DeadLetterQueue(service, () => this.queues.of(service));
  }
}

function count(name: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new OutboxArgumentError(invalidQueryCount(name, max, value));
  }
  return value;
}

function checkFilter(filter: DeadLetterFilter): void {
  for (const name of ['type', 'handler'] as const) {
    if (filter[name] !== undefined && typeof filter[name] !== 'string') {
      throw new OutboxArgumentError(invalidFilterField(name, filter[name]));
    }
  }
}
