import type { MikroORM } from '@mikro-orm/core';
import { Logger } from '@nestjs/common';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OutboxHandlersError, type OutboxVersionAheadError } from '../outbox.errors.js';
import {
  databaseOutage,
  databaseRecovered,
  deadLetterLine,
  handlerFailedLine,
  handlersNeverCame,
  waitingForHandlers,
  workerRedisError,
  workerStopped,
} from '../outbox.messages.js';
import { gaveUpRecord } from '../routing/failure-record.js';
import type { OutboxJobData } from '../routing/job-data.js';
import { moveToFront } from '../routing/move-to-front.js';
import type { RedisClient } from '../routing/redis.connection.js';
import type { DeadLetterCause, OutboxMetrics } from '../telemetry/outbox.metrics.js';
import type { WorkerCounters } from '../telemetry/process-counters.js';
import { errorText } from '../util/error-text.js';
import { OutageLog } from '../util/outage-log.js';
import { waitAtMost } from '../util/wait-at-most.js';
import { looksLikeConnectionError } from './connection-error.js';
import { GiveUp } from './give-up.js';
import type { MessageProcessor, Outcome } from './message.processor.js';

/** Who this process is, named in dead letters and logs. */
export interface ProcessIdentity {
  service: string;
  process: string;
  version: string;
}

/**
 * Of the handlers a message of `type` waits for, those still expected now (a handler retired since
 * is not, unless a live process still runs it), and whether another live process has them all.
 */
export type StillExpected = (type: string, handlers: string[]) => Promise<{ expected: string[]; served: boolean }>;

const SECOND = 1000;

/**
 * The BullMQ worker on this service's queue. It turns what the processor reports into BullMQ
 * moves: a message needing handlers this process lacks, or parked behind its key, goes back to
 * the queue without spending an attempt; a lost database pauses this worker only.
 */
export class OutboxWorker {
  private readonly logger = new Logger('OutboxWorker');
  private readonly worker: Worker<OutboxJobData>;
  private readonly databaseOutage = new OutageLog(this.logger, {
    failed: (reason) => databaseOutage(this.identity.service, reason),
    recovered: databaseRecovered,
  });
  private lastConnectionError = '';
  private probing: NodeJS.Timeout | undefined;
  private closing = false;
  /** When each group of missing handlers was last warned about, so a deploy does not flood the log. */
  private readonly warned = new Map<string, number>();
  constructor(
    private readonly processor: MessageProcessor,
    private readonly orm: MikroORM,
    private readonly connection: RedisClient,
    queueName: string,
    private readonly options: ResolvedOutboxOptions,
    private readonly identity: ProcessIdentity,
    private readonly stillExpected: StillExpected,
    private readonly stats: WorkerCounters,
    private readonly metrics: OutboxMetrics,
  ) {
    this.worker = new Worker<OutboxJobData>(queueName, (job, token) => this.process(job, token), {
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
      this.logger.error(workerRedisError(this.identity.service, text));
    });
    this.worker.on('ready', () => {
      this.lastConnectionError = '';
    });
  }

  private async process(job: Job<OutboxJobData>, token: string | undefined): Promise<void> {
    let outcome: Outcome;
    try {
      outcome = await this.processor.process(job);
      this.databaseOutage.recovered();
    } catch (error) {
      if (!looksLikeConnectionError(error) || (await this.databaseAnswers())) throw error;
      return this.pauseForDatabase(job, token, error);
    }
    if (outcome.kind === 'waiting-for-handlers')
      return this.waitForHandlers(job, token, outcome.missing, outcome.versionAhead);
    if (outcome.kind === 'parked') return this.park(job, token, outcome.parked);
  }

  /**
   * A rolling deploy: the service registered handlers this process does not have. The message
   * goes back, no attempt spent, for a process that has them; past `worker.waitForHandlersMs`
   * it becomes a dead letter naming them, and which service, process and build gave up.
   */
  private async waitForHandlers(
    job: Job<OutboxJobData>,
    token: string | undefined,
    missing: string[],
    versionAhead?: OutboxVersionAheadError,
  ): Promise<void> {
    const { expected, served } = await this.stillExpected(job.data.type, missing);
    if (expected.length === 0) return; // retired on purpose since the message was routed, and nobody runs it
    const now = Date.now();
    const since = job.data.waitingSince ?? now;
    if (now - since > this.options.worker.waitForHandlersMs) {
      const gaveUp = {
        reason: 'handlers-missing' as const,
        missing: expected,
        ...this.identity,
        at: new Date(now).toISOString(),
      };
      await job.updateProgress(gaveUpRecord(job.progress, gaveUp)).catch(() => undefined);
      throw new GiveUp(
        'handlers-missing',
        handlersNeverCame(job.data.type, job.id ?? '', expected, now - since, versionAhead?.message),
      );
    }
    // While a live process has the handlers, a growing delay only slows the deploy down: it comes
    // back in about a second. Otherwise the delay grows, so old builds do not spin on it.
    const delayMs = served ? jittered(SECOND) : this.setAsideDelay(job, 30 * SECOND);
    this.warnOnce(job.data.type, expected, () =>
      waitingForHandlers(job.data.type, job.id ?? '', expected, delayMs, this.identity, versionAhead?.message),
    );
    await this.setAside(job, token, delayMs, { waitingSince: since });
    throw new DelayedError();
  }

