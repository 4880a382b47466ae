import { OutboxOptionsError } from '../outbox.errors.js';
import {
  inboxRetentionBelowRetryWindow,
  invalidOption,
  keepCompletedBelowLease,
  optionsNotAnObject,
  serviceMissing,
} from '../outbox.messages.js';
import type { OutboxModuleOptions, ResolvedOutboxOptions } from './outbox-options.interface.js';
import { flag, fraction, int, oneOf, section, text } from './option-readers.js';
import { retryWindowMs } from './retry-window.js';
import { resolveTableNames } from './table-names.js';

const NAME = /^[A-Za-z0-9_.-]{1,100}$/;
const NAME_RULE = '1-100 letters, digits, "-", "_" or "." (no ":", which BullMQ forbids)';
// A prefix may carry one Redis Cluster hash tag, so every outbox key lands in one slot.
const PREFIX = /^[A-Za-z0-9_.-]*(\{[A-Za-z0-9_.-]+\})?[A-Za-z0-9_.-]*$/;
const PREFIX_RULE = 'letters, digits, "-", "_" or ".", with at most one {hash tag}';
const HANDLER_NAME = /^[A-Za-z_$][A-Za-z0-9_$]{0,199}$/;
const DAY = 86_400;

/** Every option with its default, checked; throws `OutboxOptionsError` naming the first bad one. */
export function resolveOutboxOptions(options: OutboxModuleOptions): ResolvedOutboxOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new OutboxOptionsError(optionsNotAnObject(options));
  const relay = section('relay', options.relay);
  const worker = section('worker', options.worker);
  const backoff = section('worker.backoff', worker.backoff);
  const retention = section('retention', options.retention);
  if (options.service === undefined) throw new OutboxOptionsError(serviceMissing());
  const resolved: ResolvedOutboxOptions = {
    service: text('service', options.service, '', NAME, NAME_RULE),
    version: text('version', options.version, defaultVersion(), /^.{1,100}$/, '1-100 characters'),
    redis: redis(options.redis ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'),
    prefix: text('prefix', options.prefix, 'outbox', PREFIX, PREFIX_RULE),
    retiredHandlers: names('retiredHandlers', options.retiredHandlers),
    relay: {
      enabled: flag('relay.enabled', relay.enabled, true),
      intervalMs: int('relay.intervalMs', relay.intervalMs, 1000, 10, 3_600_000),
      batchSize: int('relay.batchSize', relay.batchSize, 500, 1, 10_000),
      leaseMs: int('relay.leaseMs', relay.leaseMs, 30_000, 1000, 3_600_000),
      maxBackoffMs: int('relay.maxBackoffMs', relay.maxBackoffMs, 30_000, 100, 3_600_000),
      maxAttempts: int('relay.maxAttempts', relay.maxAttempts, 10, 1, 1000),
      dispatchOnCommit: flag('relay.dispatchOnCommit', relay.dispatchOnCommit, true),
    },
    worker: {
      enabled: flag('worker.enabled', worker.enabled, true),
      concurrency: int('worker.concurrency', worker.concurrency, 16, 1, 1000),
      attempts: int('worker.attempts', worker.attempts, 5, 1, 100),
      backoff: {
        type: oneOf('worker.backoff.type', backoff.type, 'exponential', ['exponential', 'fixed'] as const),
        delayMs: int('worker.backoff.delayMs', backoff.delayMs, 1000, 0, 3_600_000),
        jitter: fraction('worker.backoff.jitter', backoff.jitter, 0.25),
      },
      maxStalledCount: int('worker.maxStalledCount', worker.maxStalledCount, 10, 0, 1000),
      lockDurationMs: int('worker.lockDurationMs', worker.lockDurationMs, 30_000, 1000, 3_600_000),
      stalledIntervalMs: int('worker.stalledIntervalMs', worker.stalledIntervalMs, 30_000, 1000, 3_600_000),
      ordered: flag('worker.ordered', worker.ordered, false),
      waitForHandlersMs: int('worker.waitForHandlersMs', worker.waitForHandlersMs, 900_000, 1000, 7 * DAY * 1000),
      handlersPerTransaction: int('worker.handlersPerTransaction', worker.handlersPerTransaction, 1, 1, 1000),
    },
    tables: resolveTableNames(options.tables),
    maxPayloadBytes: int('maxPayloadBytes', options.maxPayloadBytes, 262_144, 64, 64 * 1024 * 1024),
    keepCompletedSeconds: int('keepCompletedSeconds', options.keepCompletedSeconds, DAY, 1, 365 * DAY),
    retention: {
      enabled: flag('retention.enabled', retention.enabled, true),
      dispatchedAfterSeconds: int(
        'retention.dispatchedAfterSeconds',
        retention.dispatchedAfterSeconds,
        7 * DAY,
        0,
        3650 * DAY,
      ),
      deleteOnDispatch: flag('retention.deleteOnDispatch', retention.deleteOnDispatch, false),
      inboxAfterSeconds: int('retention.inboxAfterSeconds', retention.inboxAfterSeconds, 14 * DAY, 1, 3650 * DAY),
      intervalMs: int('retention.intervalMs', retention.intervalMs, 60_000, 100, 86_400_000),
      batchSize: int('retention.batchSize', retention.batchSize, 1000, 1, 100_000),
    },
    shutdownTimeoutMs: int('shutdownTimeoutMs', options.shutdownTimeoutMs, 10_000, 0, 600_000),
    eventBus: flag('eventBus', options.eventBus, true),
  };
  checkTogether(resolved);
  return resolved;
}

