import { beforeAll, describe, expect, it } from '@jest/globals';
import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { Injectable, type DynamicModule } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  OutboxModule,
  OutboxOptionsError,
  OutboxSetupError,
  outboxEntities,
  type OutboxModuleOptions,
  type OutboxOptionsFactory,
} from 'nest-outbox';
import type { ResolvedOutboxOptions } from '../libs/outbox/src/options/outbox-options.interface.js';
import { OUTBOX_OPTIONS } from '../libs/outbox/src/outbox.tokens.js';
import { freshDatabase } from './support/database.js';
import { Account, prepareFixtureDatabase } from './support/fixture.js';

function orm(url: string, entities: unknown[] = [Account, ...outboxEntities()]) {
  return MikroOrmModule.forRoot({
    driver: PostgreSqlDriver,
    clientUrl: url,
    entities: entities as never,
    metadataProvider: ReflectMetadataProvider,
  });
}

async function boot(url: string, outbox: DynamicModule, entities?: unknown[]) {
  const moduleRef = await Test.createTestingModule({ imports: [orm(url, entities), outbox] }).compile();
  moduleRef.useLogger(false);
  try {
    await moduleRef.init();
    return moduleRef.get<ResolvedOutboxOptions>(OUTBOX_OPTIONS);
  } finally {
    await moduleRef.close();
  }
}

const quiet: OutboxModuleOptions = {
  service: 'options',
  relay: { enabled: false },
  worker: { enabled: false },
  retention: { enabled: false },
};

@Injectable()
class OptionsFromClass implements OutboxOptionsFactory {
  createOutboxOptions(): OutboxModuleOptions {
    return { ...quiet, service: 'from-class', relay: { enabled: false, batchSize: 42 } };
  }
}

describe('options and set-up errors at boot', () => {
  let url: string;
  let bare: string;

  beforeAll(async () => {
    url = await freshDatabase('options');
    await prepareFixtureDatabase(url);
    bare = await freshDatabase('options_bare');
  });

  it('runs on Node 22', () => {
    expect(process.versions.node.split('.')[0]).toBe('22');
  });

  it('forRoot: an invalid option throws at the import line, naming the option and the range', () => {
    expect(() => OutboxModule.forRoot({ service: 'options', relay: { batchSize: 0 } })).toThrow(OutboxOptionsError);
    expect(() => OutboxModule.forRoot({ service: 'options', worker: { attempts: 1000 } })).toThrow(
      'Invalid nest-outbox option "worker.attempts": expected an integer from 1 to 100, got 1000.',
    );
  });

  it('forRootAsync (useFactory): an invalid option fails the boot, naming the option', async () => {
    const outbox = OutboxModule.forRootAsync({
      useFactory: async () => ({ ...quiet, tables: { inbox: 'inbox"; drop table account; --' } }),
    });
    await expect(boot(url, outbox)).rejects.toThrow(
      /Invalid nest-outbox option "tables\.inbox": expected a SQL identifier/,
    );
  });

  it('forRootAsync with useFactory + inject, and with useClass, resolves the options', async () => {
    const injected = OutboxModule.forRootAsync({
      imports: [
        { module: class ConfigModule {}, providers: [{ provide: 'QUEUE', useValue: 'injected' }], exports: ['QUEUE'] },
      ],
      inject: ['QUEUE'],
      useFactory: (service: never) => ({ ...quiet, service }),
    });
    expect((await boot(url, injected)).service).toBe('injected');
    const fromClass = await boot(url, OutboxModule.forRootAsync({ useClass: OptionsFromClass }));
    expect(fromClass).toMatchObject({ service: 'from-class', relay: { batchSize: 42 } });
  });

  it('forRootAsync without a factory says which fields it needs', () => {
    expect(() => OutboxModule.forRootAsync({})).toThrow(/needs one of useFactory, useClass or useExisting/);
  });

  it('entities missing from MikroORM: the boot names the fix', async () => {
    await expect(boot(url, OutboxModule.forRoot(quiet), [Account])).rejects.toThrow(OutboxSetupError);
    await expect(boot(url, OutboxModule.forRoot(quiet), [Account])).rejects.toThrow(/add `\.\.\.outboxEntities\(\)`/);
  });

  it('tables missing in the database: the boot says to run the migration', async () => {
    await expect(boot(bare, OutboxModule.forRoot(quiet))).rejects.toThrow(
      'Table(s) "outbox_message", "inbox_message" do not exist. Run the outbox migration',
    );
  });

  it('entities and module configured with different tables: the boot says to pass the same tables', async () => {
    await expect(boot(url, OutboxModule.forRoot({ ...quiet, tables: { outbox: 'events_out' } }))).rejects.toThrow(
      /pass the same `tables` to outboxEntities\(\) and OutboxModule/,
    );
  });
});
