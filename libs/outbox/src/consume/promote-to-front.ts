import type { OutboxQueues } from '../routing/outbox-queues.js';

/** Moves a job id from anywhere in a wait list to the end workers take from; 0 when it is not there (taken already). */
const TO_FRONT = `
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[1], ARGV[1])
  return 1
end
return 0`;

/**
 * Moves a parked message whose turn has come from the delayed set to the front of this service's
 * queue. BullMQ's `promote` pushes it at the back of the wait list (workers take from the other
 * end): behind a backlog it would wait for all of it, and its key's next messages, taken
 * meanwhile, would park again — a key would move one message per pass over the queue.
 */
export async function promoteToFront(queues: OutboxQueues, messageId: string): Promise<void> {
  const queue = queues.own();
  const job = await queue.getJob(messageId);
  if (!job || !(await job.isDelayed())) return;
  await job.promote();
  await (await queues.readyClient()).eval(TO_FRONT, 1, queue.toKey('wait'), messageId);
}
