import { withConnection } from '../../test/support/database.js';
import { SomethingHappened } from './bench.app.js';

/**
 * Inserts `rows` pending outbox rows, 25k per statement: UUID v7 ids in time order (ms, then a
 * 12-bit counter, variant bits, random tail) as newMessageId() makes them, the bench event's
 * payload and the headers capture writes — the same rows a long outage of the relay leaves.
 */
export async function writeBacklog(url: string, rows: number): Promise<void> {
  const payload = JSON.stringify(new SomethingHappened('00000000-0000-0000-0000-000000000000', 0, 0));
  const baseMs = Date.now() - 60_000;
  await withConnection(url, async (execute) => {
    for (let from = 0; from < rows; from += 25_000) {
      const to = Math.min(rows, from + 25_000) - 1;
      await execute(
        `insert into outbox_message (id, type, payload, headers, aggregate_type, aggregate_id, occurred_at, attempts)
         select r.id, 'bench.something-happened.v1', jsonb_set(?::jsonb, '{aggregateId}', to_jsonb(r.agg)),
                jsonb_build_object('messageId', r.id, 'correlationId', r.id, 'occurredAt', now()),
                'BenchAggregate', r.agg, now(), 0
         from (select (lpad(to_hex(?::bigint + g / 4096), 12, '0') || '7' || lpad(to_hex(g % 4096), 3, '0')
                       || '8' || substr(md5(random()::text), 1, 15))::uuid as id,
                      gen_random_uuid()::text as agg
               from generate_series(?::int, ?::int) g) r`,
        [payload, baseMs, from, to],
      );
    }
    // A real backlog builds up over minutes and is analysed meanwhile; give the planner the same statistics.
    await execute('analyze outbox_message');
  });
}
