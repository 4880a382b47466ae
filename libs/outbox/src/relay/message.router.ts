import type { OutboxHeaders } from '../message/message-headers.js';
import type { OutboxJobData } from '../routing/job-data.js';
import type { RetryPolicy } from '../routing/retry-policy.js';
import type { RoutingTable } from '../routing/subscription.registry.js';
import type { ClaimedRow, OrderedRoutes } from './relay.store.js';

/** What routing reads of a row: a claimed row without its commit order. */
export type RoutableRow = Omit<ClaimedRow, 'seq'>;

/** One batch, routed: the jobs for each subscribed service, and where each row went. */
export interface RoutedBatch {
  jobsByService: Map<string, Array<{ id: string; data: OutboxJobData }>>;
  /** Each service's own retry policy, where it published one. */
  retryByService: Map<string, RetryPolicy>;
  /** Row id → services it was delivered to (empty: no subscriber; the row is still marked, and counted). */
  routedTo: Map<string, string[]>;
}

/** The route name of an ordered handler: its key positions are counted per route and key. */
export function routeName(service: string, handler: string): string {
  return `${service}/${handler}`;
}

/** The ordered routes per type in a routing table: what a claim must give key positions for. */
export function orderedRoutesOf(table: RoutingTable): OrderedRoutes | undefined {
  const ordered: Record<string, string[]> = {};
  for (const [type, services] of table) {
    const routes = services.flatMap(({ service, handlers }) =>
      handlers.filter((handler) => handler.ordered).map((handler) => routeName(service, handler.name)),
    );
    if (routes.length > 0) ordered[type] = routes.sort();
  }
  return Object.keys(ordered).length > 0 ? ordered : undefined;
}

/**
 * True when a keyed row lacks a position for an ordered route the current table has: the claim
 * used an older table (a handler became ordered, or a new one registered, between the claim and
 * now). Such a batch is handed back and claimed again, so positions are always given in a claim.
 */
export function missesOrderedRoute(rows: readonly RoutableRow[], table: RoutingTable): boolean {
  return rows.some(
    (row) =>
      row.key !== null &&
      (table.get(row.type) ?? []).some(({ service, handlers }) =>
        handlers.some((handler) => handler.ordered && row.routes[routeName(service, handler.name)] === undefined),
      ),
  );
}

/**
 * Routes each row to the queue of every service subscribed to its type, stamping each job with the
 * handlers that service registered for the type (each must run once, whichever process takes the
 * job) and, for ordered handlers, the message's place in its key's order.
 */
export function routeBatch(rows: readonly RoutableRow[], table: RoutingTable, source: string): RoutedBatch {
  const jobsByService = new Map<string, Array<{ id: string; data: OutboxJobData }>>();
  const routedTo = new Map<string, string[]>();
  const retryByService = new Map<string, RetryPolicy>();
  for (const row of rows) {
    const services = table.get(row.type) ?? [];
    routedTo.set(
      row.id,
      services.map((route) => route.service),
    );
    if (services.length === 0) continue;
    const headers = JSON.parse(row.headers) as OutboxHeaders;
    for (const { service, handlers, retry } of services) {
      if (retry) retryByService.set(service, retry);
      const order: Record<string, number> = {};
      for (const handler of handlers) {
        const place = row.routes[routeName(service, handler.name)];
        if (handler.ordered && place !== undefined) order[handler.name] = place;
      }
      const data: OutboxJobData = {
        type: row.type,
        payload: row.payload,
        headers,
        aggregateType: row.aggregate_type,
        aggregateId: row.aggregate_id,
        key: row.key,
        source,
        handlers: handlers.map((handler) => handler.name),
        ...(Object.keys(order).length > 0 ? { order } : {}),
      };
      const jobs = jobsByService.get(service) ?? [];
      jobs.push({ id: row.id, data });
      jobsByService.set(service, jobs);
    }
  }
  return { jobsByService, retryByService, routedTo };
}
