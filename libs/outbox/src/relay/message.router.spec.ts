import { describe, expect, it } from '@jest/globals';
import type { HandlerSubscription, RoutingTable, ServiceRoute } from '../routing/subscription.registry.js';
import { missesOrderedRoute, orderedRoutesOf, routeBatch } from './message.router.js';
import type { ClaimedRow } from './relay.store.js';

const PLACED = 'orders.order-placed.v1';
const SHIPPED = 'orders.order-shipped.v1';
const IDS = ['0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01', '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a02'];
const headers = { messageId: IDS[0], correlationId: IDS[0], occurredAt: '2026-11-22T10:00:00.000Z' };

function row(fields: Partial<ClaimedRow> = {}): ClaimedRow {
  return {
    id: IDS[0],
    type: PLACED,
    payload: '{"orderId":"o1"}',
    headers: JSON.stringify(headers),
    aggregate_type: 'Order',
    aggregate_id: 'o1',
    key: 'Order:o1',
    seq: '1',
    routes: {},
    ...fields,
  };
}

const handler = (name: string, ordered = false): HandlerSubscription => ({ name, ordered, since: 0 });
const route = (service: string, ...handlers: HandlerSubscription[]): ServiceRoute => ({ service, handlers });

/** billing has an ordered and an unordered handler for PLACED; orders one unordered handler; nobody takes SHIPPED. */
const table: RoutingTable = new Map([
  [PLACED, [route('billing', handler('Invoicer', true), handler('Mailer')), route('orders', handler('Projector'))]],
]);

describe('routeBatch', () => {
  it("routes a row to every subscribed service, stamped with that service's handlers, the source and the key", () => {
    const routed = routeBatch([row()], table, 'orders');

    expect([...routed.jobsByService.keys()]).toEqual(['billing', 'orders']);
    expect(routed.jobsByService.get('orders')).toEqual([
      {
        id: IDS[0],
        data: {
          type: PLACED,
          payload: '{"orderId":"o1"}',
          headers,
          aggregateType: 'Order',
          aggregateId: 'o1',
          key: 'Order:o1',
          source: 'orders',
          handlers: ['Projector'],
        },
      },
    ]);
    expect(routed.jobsByService.get('billing')?.[0].data.handlers).toEqual(['Invoicer', 'Mailer']);
    expect(routed.routedTo.get(IDS[0])).toEqual(['billing', 'orders']);
  });

  it('passes the payload text through unparsed and the headers parsed', () => {
    const payload = '{"orderId":"o1",  "total":1.50}';
    const routed = routeBatch([row({ payload })], table, 'orders');
    const jobs = [...routed.jobsByService.values()].flat();

    expect(jobs.map((job) => job.data.payload)).toEqual([payload, payload]);
    expect(jobs[0].data.headers).toEqual(headers);
  });

  it('gives an order only to ordered handlers that have a place, and only in their own service', () => {
    const placed = row({ routes: { 'billing/Invoicer': 7, 'orders/Projector': 3, 'billing/Mailer': 9 } });
    const routed = routeBatch([placed], table, 'orders');

    // Projector and Mailer are not ordered: a place the claim gave them (an older table) is not stamped.
    expect(routed.jobsByService.get('billing')?.[0].data.order).toEqual({ Invoicer: 7 });
    expect(routed.jobsByService.get('orders')?.[0].data).not.toHaveProperty('order');
  });

  it('stamps no order on an ordered handler when the row has no place for it (an unkeyed row)', () => {
    const routed = routeBatch([row({ key: null, routes: {} })], table, 'orders');

    expect(routed.jobsByService.get('billing')?.[0].data).not.toHaveProperty('order');
    expect(routed.jobsByService.get('billing')?.[0].data.key).toBeNull();
  });

  it('routes a row of a type nobody subscribes to nowhere, and says so with an empty routedTo', () => {
    const shipped = row({ id: IDS[1], type: SHIPPED, headers: 'not even JSON' });
    const routed = routeBatch([row(), shipped], table, 'orders');

    expect(routed.routedTo.get(IDS[1])).toEqual([]);
    expect(
      [...routed.jobsByService.values()].flat().every((job) => job.id === IDS[0] && job.data.type === PLACED),
    ).toBe(true);
  });

  it('keeps the batch order within each service', () => {
    const rows = [row({ id: IDS[0], seq: '1' }), row({ id: IDS[1], seq: '2' })];
    const routed = routeBatch(rows, table, 'orders');

    expect(routed.jobsByService.get('billing')?.map((job) => job.id)).toEqual(IDS);
    expect(routed.jobsByService.get('orders')?.map((job) => job.id)).toEqual(IDS);
  });
});

describe('orderedRoutesOf', () => {
  it('lists the ordered routes (service/handler) per type, sorted, and leaves out types with none', () => {
    const mixed: RoutingTable = new Map([
      [PLACED, [route('orders', handler('Zed', true)), route('billing', handler('Invoicer', true), handler('Mailer'))]],
      [SHIPPED, [route('billing', handler('Mailer'))]],
    ]);

    expect(orderedRoutesOf(mixed)).toEqual({ [PLACED]: ['billing/Invoicer', 'orders/Zed'] });
  });

  it('is undefined when no handler is ordered, so the claim takes its plain form', () => {
    expect(orderedRoutesOf(new Map([[PLACED, [route('orders', handler('Projector'))]]]))).toBeUndefined();
    expect(orderedRoutesOf(new Map())).toBeUndefined();
  });
});

describe('missesOrderedRoute', () => {
  it('is true when a keyed row lacks a place for an ordered route of the current table', () => {
    expect(missesOrderedRoute([row({ routes: {} })], table)).toBe(true);
    expect(missesOrderedRoute([row({ routes: { 'orders/Invoicer': 1 } })], table)).toBe(true);
  });

  it('is false when every keyed row has its places, for unkeyed rows, and for types without ordered routes', () => {
    expect(missesOrderedRoute([row({ routes: { 'billing/Invoicer': 1 } })], table)).toBe(false);
    expect(missesOrderedRoute([row({ key: null })], table)).toBe(false);
    expect(missesOrderedRoute([row({ type: SHIPPED })], table)).toBe(false);
  });

  it('looks at every row of the batch', () => {
    const rows = [row({ routes: { 'billing/Invoicer': 1 } }), row({ id: IDS[1], routes: {} })];
    expect(missesOrderedRoute(rows, table)).toBe(true);
  });
});
