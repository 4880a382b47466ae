import { Entity, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';

/** The query side: one row per order, kept up to date by OrderSummaryProjector. */
@Entity({ tableName: 'order_summary' })
export class OrderSummary {
  @PrimaryKey({ type: 'uuid' })
  orderId!: string;

  @Property({ type: 'text' })
  customerId!: string;

  @Property({ type: 'integer' })
  totalCents!: number;

  @Property({ type: 'text' })
  status!: string;

  @Property({ type: 'integer' })
  version!: number;
}
