import { ConnectionException } from '@mikro-orm/core';
import { OutboxHandlersError } from '../outbox.errors.js';
import { errorChain } from '../util/error-chain.js';

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
  '57P01',
  '57P02',
  '57P03',
]);
const CONNECTION_MESSAGES =
  /Connection terminated|not queryable|connection error|Connection ended|terminating connection/i;

/**
 * True when an error, or one it wraps, looks like a lost connection — for several handlers'
 * failures, when any of them does. It cannot tell a database from a handler's own HTTP call, so
 * the worker asks the database before acting on it.
 */
export function looksLikeConnectionError(error: unknown): boolean {
  if (error instanceof OutboxHandlersError) return [...error.failures.values()].some(looksLikeConnectionError);
  for (const current of errorChain(error)) {
    if (current instanceof ConnectionException) return true;
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08'))) return true;
    if (current instanceof Error && CONNECTION_MESSAGES.test(current.message)) return true;
  }
  return false;
}
