import { UnrecoverableError } from 'bullmq';

/** Why the worker gives up on a message at once, without spending its remaining attempts. */
export type GiveUpReason = 'unreadable' | 'handlers-missing' | 'still-failing';

/**
 * Fails a job for good (BullMQ does not retry an `UnrecoverableError`), saying why, so the
 * dead-letter log line and metric can name the reason without parsing the message.
 */
export class GiveUp extends UnrecoverableError {
  constructor(
    readonly reason: GiveUpReason,
    message: string,
  ) {
    super(message);
  }
}
