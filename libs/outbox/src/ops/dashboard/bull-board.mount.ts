import type { ServerResponse } from 'node:http';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { OutboxQueues } from '../../routing/outbox-queues.js';
import type { OutboxSubscriptions } from '../outbox-subscriptions.js';
import type { DashboardRequest } from './dashboard.options.js';

type Board = ReturnType<typeof createBullBoard>;
type Middleware = (request: DashboardRequest, response: ServerResponse, next: (error?: unknown) => void) => void;

/** How often the list of queues is read again from the registry, so services that register later show up. */
const REFRESH_MS = 5000;

/**
 * Bull Board behind the dashboard's own route (and so behind its guard): the queue of every
 * consuming service in the registry, with the queues the outbox already owns. Bull Board's express
 * app answers as if mounted at the dashboard's `queues` path.
 */
export class BullBoardMount {
  private readonly adapter = new ExpressAdapter();
  private board: Board | undefined;
  private shown = '';
  private refreshedAt = 0;

  constructor(
    private readonly queues: OutboxQueues,
    private readonly subscriptions: OutboxSubscriptions,
    private readonly service: string,
    private readonly readOnly: boolean,
  ) {}

  /**
   * Lets Bull Board answer a request whose path below `base` is `rest`; resolves `false` when it
   * has no route for it (the caller answers 404).
   */
  async handle(request: DashboardRequest, response: ServerResponse, base: string, rest: string): Promise<boolean> {
    await this.refresh();
    // One base for every request: the UI's <base href> and asset links are built from it.
    this.adapter.setBasePath(base);
    const url = request.url;
    request.url = rest;
    const app = this.adapter.getRouter() as Middleware;
    return new Promise<boolean>((resolve, reject) => {
      response.once('close', () => resolve(true));
      response.once('finish', () => resolve(true));
      app(request, response, (error?: unknown) => {
        request.url = url;
        if (error) reject(error instanceof Error ? error : new Error(String(error)));
        else resolve(false);
      });
    });
  }

  private async refresh(): Promise<void> {
    if (this.board && Date.now() - this.refreshedAt < REFRESH_MS) return;
    const registered = await this.subscriptions.list();
    const names = [...new Set([this.service, ...registered.map((subscription) => subscription.service)])].sort();
    this.refreshedAt = Date.now();
    if (this.board && names.join('\n') === this.shown) return;
    const adapters = names.map(
      (name) =>
        new BullMQAdapter(this.queues.of(name), {
          readOnlyMode: this.readOnly,
          displayName: name,
          description: name === this.service ? 'this service' : '',
        }),
    );
    if (this.board) this.board.replaceQueues(adapters);
    else
      this.board = createBullBoard({
        queues: adapters,
        serverAdapter: this.adapter,
        options: { uiConfig: { boardTitle: 'Outbox queues' } },
      });
    this.shown = names.join('\n');
  }
}
