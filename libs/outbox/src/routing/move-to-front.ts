import type { Job } from 'bullmq';

/**
 * Puts a job whose turn has come — a parked message whose predecessor on its key was just handled
 * — at the head of its queue, where the next free worker takes it.
 *
 * BullMQ's `promote()` moves a delayed job to the *tail* of the wait list. Under load a promoted
 * message then waits behind the whole backlog, and a key whose later messages were all parked
 * moves on one backlog per message: held keys settled very slowly. `changePriority({ lifo: true })`
 * moves a waiting job to the head (a parked message whose own timer already put it back in line
 * is moved up too). Two public calls rather than a script of our own on BullMQ's keys; should a
 * worker take the job between them, the second finds nothing to move. A job that is active,
 * finished or gone is left as it is.
 */
export async function moveToFront(job: Job): Promise<void> {
  const state = await job.getState();
  if (state === 'delayed') {
    // Promoted by someone else meanwhile: then it is waiting (moved below) or already taken.
    await job.promote().catch(() => undefined);
  } else if (state !== 'waiting') return;
  await job.changePriority({ priority: 0, lifo: true });
}
