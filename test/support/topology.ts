import { RequestContext } from '@mikro-orm/postgresql';
import { OutboxService } from 'nest-outbox';
import { freshDatabase } from './database.js';
import { prepareFixtureDatabase, type FixtureApp } from './fixture.js';

/**
 * A service's own database, as each service of a topology has one: the outbox tables (its inbox
 * lives with its data) and the fixture's `effect` table its handlers write to.
 */
export async function serviceDatabase(name: string): Promise<string> {
  const url = await freshDatabase(name);
  await prepareFixtureDatabase(url);
  return url;
}

/** Writes `events` through the app's outbox in one flush, as application code would; returns their message ids. */
export async function publish(app: FixtureApp, ...events: object[]): Promise<string[]> {
  const outbox = app.app.get(OutboxService);
  return RequestContext.create(app.orm.em, async () => {
    const ids = events.map((event) => outbox.publish(event));
    await app.orm.em.flush();
    return ids;
  });
}

/** `effect` rows of an app's database as `handler → message ids`, sorted, for whole-table comparisons. */
export async function effectsOf(app: FixtureApp): Promise<Record<string, string[]>> {
  const rows = await app.sql('select handler, message_id from effect order by handler, message_id');
  const effects: Record<string, string[]> = {};
  for (const row of rows) (effects[row.handler] ??= []).push(row.message_id);
  return effects;
}

/** Inbox marks of an app's database as `handler → message ids`, sorted. */
export async function inboxOf(app: FixtureApp): Promise<Record<string, string[]>> {
  const rows = await app.sql('select handler, message_id from inbox_message order by handler, message_id');
  const marks: Record<string, string[]> = {};
  for (const row of rows) (marks[row.handler] ??= []).push(row.message_id);
  return marks;
}

/** Sorted copy, to compare id lists whatever order they were produced in. */
export function sorted(ids: readonly string[]): string[] {
  return [...ids].sort();
}
