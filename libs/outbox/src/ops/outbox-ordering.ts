import { MikroORM } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Inject, Injectable } from '@nestjs/common';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OutboxArgumentError } from '../outbox.errors.js';
import { keyNotHeld } from '../outbox.messages.js';
import { OUTBOX_OPTIONS } from '../outbox.tokens.js';
import { moveToFront } from '../routing/move-to-front.js';
import { OutboxQueues } from '../routing/outbox-queues.js';
import { qualifiedTables } from '../store/outbox.tables.js';

/** A key an ordered handler cannot move on with. */
export interface HeldKey {
  handler: string;
  /** The service that wrote the key's messages. */
  source: string;
  key: string;
  /** The last place handled. */
  position: number;
  /** The message whose turn it is and which failed, if it did (it may also simply not have arrived yet). */
  blockedBy: { seq: number; messageId: string; error: string; since: Date } | null;
  /** Later messages of the key waiting for their turn. */
  parked: number;
  /** When the oldest of them was parked. */
  waitingSince: Date | null;
}

/** The key to skip a message of. */
export interface KeyRef {
  handler: string;
  source: string;
  key: string;
}

/**
 * Admin operations on ordered handling, in this service's database: the keys held back — by a
 * message that keeps failing, or that has not arrived — and skipping the message that holds one.
 */
@Injectable()
export class OutboxOrdering {
  private readonly heldSql: string;
  private readonly skipSql: string;

  constructor(
    private readonly orm: MikroORM,
    private readonly queues: OutboxQueues,
    @Inject(OUTBOX_OPTIONS) options: ResolvedOutboxOptions,
  ) {
    const { inboxPosition: position, inboxParked: parked } = qualifiedTables(options.tables);
    this.heldSql = `select p.handler, p.source, p.key, p.last_seq::text as position,
        p.blocked_seq::text as "blockedSeq", p.blocked_message_id as "blockedMessageId",
        p.blocked_error as "blockedError",
        p.blocked_at as "blockedAt", count(q.seq)::int as parked, min(q.parked_at) as "waitingSince"
      from ${position} p
      left join ${parked} q on q.handler = p.handler and q.source = p.source and q.key = p.key and q.seq > p.last_seq
      group by p.handler, p.source, p.key
      having p.blocked_seq is not null or count(q.seq) > 0
      order by coalesce(p.blocked_at, min(q.parked_at)) limit ?`;
    this.skipSql = `with skipped as (
        update ${position} set last_seq = last_seq + 1, updated_at = now(),
          blocked_seq = null, blocked_message_id = null, blocked_error = null, blocked_at = null
        where handler = ? and source = ? and key = ? and (blocked_seq is not null or exists (
          select 1 from ${parked} q where q.handler = ${position}.handler and q.source = ${position}.source
            and q.key = ${position}.key and q.seq > ${position}.last_seq))
        returning last_seq)
      select s.last_seq::text as skipped, q.message_id as "next"
      from skipped s left join ${parked} q on q.handler = ? and q.source = ? and q.key = ? and q.seq = s.last_seq + 1`;
  }

  /** Keys an ordered handler is held back on, longest held first. */
  async heldKeys(limit = 100): Promise<HeldKey[]> {
    const rows = (await this.orm.em.getConnection().execute(this.heldSql, [limit])) as Array<Record<string, unknown>>;
    return rows.map((row) => ({
      handler: String(row.handler),
      source: String(row.source),
      key: String(row.key),
      position: Number(row.position),
      blockedBy:
        row.blockedSeq === null
          ? null
          : {
              seq: Number(row.blockedSeq),
              messageId: String(row.blockedMessageId),
              error: String(row.blockedError),
              since: new Date(row.blockedAt as string),
            },
      parked: Number(row.parked),
      waitingSince: row.waitingSince ? new Date(row.waitingSince as string) : null,
    }));
  }

  /**
   * Skips the message whose turn it is on a held key, for that handler only: the handler never
   * runs it (should it arrive or be retried later, it is taken as done), and the next parked
   * message runs at once. Returns the place skipped.
   */
  async skip(ref: KeyRef): Promise<{ skipped: number }> {
    const at = [ref.handler, ref.source, ref.key];
    const [row] = await this.orm.em
      .fork()
      .transactional((em) =>
        (em as EntityManager).execute<Array<{ skipped: string; next: string | null }>>(this.skipSql, [...at, ...at]),
      );
    if (!row) throw new OutboxArgumentError(keyNotHeld(ref.handler, ref.source, ref.key));
    if (row.next) {
      // The skip has committed: a job taken or gone meanwhile must not make it look failed. A parked
      // message left behind still runs when its own set-aside delay ends.
      const job = await this.queues.own().getJob(row.next);
      if (job) await moveToFront(job).catch(() => undefined);
    }
    return { skipped: Number(row.skipped) };
  }
}
