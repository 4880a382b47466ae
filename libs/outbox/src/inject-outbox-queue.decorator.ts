import { Inject } from '@nestjs/common';
import { OUTBOX_QUEUE } from './outbox.tokens.js';

/**
 * Injects the outbox's BullMQ `Queue` (as `@InjectQueue()` does for @nestjs/bullmq): connected on
 * first use and closed by the outbox at shutdown, so do not close it yourself.
 *
 * @example constructor(@InjectOutboxQueue() private readonly queue: Queue<OutboxJobData>) {}
 */
export function InjectOutboxQueue(): ParameterDecorator & PropertyDecorator {
  return Inject(OUTBOX_QUEUE);
}
