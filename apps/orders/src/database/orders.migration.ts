import { Migration } from '@mikro-orm/migrations';

export class CreateOrdersTables extends Migration {
  override up(): void {
    this.addSql(`create table if not exists "orders" (
      "id" uuid primary key, "customer_id" text not null, "total_cents" int not null,
      "status" text not null, "placed_at" timestamptz not null, "paid_at" timestamptz null)`);
    this.addSql(`create table if not exists "order_summary" (
      "order_id" uuid primary key, "customer_id" text not null, "total_cents" int not null,
      "status" text not null, "version" int not null)`);
    this.addSql(`create table if not exists "notification_log" (
      "id" serial primary key, "customer_id" text not null, "kind" text not null,
      "text" text not null, "message_id" uuid not null)`);
    this.addSql(`create table if not exists "loyalty_account" ("customer_id" text primary key, "points" int not null)`);
  }

  override down(): void {
    this.addSql('drop table if exists "loyalty_account", "notification_log", "order_summary", "orders"');
  }
}
