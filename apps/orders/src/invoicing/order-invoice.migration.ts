import { Migration } from '@mikro-orm/migrations';

/** The invoice billing issued for each order, as orders learns it from billing's events. */
export class CreateOrderInvoiceTable extends Migration {
  override up(): void {
    this.addSql(`create table if not exists "order_invoice" (
      "order_id" uuid primary key, "invoice_id" uuid not null, "amount_cents" int not null,
      "status" text not null)`);
  }

  override down(): void {
    this.addSql('drop table if exists "order_invoice"');
  }
}
