import { redactUrl } from './redact.js';

/**
 * The message of an error (or the text of anything thrown), for logs, spans and wrapped errors;
 * credentials in URLs are hidden (a driver's error may quote its connection string).
 */
export function errorText(error: unknown): string {
  return redactUrl(error instanceof Error ? error.message || error.name : String(error));
}
