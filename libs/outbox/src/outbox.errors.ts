import { versionAhead } from './outbox.messages.js';
import { errorText } from './util/error-text.js';

/** Base class of every error nest-outbox throws on purpose, so callers can tell them from driver errors. */
export class OutboxError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An option passed to `OutboxModule.forRoot()` / `forRootAsync()` is out of range; thrown at boot. */
export class OutboxOptionsError extends OutboxError {}

/**
 * The application is wired in a way the outbox cannot work with (missing entity or table, two
 * handlers with one name, an unsupported @nestjs/cqrs); thrown at boot or at decoration time.
 */
export class OutboxSetupError extends OutboxError {}

/**
 * An event cannot become an outbox row (not serialisable, too large, bad headers or delay).
 * Thrown from the flush or from `publish()`, before anything is written.
 */
export class OutboxPayloadError extends OutboxError {}

/** A stored message cannot be turned back into an event (unknown type, unreadable payload). Never retried. */
export class OutboxMessageError extends OutboxError {}

/**
 * A message was written at a version of its event newer than this process's class knows: a newer
 * build wrote it during a rolling deploy. Not a bad message: another process (or this one, once
 * deployed) can read it, so it is handed back rather than dead-lettered.
 */
export class OutboxVersionAheadError extends OutboxError {
  constructor(
    readonly type: string,
    readonly storedVersion: number,
    readonly knownVersion: number,
  ) {
    super(versionAhead(type, storedVersion, knownVersion));
  }
}

/** A handler threw while consuming a message; names the handler, keeps the original error as `cause`. */
export class OutboxHandlerError extends OutboxError {
  constructor(
    readonly handler: string,
    readonly messageId: string,
    readonly eventType: string,
    cause: unknown,
  ) {
    super(`Handler ${handler} failed on ${eventType} (message ${messageId}): ${errorText(cause)}`, { cause });
  }
}

/**
 * Handlers failed on one message; each ran in its own transaction, whatever the others did. With
 * one handler the message is that handler's error, as `OutboxHandlerError` words it.
 */
export class OutboxHandlersError extends OutboxError {
  constructor(
    readonly messageId: string,
    readonly eventType: string,
    /** Handler name → what it threw. */
    readonly failures: ReadonlyMap<string, unknown>,
  ) {
    const entries = [...failures];
    super(
      entries.length === 1
        ? `Handler ${entries[0][0]} failed on ${eventType} (message ${messageId}): ${errorText(entries[0][1])}`
        : `${entries.length} handlers failed on ${eventType} (message ${messageId}): ` +
            entries.map(([name, error]) => `${name}: ${errorText(error)}`).join('; '),
    );
  }
}

/** An admin call was given arguments it cannot act on (a bad filter, an unknown id). */
export class OutboxArgumentError extends OutboxError {}

/** `retry` or `discard` was given an id that is not in the failed set (unknown, already retried, or not failed). */
export class OutboxDeadLetterNotFoundError extends OutboxArgumentError {
  constructor(
    readonly messageId: string,
    readonly state: string,
  ) {
    super(
      state === 'unknown'
        ? `No dead letter has id ${JSON.stringify(messageId)}: the queue holds no such message. ` +
            'List dead letters with OutboxDeadLetters.list().'
        : `No dead letter has id ${JSON.stringify(messageId)}: the message is ${state}, not failed.`,
    );
  }
}

/** The outbox is closed (the application is shutting down) or was never opened in this process. */
export class OutboxClosedError extends OutboxError {}

/** A Redis call did not answer in time; the caller backs off and tries again. */
export class OutboxTimeoutError extends OutboxError {}
