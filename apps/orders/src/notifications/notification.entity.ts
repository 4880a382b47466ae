import { Entity, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';

/** The example's side effect: a log of notifications "sent" to customers. */
@Entity({ tableName: 'notification_log' })
export class Notification {
  @PrimaryKey({ type: 'integer', autoincrement: true })
  id!: number;

  @Property({ type: 'text' })
  customerId!: string;

  @Property({ type: 'text' })
  kind!: string;

  @Property({ type: 'text' })
  text!: string;

  @Property({ type: 'uuid' })
  messageId!: string;
}
