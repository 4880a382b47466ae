import type { BenchNode } from '../nodes/node-process.js';

/** Role → kind ("pg insert outbox_message", "redis evalsha moveToFinished", ...) → count. */
export type Calls = Record<string, Record<string, number>>;

/** What each role's processes sent so far (summed over a role's processes). */
export async function readCalls(roles: Record<string, BenchNode[]>): Promise<Calls> {
  const out: Calls = {};
  for (const [role, nodes] of Object.entries(roles)) {
    out[role] = {};
    for (const node of nodes)
      for (const [kind, n] of Object.entries(await node.call('calls'))) out[role][kind] = (out[role][kind] ?? 0) + n;
  }
  return out;
}

/** Calls per event between two readings, kinds that did not occur left out, busiest first. */
export function callsPerEvent(start: Calls, end: Calls, events: number): Calls {
  const out: Calls = {};
  for (const [role, kinds] of Object.entries(end)) {
    const deltas = Object.entries(kinds)
      .map(([kind, n]): [string, number] => [kind, (n - (start[role]?.[kind] ?? 0)) / events])
      .filter(([, perEvent]) => perEvent > 0)
      .sort((a, b) => b[1] - a[1]);
    out[role] = Object.fromEntries(deltas);
  }
  return out;
}

/** "pg 3.0 (begin 1.0, insert inbox_message 1.0, commit 1.0); redis 2.1 (evalsha moveToFinished 1.0, …)". */
export function describeCalls(kinds: Record<string, number>, top = 5): string {
  const parts: string[] = [];
  for (const system of ['pg', 'redis']) {
    const own = Object.entries(kinds).filter(([kind]) => kind.startsWith(`${system} `));
    if (own.length === 0) continue;
    const total = own.reduce((sum, [, n]) => sum + n, 0);
    const detail = own
      .slice(0, top)
      .map(([kind, n]) => `${kind.slice(system.length + 1)} ${n.toFixed(2)}`)
      .join(', ');
    parts.push(`${system} ${total.toFixed(2)} (${detail}${own.length > top ? ', …' : ''})`);
  }
  return parts.join('; ') || 'none';
}
