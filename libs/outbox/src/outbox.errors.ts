/** Base class of every error nest-outbox throws on purpose, so callers can tell them from driver errors. */
export class OutboxError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An option passed to `OutboxModule.forRoot()` / `forRootAsync()` is out of range; thrown at boot. */
export class OutboxOptionsError extends OutboxError {}

/** The application is wired in a way the outbox cannot work with (missing entity, wrong table). */
export class OutboxSetupError extends OutboxError {}

/**
 * An event cannot become an outbox row (not serialisable, too large, bad headers).
 * Thrown from the flush or from `publish()`, before anything is written.
 */
export class OutboxPayloadError extends OutboxError {}

/** A stored message cannot be turned back into an event (unknown type, unreadable payload). Never retried. */
export class OutboxMessageError extends OutboxError {}

/** A handler threw while consuming a message; names the handler, keeps the original error as `cause`. */
export class OutboxHandlerError extends OutboxError {
  constructor(
    readonly handler: string,
    readonly messageId: string,
    readonly eventType: string,
    cause: unknown,
  ) {
    super(
      `Handler ${handler} failed on ${eventType} (message ${messageId}): ${describe(cause)}`,
      { cause },
    );
  }
}

export function describe(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
