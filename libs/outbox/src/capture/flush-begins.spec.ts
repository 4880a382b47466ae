import { describe, expect, it } from '@jest/globals';
import type { MikroORM, Transaction } from '@mikro-orm/core';
import { FlushBegins } from './flush-begins.js';

/** A `pg` client that records what reaches it and answers every statement at once. */
function fakeClient() {
  const sent: string[] = [];
  const client = {
    sent,
    query: (text: unknown) => {
      sent.push(String(text));
      return Promise.resolve({ command: 'OK', rows: [] });
    },
    once: () => client,
  };
  return client;
}

/** FlushBegins on a pool of one client; `claim` runs the claim on that client, as a flush's transaction would. */
async function started() {
  const client = fakeClient();
  const pool = { on: () => pool, off: () => pool, _clients: [client] };
  const orm = { em: { getConnection: () => ({ getNativeClient: async () => pool }) } } as unknown as MikroORM;
  const begins = new FlushBegins(orm);
  await begins.start();
  const transaction = {
    executeQuery: (query: { sql: string }) => (client as { query(text: string): Promise<unknown> }).query(query.sql),
  } as unknown as Transaction;
  const query = (text: string) => (client as { query(text: string): Promise<unknown> }).query(text);
  return { begins, client, query, claim: () => begins.claim(transaction) };
}

describe('FlushBegins: which BEGIN is a flush’s', () => {
  it('holds the expected BEGIN and sends it with the first statement once claimed', async () => {
    const { begins, client, query, claim } = await started();
    expect(begins.expect()).toBe(true);
    await query('begin');
    await claim();
    await query('insert into t values (1)');
    expect(client.sent).toEqual(['begin;\ninsert into t values (1)']);
  });

  it('a BEGIN held for the place of a flush whose own BEGIN went out travels with its own first statement', async () => {
    const { begins, client, query } = await started();
    begins.expect();
    await query('begin');
    await query('insert into t values (2)');
    expect(client.sent).toEqual(['begin;\ninsert into t values (2)']);
  });

  it('a claim after its held BEGIN already went out (with a session setting) keeps the other places', async () => {
    const { begins, client, query, claim } = await started();
    begins.expect();
    begins.expect();
    await query('begin');
    await query("select set_config('app.tenant', '7', true)");
    await claim();
    await query('commit');
    await query('begin');
    await query('insert into t values (3)');
    expect(client.sent).toEqual([
      "begin;\nselect set_config('app.tenant', '7', true)",
      'commit',
      'begin;\ninsert into t values (3)',
    ]);
  });

  it('gives the place back when a claim finds its BEGIN already sent, so a later BEGIN is not held', async () => {
    const { begins, client, query } = await started();
    begins.expect();
    // An outer hook held the BEGIN itself and sent it with the claim.
    await query('begin;\n/* nest-outbox: flush with rows */');
    await query('commit');
    client.sent.length = 0;
    const next = query('begin');
    expect(client.sent).toEqual(['begin']);
    await next;
  });
});
