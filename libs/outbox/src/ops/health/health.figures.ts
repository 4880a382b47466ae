/** What the outbox health indicator reports under its key (a type, not an interface: terminus takes it as data). */
export type OutboxHealthDetails = {
  /** This service's name. */
  service: string;
  /** This process's relay: `lastActiveMsAgo` is `null` before its first drain, or when it is off here. */
  relay: { enabled: boolean; lastActiveMsAgo: number | null };
  /** Outbox rows not yet handed to BullMQ, and those of them due now; `null` when the table could not be read. */
  pending: number | null;
  due: number | null;
  /** Age of the oldest due row, in ms. */
  oldestDueMs: number | null;
  stuck: number | null;
  expiredLeases: number | null;
  oldestExpiredLeaseMs: number | null;
  /** Dead letters in this service's queue; `null` when Redis could not be read. */
  deadLetters: number | null;
  /** Ordered keys held back (counted up to 1000), and how long the oldest has been. */
  heldKeys: number | null;
  oldestHeldMs: number | null;
  /** Messages waiting for handlers no live process of this service has (`handlers` as `type/handler`). */
  waitingForHandlers: { handlers: string[]; messages: number; oldestMs: number } | null;
  /** Why the status is not `up`; empty when it is. */
  problems: string[];
};

export type HealthStatus = 'up' | 'degraded' | 'down';
