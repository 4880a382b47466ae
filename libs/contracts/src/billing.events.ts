import { OutboxEvent } from 'nest-outbox';

/** Events the billing service publishes. */
@OutboxEvent('billing.invoice-issued.v1')
export class InvoiceIssued {
  constructor(
    readonly invoiceId: string,
    readonly orderId: string,
    readonly amountCents: number,
  ) {}
}

@OutboxEvent('billing.invoice-settled.v1')
export class InvoiceSettled {
  constructor(
    readonly invoiceId: string,
    readonly orderId: string,
  ) {}
}
