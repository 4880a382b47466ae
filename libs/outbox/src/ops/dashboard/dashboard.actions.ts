import { OutboxError } from '../../outbox.errors.js';
import { errorText } from '../../util/error-text.js';
import { knownServices, type DashboardSources } from './dashboard.data.js';

/** What a dashboard button asks for. */
export type DashboardAction =
  | { kind: 'retry' | 'discard'; service: string; messageId: string; handler?: string }
  | { kind: 'skip'; handler: string; source: string; key: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_TEXT = 500;

/** Reads a posted form into an action; a string says what is wrong with it. */
export function parseAction(form: Record<string, unknown>): DashboardAction | string {
  const text = (name: string, required: boolean): string | undefined | null => {
    const value = form[name];
    if (value === undefined || value === '') return required ? null : undefined;
    return typeof value === 'string' && value.length <= MAX_TEXT ? value : null;
  };
  const kind = form.action;
  if (kind === 'retry' || kind === 'discard') {
    const service = text('service', true);
    const messageId = text('message', true);
    const handler = text('handler', false);
    if (!service || !messageId || !UUID.test(messageId) || handler === null) return 'a malformed retry or discard';
    return { kind, service, messageId, ...(handler ? { handler } : {}) };
  }
  if (kind === 'skip') {
    const handler = text('handler', true);
    const source = text('source', true);
    const key = text('key', true);
    if (!handler || !source || !key) return 'a malformed skip';
    return { kind, handler, source, key };
  }
  return 'an unknown action';
}

/**
 * Carries out an action through the admin services; the outcome is a sentence for the page. A
 * library error (the dead letter was retried by someone else meanwhile, say) is an outcome too.
 */
export async function performAction(
  sources: DashboardSources,
  action: DashboardAction,
): Promise<{ ok: boolean; text: string }> {
  try {
    if (action.kind === 'skip') {
      const { skipped } = await sources.ordering.skip(action);
      return {
        ok: true,
        text: `Skipped place ${skipped} of key ${action.key} (${action.source}) for ${action.handler}.`,
      };
    }
    if (!(await knownServices(sources)).has(action.service)) {
      return { ok: false, text: `No consuming service named ${action.service} is registered.` };
    }
    const queue = sources.deadLetters.of(action.service);
    const choice = action.handler ? { handler: action.handler } : {};
    await (action.kind === 'retry' ? queue.retry(action.messageId, choice) : queue.discard(action.messageId, choice));
    const what = action.handler ? `handler ${action.handler} of message` : 'message';
    const done = action.kind === 'retry' ? 'Retried' : 'Discarded';
    return { ok: true, text: `${done} ${what} ${action.messageId} in ${action.service}.` };
  } catch (error) {
    if (error instanceof OutboxError) return { ok: false, text: errorText(error) };
    throw error;
  }
}
