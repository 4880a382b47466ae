import { MikroORM } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import type { OutboxHeaders } from '../message/message-headers.js';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OutboxArgumentError } from '../outbox.errors.js';
import { invalidReplay } from '../outbox.messages.js';
import { OUTBOX_OPTIONS } from '../outbox.tokens.js';
import type { OutboxJobData } from '../routing/job-data.js';
import { OutboxQueues } from '../routing/outbox-queues.js';
import { jobOptionsOf, retryPolicyOf, type RetryPolicy } from '../routing/retry-policy.js';
import { SubscriptionRegistry } from '../routing/subscription.registry.js';
import { qualifiedTables } from '../store/outbox.tables.js';
import { textArray, uuidArray } from '../store/sql-arrays.js';

/** Which retained messages to deliver again, and to whom. */
export interface ReplayRequest {
  /** The consuming service to deliver to; it must be subscribed (registered) to the types. */
  service: string;
  /** Event types to replay; default every type the service subscribes to. */
  types?: string[];
  /** Messages that occurred at or after this time. */
  from?: Date;
  /** Messages that occurred before this time. */
  to?: Date;
}

export interface ReplayResult {
  /** Messages handed to the service's queue. */
  delivered: number;
}

const BATCH = 500;

/**
 * Catch-up for a consumer: delivers the retained (dispatched, not yet deleted by retention) rows
 * of this service's outbox to one consuming service — those it never received, matching types
 * and time — for instance a service that subscribed after they were written. The consumer's
 * inbox makes a message it already handled a no-op. Replayed messages are not ordered: ordered
 * handlers run them after what they already handled for their keys.
 */
@Injectable()
export class OutboxReplay {
  private readonly selectSql: string;
  private readonly markSql: string;

  constructor(
    private readonly orm: MikroORM,
    private readonly queues: OutboxQueues,
    private readonly registry: SubscriptionRegistry,
    @Inject(OUTBOX_OPTIONS) private readonly options: ResolvedOutboxOptions,
  ) {
    const { outbox } = qualifiedTables(options.tables);
    this.selectSql = `select id, type, payload::text as payload, headers::text as headers,
        aggregate_type, aggregate_id, key
      from ${outbox}
      where dispatched_at is not null and not (? = any(coalesce(routed_to, '{}')))
        and type = any(?::text[]) and occurred_at >= ? and occurred_at < ? and id > ?
      order by id limit ?`;
    this.markSql = `update ${outbox} set routed_to = array_append(coalesce(routed_to, '{}'), ?)
      where id = any(?::uuid[])`;
  }

  async replay(request: ReplayRequest): Promise<ReplayResult> {
    const { service, from, to } = checkRequest(request);
    const { table } = await this.registry.routes();
    const handlersByType = new Map<string, string[]>();
    let retry: RetryPolicy | undefined;
    for (const [type, routes] of table) {
      const route = routes.find((candidate) => candidate.service === service);
      if (route && (!request.types || request.types.includes(type))) {
        handlersByType.set(
          type,
          route.handlers.map((h) => h.name),
        );
        retry ??= route.retry;
      }
    }
    if (handlersByType.size === 0) return { delivered: 0 };
    // The consuming service's retry rules, as the relay stamps them.
    const jobOptions = jobOptionsOf(retry ?? retryPolicyOf(this.options), this.options.keepCompletedSeconds);
    const connection = this.orm.em.getConnection('write');
    let delivered = 0;
    let after = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      // Open bounds as PostgreSQL's infinities: a far-off JS Date prints as a year PostgreSQL cannot read.
      const params = [
        service,
        textArray([...handlersByType.keys()]),
        from ?? '-infinity',
        to ?? 'infinity',
        after,
        BATCH,
      ];
      const rows = (await connection.execute(this.selectSql, params)) as Array<Record<string, string | null>>;
      if (rows.length === 0) break;
      const jobs = rows.map((row) => ({
        name: row.type!,
        data: {
          type: row.type!,
          payload: row.payload!,
          headers: JSON.parse(row.headers!) as OutboxHeaders,
          aggregateType: row.aggregate_type,
          aggregateId: row.aggregate_id,
          key: row.key,
          source: this.options.service,
          handlers: handlersByType.get(row.type!)!,
        } satisfies OutboxJobData,
        opts: { ...jobOptions, jobId: row.id! },
      }));
      await this.queues.of(service).addBulk(jobs);
      await connection.execute(this.markSql, [service, uuidArray(rows.map((row) => row.id!))], 'run');
      delivered += rows.length;
      after = rows[rows.length - 1].id!;
      if (rows.length < BATCH) break;
    }
    return { delivered };
  }
}

function checkRequest(request: ReplayRequest): ReplayRequest {
  if (!request || typeof request.service !== 'string' || request.service === '') {
    throw new OutboxArgumentError(invalidReplay('service must be the name of a consuming service'));
  }
  if (
    request.types !== undefined &&
    (!Array.isArray(request.types) || request.types.some((type) => typeof type !== 'string'))
  ) {
    throw new OutboxArgumentError(invalidReplay('types must be an array of event type names'));
  }
  for (const name of ['from', 'to'] as const) {
    const value = request[name];
    if (value !== undefined && (!(value instanceof Date) || Number.isNaN(value.getTime()))) {
      throw new OutboxArgumentError(invalidReplay(`${name} must be a valid Date`));
    }
  }
  return request;
}
