import { MikroORM } from '@mikro-orm/core';
import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap, type OnModuleInit } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { OutboxSubscriber } from './capture/outbox.subscriber.js';
import type { OutboxRowFactory } from './capture/outbox-row.factory.js';
import { HandlerExplorer } from './consume/handler.explorer.js';
import { InboxStore } from './consume/inbox.store.js';
import { MessageProcessor } from './consume/message.processor.js';
import { OutboxWorker } from './consume/outbox.worker.js';
import { OutboxMessage } from './message/outbox-message.entity.js';
import { qualifiedTables } from './message/outbox.tables.js';
import { OutboxSetupError, describe } from './outbox.errors.js';
import { OUTBOX_OPTIONS, type ResolvedOutboxOptions } from './outbox.options.js';
import { createRedis } from './outbox.redis.js';
import { OutboxSignals } from './outbox.signals.js';
import { WakeChannel } from './outbox.wake-channel.js';
import { within } from './outbox.timeout.js';
import { OUTBOX_ROW_FACTORY } from './outbox.tokens.js';
import { OutboxQueue } from './outbox.queue.js';
import { RelayLoop } from './relay/relay.loop.js';
import { RelayQueue } from './relay/relay.queue.js';
import { RelayStore } from './relay/relay.store.js';

/**
 * Owns the outbox's moving parts for one application: hooks capture into the ORM at init, starts
 * the relay and the worker once every module is ready, and stops them in order at shutdown.
 */
@Injectable()
export class OutboxLifecycle implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Outbox');
  private relay: RelayLoop | undefined;
  private worker: OutboxWorker | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly intervalName: string;
  private readonly wakeChannel: WakeChannel;
  private stopPublishing: (() => void) | undefined;

  constructor(
    private readonly orm: MikroORM,
    private readonly explorer: HandlerExplorer,
    private readonly signals: OutboxSignals,
    private readonly scheduler: SchedulerRegistry,
    @Inject(OUTBOX_OPTIONS) private readonly options: ResolvedOutboxOptions,
    @Inject(OUTBOX_ROW_FACTORY) private readonly rows: OutboxRowFactory,
    private readonly queue: OutboxQueue,
  ) {
    this.intervalName = `nest-outbox:relay:${options.queueName}`;
    this.wakeChannel = new WakeChannel(`${options.prefix}:${options.queueName}:outbox-wake`, () => this.queue.client());
  }

  async onModuleInit(): Promise<void> {
    this.checkEntities();
    await this.checkTables();
    this.orm.em.getEventManager().registerSubscriber(new OutboxSubscriber(this.rows, this.signals));
  }

  async onApplicationBootstrap(): Promise<void> {
    // Relays in other processes hear this process's commits without waiting for their schedule.
    this.stopPublishing = this.signals.onRowsCommitted(() => this.wakeChannel.publish());
    if (this.options.worker.enabled) {
      const processor = new MessageProcessor(this.orm, new InboxStore(this.options.tables), this.explorer.explore());
      this.worker = new OutboxWorker(processor, this.orm, createRedis(this.options, { maxRetriesPerRequest: null }), this.options);
      this.worker.start();
    }
    if (this.options.relay.enabled) {
      const store = new RelayStore(this.orm, this.options.tables, this.options.retention.deleteOnDispatch);
      const relay = new RelayLoop(store, new RelayQueue(this.queue.get(), this.options), this.options);
      this.relay = relay;
      this.unsubscribe = this.signals.onRowsCommitted(() => relay.wake());
      this.scheduler.addInterval(this.intervalName, setInterval(() => relay.wake(), this.options.relay.intervalMs));
      await this.wakeChannel.subscribe(createRedis(this.options, {}), () => relay.wake());
      relay.wake();
    }
  }

  /**
   * Stops claiming, lets the batch in flight be enqueued and marked and active handlers finish,
   * all within `shutdownTimeoutMs`; past it, hands the claimed rows back and ends the handler runs
   * still going (their transactions roll back, their jobs run again elsewhere).
   * Runs before MikroORM closes its pool (in onApplicationShutdown), so the last mark can land.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.unsubscribe?.();
    this.stopPublishing?.();
    this.wakeChannel.close();
    if (this.scheduler.doesExist('interval', this.intervalName)) this.scheduler.deleteInterval(this.intervalName);
    const graceful = Promise.allSettled([this.relay?.stop(), this.worker?.close()]).then(() => true);
    if (!(await within(graceful, this.options.shutdownTimeoutMs, false))) {
      const released = await this.relay?.releaseInFlight().catch(() => 0);
      this.worker?.abortActive(`the application shut down after waiting shutdownTimeoutMs (${this.options.shutdownTimeoutMs} ms)`);
      await within(this.worker?.forceClose().catch(() => undefined) ?? Promise.resolve(), 1000, undefined);
      this.logger.warn(
        `Shutdown took longer than shutdownTimeoutMs (${this.options.shutdownTimeoutMs} ms): released ${released ?? 0} claimed row(s); ` +
          'active handler runs were ended (their transactions roll back) and their jobs will run again elsewhere.',
      );
    }
    await this.queue.close();
  }

  /** Counters of this process's relay and worker (other processes keep their own). */
  processStats() {
    return { relay: this.relay?.stats, worker: this.worker?.stats };
  }

  /** Resolves when this process's relay has no drain running. */
  async relayIdle(): Promise<void> {
    await this.relay?.idle();
  }

  private checkEntities(): void {
    const meta = this.orm.getMetadata().find(OutboxMessage);
    if (!meta) {
      throw new OutboxSetupError(
        "MikroORM does not know the outbox entities: add `...outboxEntities()` (from 'nest-outbox') to the `entities` of your MikroORM config.",
      );
    }
    const { schema, outbox } = this.options.tables;
    if (meta.tableName !== outbox || (schema ?? undefined) !== (meta.schema ?? undefined)) {
      throw new OutboxSetupError(
        `MikroORM maps the outbox to ${meta.schema ? `${meta.schema}.` : ''}${meta.tableName} but OutboxModule uses ${schema ? `${schema}.` : ''}${outbox}: pass the same \`tables\` to outboxEntities() and OutboxModule.`,
      );
    }
  }

  private async checkTables(): Promise<void> {
    const { outbox, inbox } = qualifiedTables(this.options.tables);
    let found: Array<{ outbox: string | null; inbox: string | null }>;
    try {
      found = await this.orm.em.getConnection().execute(`select to_regclass(?) as outbox, to_regclass(?) as inbox`, [outbox, inbox]);
    } catch (error) {
      throw new OutboxSetupError(`nest-outbox cannot reach PostgreSQL to check its tables: ${describe(error)}. Start the database and boot again.`, { cause: error });
    }
    const missing = [found[0].outbox ? '' : outbox, found[0].inbox ? '' : inbox].filter(Boolean);
    if (missing.length > 0) {
      throw new OutboxSetupError(
        `Table(s) ${missing.join(', ')} do not exist. Run the outbox migration (add outboxMigration() to MikroORM's migrations.migrationsList and run it) or apply outboxSchemaSql().`,
      );
    }
    this.logger.log(`Outbox ready on ${outbox}, queue "${this.options.queueName}" (relay ${this.options.relay.enabled ? 'on' : 'off'}, worker ${this.options.worker.enabled ? 'on' : 'off'}).`);
  }
}