function defaultVersion(): string {
  return process.env.OUTBOX_VERSION || process.env.npm_package_version || 'unknown';
}

function names(name: string, value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string' || !HANDLER_NAME.test(item))) {
    throw new OutboxOptionsError(invalidOption(name, 'an array of handler class names', value));
  }
  return [...new Set(value as string[])];
}

function redis(value: unknown): ResolvedOutboxOptions['redis'] {
  if (typeof value === 'object' && value !== null && 'cluster' in value) {
    const { cluster } = value as { cluster: unknown };
    const node = (n: unknown) =>
      typeof n === 'object' && n !== null && typeof (n as { host?: unknown }).host === 'string';
    if (!Array.isArray(cluster) || cluster.length === 0 || !cluster.every(node)) {
      throw new OutboxOptionsError(
        invalidOption('redis.cluster', 'a non-empty array of { host, port } nodes', cluster),
      );
    }
    return value as ResolvedOutboxOptions['redis'];
  }
  if (typeof value === 'string') {
    if (!/^rediss?:\/\//.test(value))
      throw new OutboxOptionsError(invalidOption('redis', 'a URL starting with redis:// or rediss://', value));
    return value;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new OutboxOptionsError(invalidOption('redis', 'a redis:// URL or ioredis options', value));
  }
  return value as ResolvedOutboxOptions['redis'];
}

/** Rules that tie two options together. */
function checkTogether(resolved: ResolvedOutboxOptions): void {
  if (resolved.keepCompletedSeconds * 1000 < resolved.relay.leaseMs) {
    throw new OutboxOptionsError(keepCompletedBelowLease(resolved.keepCompletedSeconds, resolved.relay.leaseMs));
  }
  const windowSeconds = Math.ceil(retryWindowMs(resolved.worker) / 1000);
  if (resolved.retention.inboxAfterSeconds <= windowSeconds) {
    const { attempts, backoff } = resolved.worker;
    throw new OutboxOptionsError(
      inboxRetentionBelowRetryWindow(
        resolved.retention.inboxAfterSeconds,
        windowSeconds,
        attempts,
        backoff.type,
        backoff.delayMs,
      ),
    );
  }
}
