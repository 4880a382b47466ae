import { describe, expect, it } from '@jest/globals';
import { isMessageId, newMessageId } from './message-id.js';

describe('newMessageId', () => {
  it('makes RFC 9562 version 7 UUIDs without ":" (valid BullMQ job ids)', () => {
    const id = newMessageId();
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(isMessageId(id)).toBe(true);
    expect(id).not.toContain(':');
  });

  it('is strictly increasing within a process, even inside one millisecond', () => {
    const ids = Array.from({ length: 20_000 }, () => newMessageId());
    for (let i = 1; i < ids.length; i++) expect(ids[i] > ids[i - 1]).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('carries the creation time in its first 48 bits', () => {
    const before = Date.now();
    const ms = parseInt(newMessageId().replace(/-/g, '').slice(0, 12), 16);
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(Date.now() + 1);
  });
});
