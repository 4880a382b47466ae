import { Logger } from '@nestjs/common';
import type { MikroORM } from '@mikro-orm/core';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { OutboxJobData } from '../message/message-headers.js';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { databaseOutage, databaseRecovered } from '../outbox.messages.js';
import type { WorkerCounters } from '../telemetry/process-counters.js';
import { errorText } from '../util/error-text.js';
import { OutageLog } from '../util/outage-log.js';
import { waitAtMost } from '../util/wait-at-most.js';
import { looksLikeConnectionError } from './connection-error.js';
import type { MessageProcessor } from './message.processor.js';

/** The BullMQ worker on the outbox queue; logs dead letters with the handler and error. */
export class OutboxWorker {
  private readonly logger = new Logger('OutboxWorker');
  private readonly worker: Worker<OutboxJobData>;
  private lastConnectionError = '';
  private databasePauseMs = 0;
  private readonly databaseOutage = new OutageLog(this.logger, {
    failed: databaseOutage,
    recovered: databaseRecovered,
  });

  constructor(
    private readonly processor: MessageProcessor,
    private readonly orm: MikroORM,
    private readonly connection: Redis,
    options: ResolvedOutboxOptions,
    private readonly stats: WorkerCounters,
  ) {
    this.worker = new Worker<OutboxJobData>(options.queueName, (job) => this.process(job), {
      connection,
      prefix: options.prefix,
      concurrency: options.worker.concurrency,
      // A job whose worker died returns to the queue after these; shorter means faster recovery
      // and more Redis traffic.
      lockDuration: options.worker.lockDurationMs,
      stalledInterval: options.worker.stalledIntervalMs,
      // The inbox makes a redelivery harmless, so a job survives a few crashed workers.
      maxStalledCount: options.worker.maxStalledCount,
      autorun: false,
    });
    this.worker.on('completed', () => {
      this.stats.handled++;
    });
    this.worker.on('failed', (job, error) => this.onFailed(job, error));
    this.worker.on('error', (error) => {
      // ioredis repeats the same error on every reconnect attempt; say it once until it changes.
      const text = errorText(error);
      if (text === this.lastConnectionError) return;
      this.lastConnectionError = text;
      this.logger.error(`Worker error: ${text}. Jobs wait in Redis; the worker reconnects by itself.`);
    });
    this.worker.on('ready', () => {
      this.lastConnectionError = '';
    });
  }

  /**
   * A lost database is an outage, not a handler bug: the job goes back to the queue without
   * spending an attempt, and every worker of the queue pauses with a growing delay until
   * PostgreSQL answers again. Anything else is the handler's failure and is retried as usual.
   */
  private async process(job: Job<OutboxJobData>): Promise<void> {
    try {
      await this.processor.process(job);
      this.databaseOutage.recovered();
      this.databasePauseMs = 0;
    } catch (error) {
      if (!looksLikeConnectionError(error) || (await this.databaseAnswers())) throw error;
      this.databaseOutage.failed(errorText(error));
      this.databasePauseMs = Math.min(5000, Math.max(250, this.databasePauseMs * 2));
      await this.worker.rateLimit(this.databasePauseMs);
      throw Worker.RateLimitError();
    }
  }

  private async databaseAnswers(): Promise<boolean> {
    return waitAtMost(
      this.orm.checkConnection().then(
        (result) => result.ok,
        () => false,
      ),
      2000,
      false,
    );
  }

  /** Abandons the handler runs still going (their transactions roll back); for a shutdown out of time. */
  abortActive(reason: string): void {
    this.processor.abortAll(reason);
  }

  start(): void {
    this.worker.run().catch((error: unknown) => this.logger.error(`Worker stopped: ${errorText(error)}`));
  }

  /**
   * Waits for active jobs to finish, then closes the worker's connections (BullMQ leaves a given
   * client open). With Redis unreachable there is nothing to finish cleanly, and BullMQ's graceful
   * close would wait for Redis (a later forced close shares that wait), so it closes by force.
   */
  async close(): Promise<void> {
    if (this.connection.status !== 'ready') return this.forceClose();
    try {
      await this.worker.close();
    } finally {
      this.connection.disconnect();
    }
  }

  /**
   * Stops without waiting for active jobs. Their handler transactions roll back when the process
   * exits, and BullMQ hands the jobs to another worker once their lock expires.
   */
  async forceClose(): Promise<void> {
    // Disconnect first: with Redis gone, BullMQ's close would otherwise wait for it.
    this.connection.disconnect();
    await this.worker.close(true);
  }

  private onFailed(job: Job<OutboxJobData> | undefined, error: Error): void {
    if (!job) return;
    const final =
      error instanceof UnrecoverableError ||
      error.name === 'UnrecoverableError' ||
      job.attemptsMade >= (job.opts.attempts ?? 1);
    if (!final) {
      this.stats.retried++;
      return;
    }
    this.stats.deadLettered++;
    // A job whose workers kept dying fails without a handler error; say so rather than count attempts.
    const why = /stalled/i.test(error.message)
      ? `its worker died ${job.stalledCounter ?? 'too many'} time(s) while running it`
      : `${job.attemptsMade} attempt(s)`;
    this.logger.error(`Dead letter: message ${job.id} (${job.name}) after ${why}: ${error.message}`);
  }
}
