import { MikroORM } from '@mikro-orm/postgresql';
import { Queue } from 'bullmq';

export interface QueueCounts {
  waiting: number;
  active: number;
  delayed: number;
  completed: number;
  failed: number;
}

export interface Progress {
  orders: number;
  paid: number;
  events: number;
  pending: number;
  /** Rows handler runs recorded in the inbox. */
  inbox: number;
}

/** What the final check found; every count but the totals must be 0 for a pass. */
export interface Verification {
  orders: number;
  paid: number;
  /** Outbox rows (OrderPlaced, OrderPaid, chained LoyaltyPointsAwarded). */
  events: number;
  /** orders + 2 × paid: one OrderPlaced per order, one OrderPaid and one LoyaltyPointsAwarded per paid order. */
  expectedEvents: number;
  inbox: number;
  expectedInbox: number;
  /** Effects that should exist and do not (missing rows, inbox marks, notifications, read-model versions). */
  lost: number;
  /** Effects present more than once (a handler's work done twice, an event written twice). */
  duplicates: number;
  /** Loyalty points missing / in excess, summed over customers. */
  pointsMissing: number;
  pointsExtra: number;
  /** Read-model rows whose status disagrees with the order. */
  statusWrong: number;
  /** Notifications, inbox marks or events that belong to no message / order. */
  orphans: number;
  /** Outbox rows never handed to BullMQ. */
  pending: number;
  /** Outbox rows still under a lease. */
  locked: number;
  /** Outbox rows claimed more than once (re-dispatched after a crash, stall or outage). */
  redispatched: number;
  jobs: QueueCounts;
  /** Job runs beyond the first (stalled jobs re-run, retries): deliveries the inbox had to absorb. */
  redeliveries: number;
  /** Jobs that BullMQ found stalled (their worker died or lost its lock) at least once. */
  stalledJobs: number;
  /** The most attempts any job used (a job is dead-lettered after `worker.attempts`). */
  maxAttempts: number;
  deadLetters: string[];
}

const PLACED = 'orders.order-placed.v1';
const PAID = 'orders.order-paid.v1';
const AWARDED = 'loyalty.points-awarded.v1';

/**
 * Reads the state of one scenario from PostgreSQL and Redis, as an outside observer: progress
 * while it runs, "quiet" when nothing can move any more, and the exactly-once check at the end.
 */
export class Probe {
  private constructor(
    private readonly orm: MikroORM,
    private readonly queue: Queue,
  ) {}

