import { afterEach, describe, expect, it } from '@jest/globals';
import { outboxEntities } from './outbox.entities.js';
import { outboxMigrations } from './outbox.migration.js';
import { outboxSchemaSql } from './outbox.schema.js';

describe('schema helpers read table names only', () => {
  const saved = process.env.REDIS_URL;
  afterEach(() => {
    if (saved === undefined) delete process.env.REDIS_URL;
    else process.env.REDIS_URL = saved;
  });

  it('work with a REDIS_URL the module itself would refuse (no redis:// scheme)', () => {
    process.env.REDIS_URL = '127.0.0.1:6379';
    expect(outboxEntities().map((schema) => schema.meta.tableName)).toEqual(['outbox_message', 'inbox_message']);
    expect(outboxSchemaSql().join('\n')).toContain('create table if not exists "outbox_message"');
    expect(outboxMigrations().map((migration) => migration.name)).toEqual([
      'Migration20261122000000_nest_outbox',
      'Migration20261123000000_nest_outbox_claim_owner',
      'Migration20261123000100_nest_outbox_routing',
      'Migration20261123000400_nest_outbox_json_text',
      'Migration20261124000000_nest_outbox_fillfactor',
    ]);
  });

  it('still refuse a bad table name', () => {
    expect(() => outboxSchemaSql({ outbox: 'bad name' })).toThrow(/"tables\.outbox"/);
  });
});
