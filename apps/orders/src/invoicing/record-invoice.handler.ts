import { InvoiceIssued, InvoiceSettled } from '@nest-outbox/example-contracts';
import { EntityManager } from '@mikro-orm/postgresql';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { OutboxOrdered } from 'nest-outbox';

/**
 * Orders as a consumer of billing: keeps the invoice of each order. Ordered, so an invoice is
 * always issued before it is settled here, whatever order the two messages arrive in.
 */
@EventsHandler(InvoiceIssued, InvoiceSettled)
@OutboxOrdered()
export class RecordInvoice implements IEventHandler<InvoiceIssued | InvoiceSettled> {
  constructor(private readonly em: EntityManager) {}

  async handle(event: InvoiceIssued | InvoiceSettled): Promise<void> {
    if (event instanceof InvoiceIssued) {
      await this.em.execute(
        `insert into order_invoice (order_id, invoice_id, amount_cents, status) values (?, ?, ?, 'issued')`,
        [event.orderId, event.invoiceId, event.amountCents],
      );
      return;
    }
    const result = await this.em.execute(
      `update order_invoice set status = 'settled' where order_id = ? and status = 'issued'`,
      [event.orderId],
    );
    // Ordered handling makes this impossible; saying so loudly is what the example is for.
    if ((result as { affectedRows?: number }).affectedRows === 0)
      throw new Error(`Invoice of order ${event.orderId} settled before issued`);
  }
}
