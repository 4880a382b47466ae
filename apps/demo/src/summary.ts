import type { ServiceFigures } from './service.figures.js';

export interface DemoOutcome {
  orders: number;
  billingProcesses: number;
  elapsed: number;
  deadLetters: number;
  figures: { orders: ServiceFigures; billing: ServiceFigures };
}

/** What every service must show after `n` orders placed and paid, each effect exactly once. */
function expected(n: number) {
  return {
    orders: {
      handled: {
        AwardLoyaltyPoints: n,
        OrderSummaryProjector: 2 * n,
        RecordInvoice: 2 * n,
        SendOrderConfirmation: n,
        SendPointsStatement: n,
      },
      effects: {
        'summaries paid': n,
        'order confirmations': n,
        'points statements': n,
        'invoices recorded settled': n,
      },
    },
    billing: {
      handled: { InvoiceLifecycle: 2 * n },
      effects: { 'invoices settled': n, 'invoices not settled': 0 },
    },
  };
}

/** Prints the figures per service and returns the exit code: 0 when every effect happened exactly once. */
export function printSummary(outcome: DemoOutcome): number {
  const want = expected(outcome.orders);
  const lines = [
    `nest-outbox demo: ${outcome.orders} orders placed and paid over HTTP; orders ×1 and billing ×${outcome.billingProcesses} as OS processes, each service with its own database`,
  ];
  let ok = outcome.deadLetters === 0;
  for (const service of ['orders', 'billing'] as const) {
    const figures = outcome.figures[service];
    const handled = Object.fromEntries(figures.handled.map((row) => [row.handler, row.count]));
    const serviceOk =
      JSON.stringify(sorted(handled)) === JSON.stringify(sorted(want[service].handled)) &&
      JSON.stringify(sorted(figures.effects)) === JSON.stringify(sorted(want[service].effects)) &&
      figures.unrouted === 0;
    ok &&= serviceOk;
    lines.push(`  ${service}`);
    for (const row of figures.written) lines.push(`    wrote    ${pad(row.count)} ${row.type} → ${row.routedTo}`);
    for (const row of figures.handled) lines.push(`    handled  ${pad(row.count)} by ${row.handler}`);
    for (const [name, count] of Object.entries(figures.effects)) lines.push(`    effects  ${pad(count)} ${name}`);
    lines.push(`    ${serviceOk ? 'each effect exactly once' : 'MISMATCH: see the figures above'}`);
  }
  const messages = [...outcome.figures.orders.written, ...outcome.figures.billing.written].reduce(
    (sum, row) => sum + row.count,
    0,
  );
  lines.push(
    `  dead letters ${outcome.deadLetters}; ${messages} messages in ${outcome.elapsed.toFixed(2)} s (${(messages / outcome.elapsed).toFixed(0)} messages/s)`,
  );
  lines.push(
    ok
      ? 'every message handled exactly once by every subscribed handler of every service'
      : 'MISMATCH: see the figures above',
  );
  console.log(lines.join('\n'));
  return ok ? 0 : 1;
}

function sorted(record: Record<string, number>): Array<[string, number]> {
  return Object.entries(record).sort(([a], [b]) => a.localeCompare(b));
}

function pad(value: number): string {
  return String(value).padStart(5);
}
