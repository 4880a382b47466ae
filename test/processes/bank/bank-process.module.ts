import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { Module, type DynamicModule, type Type } from '@nestjs/common';
import { OutboxModule, outboxEntities, type OutboxModuleOptions } from 'nest-outbox';
import { envNumber } from '../ipc.js';

/** One process of the bank world: MikroORM on its service's own database, the outbox, its handlers. */
@Module({})
export class BankProcessModule {
  static register(options: {
    entities: Type[];
    outbox: Omit<OutboxModuleOptions, 'redis' | 'prefix'>;
    handlers?: Type[];
  }): DynamicModule {
    return {
      module: BankProcessModule,
      imports: [
        MikroOrmModule.forRoot({
          driver: PostgreSqlDriver,
          clientUrl: requiredEnv('DATABASE_URL'),
          entities: [...options.entities, ...outboxEntities()],
          metadataProvider: ReflectMetadataProvider,
          pool: { max: 10 },
          registerRequestContext: false,
        }),
        OutboxModule.forRoot({
          ...options.outbox,
          redis: requiredEnv('REDIS_URL'),
          prefix: requiredEnv('OUTBOX_PREFIX'),
          relay: { ...options.outbox.relay, intervalMs: envNumber('RELAY_INTERVAL_MS') },
        }),
      ],
      providers: options.handlers ?? [],
    };
  }
}

export function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`Environment variable ${name} is required by this process (see its header).`);
  return value;
}