  /** The orders service's queue under the scenario's outbox `prefix`. */
  static async open(databaseUrl: string, redisUrl: string, prefix: string): Promise<Probe> {
    const orm = await MikroORM.init({
      clientUrl: databaseUrl,
      entities: [],
      discovery: { warnWhenNoEntities: false },
      pool: { min: 0, max: 2 },
      debug: false,
    });
    const queue = new Queue('orders', {
      prefix,
      connection: { url: redisUrl, maxRetriesPerRequest: 1, enableOfflineQueue: false },
    });
    queue.on('error', () => undefined); // a restarting Redis is expected here; calls fail and are retried by the caller
    return new Probe(orm, queue);
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.queue.close(), this.orm.close(true)]);
  }

  sql<T = Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
    return this.orm.em.getConnection().execute(text, params) as Promise<T[]>;
  }

  async queueCounts(): Promise<QueueCounts> {
    const c = await this.queue.getJobCounts(
      'waiting',
      'active',
      'delayed',
      'completed',
      'failed',
      'prioritized',
      'waiting-children',
    );
    return {
      waiting: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c['waiting-children'] ?? 0),
      active: c.active ?? 0,
      delayed: c.delayed ?? 0,
      completed: c.completed ?? 0,
      failed: c.failed ?? 0,
    };
  }

  async progress(): Promise<Progress> {
    const [row] = await this.sql<Progress>(`select
      (select count(*) from orders)::int as orders,
      (select count(*) from orders where status = 'paid')::int as paid,
      (select count(*) from outbox_message)::int as events,
      (select count(*) from outbox_message where dispatched_at is null)::int as pending,
      (select count(*) from inbox_message)::int as inbox`);
    return row;
  }

  /** Inbox marks recorded for these message ids. */
  async handledCount(ids: readonly string[]): Promise<number> {
    const [row] = await this.sql<{ n: number }>(
      'select count(*)::int as n from inbox_message where message_id = any(?::uuid[])',
      [`{${ids.join(',')}}`],
    );
    return row.n;
  }

  async rows(
    ids: readonly string[],
  ): Promise<Array<{ id: string; attempts: number; dispatched: boolean; locked: boolean }>> {
    return this.sql(
      `select id::text, attempts, dispatched_at is not null as dispatched, coalesce(locked_until > now(), false) as locked
       from outbox_message where id = any(?::uuid[]) order by id`,
      [`{${ids.join(',')}}`],
    );
  }

  /**
   * Nothing can move any more: no pending row, nothing waiting, running (stalled jobs count as
   * active) or delayed (retries) in BullMQ; Redis read before and after PostgreSQL, with the
   * finished-job count unchanged, so nothing crossed between the two stores unseen.
   */
  async isQuiet(): Promise<boolean> {
    try {
      const before = await this.queueCounts();
      if (before.waiting + before.active + before.delayed > 0) return false;
      const [{ pending }] = await this.sql<{ pending: number }>(
        'select count(*)::int as pending from outbox_message where dispatched_at is null',
      );
      if (pending > 0) return false;
      const after = await this.queueCounts();
      return (
        after.waiting + after.active + after.delayed === 0 &&
        before.completed + before.failed === after.completed + after.failed
      );
    } catch {
      return false; // a server is down: not quiet
    }
  }

  async verify(): Promise<Verification> {
    const [orders] = await this.sql<Record<string, number>>(`
      with ev as (
        select payload->>'orderId' as order_id,
          count(*) filter (where type = '${PLACED}') as placed,
          count(*) filter (where type = '${PAID}') as paid,
          count(*) filter (where type = '${AWARDED}') as awarded
        from outbox_message group by 1),
      per_order as (
        select o.status, coalesce(ev.placed, 0) as placed, coalesce(ev.paid, 0) as paid, coalesce(ev.awarded, 0) as awarded,
          case when o.status = 'paid' then 1 else 0 end as exp_paid,
          coalesce(s.version, 0) as version, case when o.status = 'paid' then 2 else 1 end as exp_version,
          s.status as summary_status
        from orders o left join ev on ev.order_id = o.id::text left join order_summary s on s.order_id = o.id)
      select count(*)::int as orders, (count(*) filter (where status = 'paid'))::int as paid,
        coalesce(sum(greatest(1 - placed, 0) + greatest(exp_paid - paid, 0) + greatest(exp_paid - awarded, 0) + greatest(exp_version - version, 0)), 0)::int as lost,
        coalesce(sum(greatest(placed - 1, 0) + greatest(paid - exp_paid, 0) + greatest(awarded - exp_paid, 0) + greatest(version - exp_version, 0)), 0)::int as duplicates,
        (count(*) filter (where summary_status is distinct from status))::int as status_wrong
      from per_order`);
    const [messages] = await this.sql<Record<string, number>>(`
      with inbox as (select message_id, count(*) as n from inbox_message group by 1),
      notes as (select message_id, kind, count(*) as n from notification_log group by 1, 2),
      per_message as (
        select m.type, m.attempts, m.dispatched_at, m.locked_until, coalesce(i.n, 0) as handled,
          case m.type when '${PLACED}' then 2 when '${PAID}' then 2 when '${AWARDED}' then 1 else 0 end as exp_handled,
          coalesce(nc.n, 0) as confirmations, case when m.type = '${PLACED}' then 1 else 0 end as exp_confirmations,
          coalesce(ns.n, 0) as statements, case when m.type = '${AWARDED}' then 1 else 0 end as exp_statements
        from outbox_message m
          left join inbox i on i.message_id = m.id
          left join notes nc on nc.message_id = m.id and nc.kind = 'order-confirmation'
          left join notes ns on ns.message_id = m.id and ns.kind = 'points-statement')
      select count(*)::int as events,
        (count(*) filter (where dispatched_at is null))::int as pending,
        (count(*) filter (where locked_until > now()))::int as locked,
        (count(*) filter (where attempts > 1))::int as redispatched,
        coalesce(sum(handled), 0)::int as inbox, coalesce(sum(exp_handled), 0)::int as expected_inbox,
        coalesce(sum(greatest(exp_handled - handled, 0) + greatest(exp_confirmations - confirmations, 0) + greatest(exp_statements - statements, 0)), 0)::int as lost,
        coalesce(sum(greatest(handled - exp_handled, 0) + greatest(confirmations - exp_confirmations, 0) + greatest(statements - exp_statements, 0)), 0)::int as duplicates
      from per_message`);
    const [orphans] = await this.sql<{ n: number }>(`select (
        (select count(*) from notification_log n where not exists (select 1 from outbox_message m where m.id = n.message_id)) +
        (select count(*) from inbox_message i where not exists (select 1 from outbox_message m where m.id = i.message_id)) +
        (select count(*) from outbox_message m where not exists (select 1 from orders o where o.id::text = m.payload->>'orderId')))::int as n`);
    const [points] = await this.sql<{ missing: number; extra: number }>(`
      with expected as (select customer_id, sum(total_cents / 100)::int as points from orders where status = 'paid' group by 1)
      select coalesce(sum(greatest(coalesce(e.points, 0) - coalesce(a.points, 0), 0)), 0)::int as missing,
             coalesce(sum(greatest(coalesce(a.points, 0) - coalesce(e.points, 0), 0)), 0)::int as extra
      from expected e full join loyalty_account a using (customer_id)`);
    const jobs = await this.queueCounts();
    const failed = await this.queue.getFailed(0, 4);
    const finished = await this.queue.getJobs(['completed', 'failed'], 0, -1);
    return {
      orders: orders.orders,
      paid: orders.paid,
      events: messages.events,
      expectedEvents: orders.orders + 2 * orders.paid,
      inbox: messages.inbox,
      expectedInbox: messages.expected_inbox,
      lost: orders.lost + messages.lost,
      duplicates: orders.duplicates + messages.duplicates,
      pointsMissing: points.missing,
      pointsExtra: points.extra,
      statusWrong: orders.status_wrong,
      orphans: orphans.n,
      pending: messages.pending,
      locked: messages.locked,
      redispatched: messages.redispatched,
      jobs,
      redeliveries: finished.reduce((sum, job) => sum + Math.max(0, (job.attemptsStarted ?? 1) - 1), 0),
      stalledJobs: finished.filter((job) => (job.stalledCounter ?? 0) > 0).length,
      maxAttempts: finished.reduce((max, job) => Math.max(max, job.attemptsMade ?? 0), 0),
      deadLetters: failed.map(
        (job) => `${job.id} ${job.name} after ${job.attemptsMade} attempt(s): ${job.failedReason}`,
      ),
    };
  }
}

