import { describe, expect, it } from '@jest/globals';
import { logLine } from './log-line.js';

/** A logfmt reader as a log pipeline has one: bare or JSON-quoted values. */
function parse(line: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const match of line.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
    fields[match[1]] = match[2].startsWith('"') ? (JSON.parse(match[2]) as string) : match[2];
  }
  return fields;
}

describe('logLine', () => {
  it('writes one logfmt line that parses back to its fields', () => {
    const error = 'Error: boom\n  at handler (x.ts:1)\tsaid "no" = a\\b';
    const line = logLine({ event: 'outbox.handler.failed', message_id: 'abc', attempt: 2, final: false, error });
    expect(line).not.toContain('\n');
    expect(parse(line)).toEqual({
      event: 'outbox.handler.failed',
      message_id: 'abc',
      attempt: '2',
      final: 'false',
      error,
    });
  });

  it('quotes empty values, leaves absent ones out and hides credentials', () => {
    const line = logLine({ a: '', b: undefined, c: null, error: 'connect redis://u:pw@host failed' });
    expect(line).toBe('a="" error="connect redis://u:***@host failed"');
  });
});
