/**
 * The example's event contracts, shared by the services that publish and consume them. Each
 * class carries its stable type name (`@OutboxEvent`); change an event's shape by adding a
 * version, never by renaming it.
 */
export { OrderPaid, OrderPlaced } from './orders.events.js';
export { InvoiceIssued, InvoiceSettled } from './billing.events.js';