  /**
   * Ordered handlers whose turn has not come: the message waits in the delayed set until the
   * message before it is handled, which moves it to the front of the queue. If that happened while it was being set
   * aside, it promotes itself; the delay is only the safety net should a promotion be lost.
   */
  private async park(
    job: Job<OutboxJobData>,
    token: string | undefined,
    parked: Parameters<MessageProcessor['turnCame']>[0],
  ): Promise<void> {
    await this.setAside(job, token, this.setAsideDelay(job, 300 * SECOND), {});
    if (await this.processor.turnCame(parked).catch(() => false)) await moveToFront(job).catch(() => undefined);
    throw new DelayedError();
  }

  /** A lost database is an outage, not a handler bug: this worker pauses; others go on. */
  private async pauseForDatabase(job: Job<OutboxJobData>, token: string | undefined, error: unknown): Promise<void> {
    this.databaseOutage.failed(errorText(error));
    if (!this.probing && !this.closing) {
      await this.worker.pause(true);
      this.probeDatabase(250);
    }
    await this.setAside(job, token, SECOND, {});
    throw new DelayedError();
  }

  private probeDatabase(afterMs: number): void {
    this.probing = setTimeout(async () => {
      if (this.closing) return;
      if (await this.databaseAnswers()) {
        this.probing = undefined;
        this.worker.resume();
        return;
      }
      this.probeDatabase(Math.min(5 * SECOND, afterMs * 2));
    }, afterMs);
    this.probing.unref();
  }

  /** Back to the delayed set without spending an attempt; `setAside` counts how often, to space the wake-ups. */
  private async setAside(
    job: Job<OutboxJobData>,
    token: string | undefined,
    delayMs: number,
    extra: Partial<OutboxJobData>,
  ): Promise<void> {
    await job.updateData({ ...job.data, ...extra, setAside: (job.data.setAside ?? 0) + 1 });
    await job.moveToDelayed(Date.now() + delayMs, token);
  }

  /** 1 s, 2 s, 4 s … up to `maxMs`, with jitter, by how often the message was set aside before. */
  private setAsideDelay(job: Job<OutboxJobData>, maxMs: number): number {
    return jittered(Math.min(maxMs, SECOND * 2 ** Math.min(job.data.setAside ?? 0, 20)));
  }

  private warnOnce(type: string, missing: string[], text: () => string): void {
    const key = `${type}\t${missing.join(',')}`;
    const last = this.warned.get(key) ?? 0;
    if (Date.now() - last < 60 * SECOND) return;
    this.warned.set(key, Date.now());
    this.logger.warn(text());
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
    this.worker
      .run()
      .catch((error: unknown) => this.logger.error(workerStopped(this.identity.service, errorText(error))));
  }

  /**
   * Waits for active jobs to finish, then closes the worker's connections (BullMQ leaves a given
   * client open). With Redis unreachable there is nothing to finish cleanly, and BullMQ's graceful
   * close would wait for Redis (a later forced close shares that wait), so it closes by force.
   */
  async close(): Promise<void> {
    this.stopProbing();
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
    this.stopProbing();
    // Disconnect first: with Redis gone, BullMQ's close would otherwise wait for it.
    this.connection.disconnect();
    await this.worker.close(true);
  }

  private stopProbing(): void {
    this.closing = true;
    clearTimeout(this.probing);
    this.probing = undefined;
  }

  /**
   * One structured line per failure: per failing handler (next: retry or dead-letter), or, when
   * the message as a whole was given up on, one dead-letter line with the reason. Counts the
   * dead letter too.
   */
  private onFailed(job: Job<OutboxJobData> | undefined, error: Error): void {
    if (!job) return;
    const maxAttempts = job.opts.attempts ?? 1;
    const final =
      error instanceof UnrecoverableError || error.name === 'UnrecoverableError' || job.attemptsMade >= maxAttempts;
    if (final) this.stats.deadLettered++;
    else this.stats.retried++;
    const { service } = this.identity;
    const type = typeof job.data?.type === 'string' ? job.data.type : job.name;
    const messageId = job.id ?? '';
    const next = final ? 'dead-letter' : 'retry';
    const log = (line: string) => (final ? this.logger.error(line) : this.logger.warn(line));
    const failure = { service, messageId, type, attempt: job.attemptsMade, maxAttempts, next } as const;
    if (error instanceof OutboxHandlersError) {
      for (const [handler, cause] of error.failures)
        log(handlerFailedLine({ ...failure, handler, error: errorText(cause) }));
      if (final) this.metrics.messageDeadLettered(type, 'handler-failed', [...error.failures.keys()]);
      return;
    }
    if (!final) {
      log(handlerFailedLine({ ...failure, error: errorText(error) }));
      return;
    }
    // A job whose workers kept dying fails without a handler error (BullMQ says it stalled).
    const reason: DeadLetterCause =
      error instanceof GiveUp ? error.reason : /stalled/i.test(error.message) ? 'worker-died' : 'unreadable';
    this.metrics.messageDeadLettered(type, reason, []);
    const { process, version } = this.identity;
    log(
      deadLetterLine({
        service,
        messageId,
        type,
        reason,
        attempts: job.attemptsMade,
        process,
        version,
        error: errorText(error),
      }),
    );
  }
}

/** `ms` shortened by up to a quarter at random, so messages set aside together do not return together. */
function jittered(ms: number): number {
  return Math.round(ms * (0.75 + Math.random() * 0.25));
}
