import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { MikroORM, defineConfig } from '@mikro-orm/postgresql';
import { BenchAggregate } from '../bench.app.js';

/** Plain MikroORM with the bench aggregate, as a service without the outbox would set it up. */
export function plainOrm(databaseUrl: string, poolMax: number): Promise<MikroORM> {
  return MikroORM.init(
    defineConfig({
      clientUrl: databaseUrl,
      entities: [BenchAggregate],
      metadataProvider: ReflectMetadataProvider,
      pool: { max: poolMax },
      debug: false,
    }),
  );
}
