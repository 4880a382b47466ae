/** One event waiting for (or done with) delivery: a row of `outbox_message`. */
export class OutboxMessage {
  /** UUID v7; also the BullMQ job id. */
  id!: string;
  /** Stable event type name (see `@OutboxEvent`). */
  type!: string;
  /** The event's JSON text. */
  payload!: string;
  /** JSON text of `OutboxHeaders`. */
  headers!: string;
  aggregateType!: string | null;
  aggregateId!: string | null;
  occurredAt!: Date;
  /** Not before this time; `null` means at once. */
  availableAt!: Date | null;
  /** How many times a relay claimed the row (a row written leased, `relay.dispatchOnCommit`, starts at 1). */
  attempts!: number;
  lockedUntil!: Date | null;
  lastError!: string | null;
  dispatchedAt!: Date | null;
  /** The relay holding the lease (`locked_until`); set by a relay, or by capture with `relay.dispatchOnCommit`. */
  claimedBy?: string | null;
  /**
   * Ordering key: `<aggregate type>:<id>` for an aggregate's events, or the key given to
   * `publish()`; messages of one key are handled in commit order by ordered handlers.
   */
  key!: string | null;
}

/** A handler that finished a message: a row of `inbox_message`. Its presence makes redelivery a no-op. */
export class InboxMessage {
  messageId!: string;
  /** The handler class name. */
  handler!: string;
  processedAt!: Date;
}
