import { Migration } from '@mikro-orm/migrations';

export class CreateBillingTables extends Migration {
  override up(): void {
    this.addSql(`create table if not exists "invoice" (
      "id" uuid primary key, "order_id" uuid not null unique, "customer_id" text not null,
      "amount_cents" int not null, "status" text not null)`);
  }

  override down(): void {
    this.addSql('drop table if exists "invoice"');
  }
}
