import { MikroORM } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import type { Job } from 'bullmq';
import { isMessageId } from '../message/message-id.js';
import { qualifiedTables } from '../message/outbox.tables.js';
import { OutboxError } from '../outbox.errors.js';
import { OUTBOX_OPTIONS, type ResolvedOutboxOptions } from '../outbox.options.js';
import { OutboxQueue } from '../outbox.queue.js';
import { matchesFilter, toDeadLetter, type DeadLetter, type DeadLetterFilter, type DeadLetterQuery } from './dead-letter.js';

/** `retry` or `discard` was given an id that is not in the failed set (unknown, already retried, or not failed). */
export class OutboxDeadLetterNotFoundError extends OutboxError {
  constructor(
    readonly messageId: string,
    state: string,
  ) {
    super(
      state === 'unknown'
        ? `No dead letter has id ${JSON.stringify(messageId)}: the queue holds no such message. List dead letters with OutboxDeadLetters.list().`
        : `No dead letter has id ${JSON.stringify(messageId)}: the message is ${state}, not failed.`,
    );
  }
}

const PAGE = 200;
const MAX_LIMIT = 1000;

/**
 * Admin operations on the dead letters: the failed set of the outbox queue. BullMQ puts a job
 * there only when no attempt is left (or it was unrecoverable), so a job still being retried is
 * never listed. Reads Redis, so it sees the dead letters of every process.
 */
@Injectable()
export class OutboxDeadLetters {
  private readonly refreshInboxSql: string;

  constructor(
    private readonly orm: MikroORM,
    private readonly queue: OutboxQueue,
    @Inject(OUTBOX_OPTIONS) options: ResolvedOutboxOptions,
  ) {
    this.refreshInboxSql = `update ${qualifiedTables(options.tables).inbox} set processed_at = now() where message_id = any(?::uuid[])`;
  }

  /** Dead letters matching the query, newest failure first. */
  async list(query: DeadLetterQuery = {}): Promise<DeadLetter[]> {
    const offset = count('offset', query.offset, 0, Number.MAX_SAFE_INTEGER);
    const limit = count('limit', query.limit, 100, MAX_LIMIT);
    checkFilter(query);
    if (limit === 0) return [];
    if (query.type === undefined && query.handler === undefined) {
      // Without a filter the page is a plain range of the failed set.
      return (await this.jobs(await this.queue.get().getRanges(['failed'], offset, offset + limit - 1, false))).map(toDeadLetter);
    }
    const letters: DeadLetter[] = [];
    let skipped = 0;
    for await (const letter of this.scan(query)) {
      if (skipped++ < offset) continue;
      letters.push(letter);
      if (letters.length === limit) break;
    }
    return letters;
  }

  /** Puts one dead letter back to waiting with its attempts reset; handlers that already succeeded on it are skipped. */
  async retry(messageId: string): Promise<void> {
    const job = await this.deadJob(messageId);
    await this.keepInboxMarks([messageId]);
    await this.retryJob(job, true);
  }

  /** Retries every dead letter matching the filter (all when empty); returns how many were retried. */
  async retryAll(filter: DeadLetterFilter = {}): Promise<number> {
    checkFilter(filter);
    const ids = await this.matchingIds(filter);
    await this.keepInboxMarks(ids);
    let retried = 0;
    for (const job of await this.jobs(ids)) {
      if (await this.retryJob(job, false)) retried++;
    }
    return retried;
  }

  /** Removes one dead letter for good. */
  async discard(messageId: string): Promise<void> {
    const job = await this.deadJob(messageId);
    await job.remove();
  }

  /** Removes every dead letter matching the filter (all when empty); returns how many were removed. */
  async discardAll(filter: DeadLetterFilter = {}): Promise<number> {
    checkFilter(filter);
    let removed = 0;
    for (const job of await this.jobs(await this.matchingIds(filter))) {
      // Checked per job: one retried meanwhile by someone else is no longer a dead letter.
      if ((await job.getState()) !== 'failed') continue;
      await job.remove();
      removed++;
    }
    return removed;
  }

  /**
   * A dead letter can wait longer than `retention.inboxAfterSeconds`. Retention keeps the inbox
   * marks of messages in the failed set; refreshing them here keeps them once the message leaves
   * that set, until its retry has run, so handlers that succeeded before do not run again.
   */
  private async keepInboxMarks(ids: readonly string[]): Promise<void> {
    const messageIds = ids.filter(isMessageId);
    if (messageIds.length === 0) return;
    await this.orm.em.getConnection('write').execute(this.refreshInboxSql, [`{${messageIds.join(',')}}`], 'run');
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
    if (typeof messageId !== 'string' || messageId === '') throw new OutboxDeadLetterNotFoundError(String(messageId), 'unknown');
    const job = await this.queue.get().getJob(messageId);
    const state = job ? await job.getState() : 'unknown';
    if (!job || state !== 'failed') throw new OutboxDeadLetterNotFoundError(messageId, state);
    return job;
  }

  private async matchingIds(filter: DeadLetterFilter): Promise<string[]> {
    const ids: string[] = [];
    for await (const letter of this.scan(filter)) ids.push(letter.messageId);
    return ids;
  }

  /** Walks the failed set page by page; the handler is only in each job's failure record, so filtering happens here. */
  private async *scan(filter: DeadLetterFilter): AsyncGenerator<DeadLetter> {
    for (let start = 0; ; start += PAGE) {
      const ids = await this.queue.get().getRanges(['failed'], start, start + PAGE - 1, false);
      for (const job of await this.jobs(ids)) {
        const letter = toDeadLetter(job);
        if (matchesFilter(letter, filter)) yield letter;
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
    throw new RangeError(`Dead-letter query "${name}" must be an integer from 0 to ${max}, got ${String(value)}.`);
  }
  return value;
}

function checkFilter(filter: DeadLetterFilter): void {
  for (const name of ['type', 'handler'] as const) {
    if (filter[name] !== undefined && typeof filter[name] !== 'string') {
      throw new TypeError(`Dead-letter filter "${name}" must be a string, got ${typeof filter[name]}.`);
    }
  }
}