/** The exactly-once check every scenario ends with, as one comparable object (a failing test shows the whole picture). */
export function exactlyOnceView(v: Verification) {
  return {
    events: v.events === v.expectedEvents ? 'as expected' : `${v.events} of ${v.expectedEvents}`,
    inbox: v.inbox === v.expectedInbox ? 'as expected' : `${v.inbox} of ${v.expectedInbox}`,
    lost: v.lost,
    duplicates: v.duplicates,
    pointsMissing: v.pointsMissing,
    pointsExtra: v.pointsExtra,
    statusWrong: v.statusWrong,
    orphans: v.orphans,
    pending: v.pending,
    locked: v.locked,
    deadLetters: v.deadLetters,
    queue: { waiting: v.jobs.waiting, active: v.jobs.active, delayed: v.jobs.delayed, failed: v.jobs.failed },
    // One BullMQ job per message: a re-dispatch must not have created a second job.
    jobsPerMessage:
      v.jobs.completed + v.jobs.failed === v.events
        ? 'one'
        : `${v.jobs.completed + v.jobs.failed} jobs for ${v.events} messages`,
  };
}

export const EXACTLY_ONCE = {
  events: 'as expected',
  inbox: 'as expected',
  lost: 0,
  duplicates: 0,
  pointsMissing: 0,
  pointsExtra: 0,
  statusWrong: 0,
  orphans: 0,
  pending: 0,
  locked: 0,
  deadLetters: [],
  queue: { waiting: 0, active: 0, delayed: 0, failed: 0 },
  jobsPerMessage: 'one',
};
