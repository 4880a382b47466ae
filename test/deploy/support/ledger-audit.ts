import type { Job } from 'bullmq';
import type { OutboxJobData } from 'nest-outbox';
import type { BankWorld } from './bank-world.js';

/** One message the bank wrote, with what its ledger job was stamped with. */
export interface AuditedMessage {
  id: string;
  type: string;
  occurredAt: number;
  /** Handlers the relay stamped on its ledger job: the ones registered when it was routed. */
  stamped: string[];
  /** Handlers whose effect (and inbox mark) exists. */
  ran: string[];
}

/** What the exactly-once check found; every list must be empty for a pass. */
export interface Audit {
  messages: AuditedMessage[];
  /** `message handler` stamped on the job with no effect. */
  missing: string[];
  /** `message handler` with more than one effect. */
  duplicated: string[];
  /** `message handler` with an effect though the job did not ask for it. */
  unexpected: string[];
  /** `message handler` where the inbox mark and the effect disagree (one without the other). */
  inboxMismatch: string[];
  /** Messages not routed to `ledger`, still pending, or without a completed ledger job. */
  undelivered: string[];
  deadLetters: number;
  /** Accounts whose CreditLedger effects are not in the order of their deposits (it is ordered). */
  outOfOrder: string[];
  /** Times a ledger process handed a message back (it lacked a handler), summed over the jobs. */
  handedBack: number;
}

/**
 * Reads both databases and the ledger's queue, and checks that every handler stamped on a
 * message's job ran exactly once, with its inbox mark, and nothing else did.
 */
export async function auditLedger(world: BankWorld): Promise<Audit> {
  const rows = await world.bankSql<{
    id: string;
    type: string;
    occurred_at: Date | string;
    routed_to: string[] | null;
    pending: boolean;
  }>('select id::text, type, occurred_at, routed_to, dispatched_at is null as pending from outbox_message order by id');
  const queue = world.ledgerQueue;
  const completed = new Map<string, Job<OutboxJobData>>();
  for (const job of await queue.getJobs(['completed'], 0, -1)) if (job?.id) completed.set(job.id, job);
  const counts = await queue.getJobCounts('failed', 'delayed', 'waiting', 'active');
  const effects = await world.ledgerSql<{ message_id: string; handler: string; n: number }>(
    'select message_id::text, handler, count(*)::int as n from ledger_effect group by 1, 2',
  );
  const inbox = await world.ledgerSql<{ message_id: string; handler: string }>(
    'select message_id::text, handler from inbox_message',
  );
  const ran = new Map<string, number>(effects.map((e) => [`${e.message_id} ${e.handler}`, e.n]));
  const marked = new Set(inbox.map((mark) => `${mark.message_id} ${mark.handler}`));

  const audit: Audit = {
    messages: [],
    missing: [],
    duplicated: [],
    unexpected: [],
    inboxMismatch: [],
    undelivered: [],
    deadLetters: counts.failed ?? 0,
    outOfOrder: await outOfOrderAccounts(world),
    handedBack: 0,
  };
  const expected = new Set<string>();
  for (const row of rows) {
    const job = completed.get(row.id);
    if (row.pending || !(row.routed_to ?? []).includes('ledger') || !job) audit.undelivered.push(row.id);
    const stamped = job?.data.handlers ?? [];
    audit.handedBack += job?.data.setAside ?? 0;
    for (const handler of stamped) {
      expected.add(`${row.id} ${handler}`);
      if (!ran.has(`${row.id} ${handler}`)) audit.missing.push(`${row.id} ${handler}`);
    }
    audit.messages.push({
      id: row.id,
      type: row.type,
      occurredAt: new Date(row.occurred_at).getTime(),
      stamped,
      ran: stamped.filter((handler) => ran.has(`${row.id} ${handler}`)),
    });
  }
  for (const [pair, n] of ran) {
    if (n > 1) audit.duplicated.push(pair);
    if (!expected.has(pair)) audit.unexpected.push(pair);
    if (!marked.has(pair)) audit.inboxMismatch.push(pair);
  }
  for (const pair of marked) if (!ran.has(pair)) audit.inboxMismatch.push(pair);
  return audit;
}

/** The lists of an audit that must be empty, as counts, for one readable comparison. */
export function faults(audit: Audit): Record<string, number> {
  return {
    missing: audit.missing.length,
    duplicated: audit.duplicated.length,
    unexpected: audit.unexpected.length,
    inboxMismatch: audit.inboxMismatch.length,
    undelivered: audit.undelivered.length,
    deadLetters: audit.deadLetters,
    outOfOrder: audit.outOfOrder.length,
  };
}

export const NO_FAULTS = {
  missing: 0,
  duplicated: 0,
  unexpected: 0,
  inboxMismatch: 0,
  undelivered: 0,
  deadLetters: 0,
  outOfOrder: 0,
};

async function outOfOrderAccounts(world: BankWorld): Promise<string[]> {
  const rows = await world.ledgerSql<{ account_id: string }>(
    `select account_id from (
       select account_id, sequence, lag(sequence) over (partition by account_id order by id) as previous
       from ledger_effect where handler = 'CreditLedger') runs
     where previous >= sequence group by account_id`,
  );
  return rows.map((row) => row.account_id);
}
