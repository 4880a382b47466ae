import { Injectable } from '@nestjs/common';
import type { Job } from 'bullmq';
import { OutboxArgumentError, OutboxDeadLetterNotFoundError } from '../outbox.errors.js';
import { invalidFilterField, invalidQueryCount } from '../outbox.messages.js';
import { OutboxQueue } from '../routing/outbox.queue.js';
import {
  matchesFilter,
  toDeadLetter,
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterQuery,
} from './dead-letter.js';

const PAGE = 200;
const MAX_LIMIT = 1000;

/**
 * Admin operations on the dead letters: the failed set of the outbox queue. BullMQ puts a job
 * there only when no attempt is left (or it was unrecoverable), so a job still being retried is
 * never listed. Reads Redis, so it sees the dead letters of every process. Inbox marks of a dead
 * letter are kept by retention for as long as its job exists, so a retry never repeats a handler
 * that already succeeded on it.
 */
@Injectable()
export class OutboxDeadLetters {
  constructor(private readonly queue: OutboxQueue) {}

  /** Dead letters matching the query, newest failure first. */
  async list(query: DeadLetterQuery = {}): Promise<DeadLetter[]> {
    const offset = count('offset', query.offset, 0, Number.MAX_SAFE_INTEGER);
    const limit = count('limit', query.limit, 100, MAX_LIMIT);
    checkFilter(query);
    if (limit === 0) return [];
    if (query.type === undefined && query.handler === undefined) {
      // Without a filter the page is a plain range of the failed set.
      return (await this.jobs(await this.queue.get().getRanges(['failed'], offset, offset + limit - 1, false))).map(
        toDeadLetter,
      );
    }
    const letters: DeadLetter[] = [];
    let skipped = 0;
    for await (const job of this.scan(query)) {
      if (skipped++ < offset) continue;
      letters.push(toDeadLetter(job));
      if (letters.length === limit) break;
    }
    return letters;
  }

  /** Puts one dead letter back to waiting with its attempts reset; handlers that succeeded on it are skipped. */
  async retry(messageId: string): Promise<void> {
    await this.retryJob(await this.deadJob(messageId), true);
  }

  /** Retries every dead letter matching the filter (all when empty), a page at a time; returns how many. */
  async retryAll(filter: DeadLetterFilter = {}): Promise<number> {
    checkFilter(filter);
    return this.eachMatching(filter, (job) => this.retryJob(job, false));
  }

  /** Removes one dead letter for good. */
  async discard(messageId: string): Promise<void> {
    await (await this.deadJob(messageId)).remove();
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

  private async deadJob(messageId: string): Promise<Job> {
    if (typeof messageId !== 'string' || messageId === '')
      throw new OutboxDeadLetterNotFoundError(String(messageId), 'unknown');
    const job = await this.queue.get().getJob(messageId);
    const state = job ? await job.getState() : 'unknown';
    if (!job || state !== 'failed') throw new OutboxDeadLetterNotFoundError(messageId, state);
    return job;
  }

  /**
   * Acts on the matching dead letters one page at a time, so memory stays bounded however many
   * there are. A job acted on leaves the failed set, so the next page starts fewer places on.
   */
  private async eachMatching(filter: DeadLetterFilter, act: (job: Job) => Promise<boolean>): Promise<number> {
    let done = 0;
    let start = 0;
    for (;;) {
      const ids = await this.queue.get().getRanges(['failed'], start, start + PAGE - 1, false);
      let left = 0;
      for (const job of await this.jobs(ids)) {
        if (matchesFilter(toDeadLetter(job), filter) && (await act(job))) done++;
        else left++;
      }
      if (ids.length < PAGE) return done;
      start += left;
    }
  }

  /** Walks the failed set page by page; the handler is only in each job's failure record, so filtering happens here. */
  private async *scan(filter: DeadLetterFilter): AsyncGenerator<Job> {
    for (let start = 0; ; start += PAGE) {
      const ids = await this.queue.get().getRanges(['failed'], start, start + PAGE - 1, false);
      for (const job of await this.jobs(ids)) {
        if (matchesFilter(toDeadLetter(job), filter)) yield job;
      }
      if (ids.length < PAGE) return;
    }
  }

  /** The jobs of these ids that still exist (one may be removed between listing and reading). */
  private async jobs(ids: readonly string[]): Promise<Job[]> {
    const jobs = await Promise.all(ids.map((id) => this.queue.get().getJob(id)));
    return jobs.filter((job): job is Job => job !== undefined && job !== null);
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
    if (filter[name] !== undefined && typeof filter[name] !== 'string')
      throw new OutboxArgumentError(invalidFilterField(name, filter[name]));
  }
}
