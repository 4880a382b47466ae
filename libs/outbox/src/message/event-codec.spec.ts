import { describe, expect, it } from '@jest/globals';
import { OutboxMessageError, OutboxPayloadError } from '../outbox.errors.js';
import { checkMessageSize, parsePayload, readEvent, serialiseEvent } from './event-codec.js';
import { OutboxEvent } from './event-type.js';

@OutboxEvent('codec.parcel-shipped.v1')
class ParcelShipped {
  constructor(
    readonly parcelId: string,
    readonly weight: number,
  ) {}

  describe(): string {
    return `${this.parcelId} (${this.weight} kg)`;
  }
}

@OutboxEvent({ name: 'codec.dated.v1', revive: (p) => new Dated(new Date(String(p.at))) })
class Dated {
  constructor(readonly at: Date) {}
}

const stored = (type: string, payload: string) => ({ type, payload, headers: {} });

describe('serialiseEvent', () => {
  it('writes the own fields as JSON', () => {
    expect(serialiseEvent(new ParcelShipped('p1', 2))).toBe('{"parcelId":"p1","weight":2}');
  });

  it('rejects BigInt and cycles, naming the type and saying nothing was written', () => {
    const cyclic = new ParcelShipped('p', 1) as ParcelShipped & { self?: unknown };
    cyclic.self = cyclic;
    expect(() => serialiseEvent(Object.assign(new ParcelShipped('p', 1), { n: 1n }))).toThrow(
      /codec\.parcel-shipped\.v1 cannot be serialised to JSON.*BigInt.*Nothing was written/,
    );
    expect(() => serialiseEvent(cyclic)).toThrow(OutboxPayloadError);
  });

  const withOwnProto = () =>
    Object.defineProperty(new ParcelShipped('p', 1), '__proto__', { value: { polluted: true }, enumerable: true });

  it.each([
    ['__proto__', withOwnProto, 'payload.__proto__'],
    [
      'constructor',
      () => Object.assign(new ParcelShipped('p', 1), { items: [{}, {}, { constructor: 'x' }] }),
      'payload.items[2].constructor',
    ],
    [
      'prototype',
      () => Object.assign(new ParcelShipped('p', 1), { a: { 'b c': { prototype: {} } } }),
      'payload.a["b c"].prototype',
    ],
  ])('refuses a payload with the key %s at any depth, naming its path', (key, build, path) => {
    expect(() => serialiseEvent(build())).toThrow(OutboxPayloadError);
    expect(() => serialiseEvent(build())).toThrow(
      `Event codec.parcel-shipped.v1 has a field named "${key}" (at ${path}); the keys __proto__, constructor and ` +
        'prototype are refused, because a reader could not rebuild them safely. Rename the field. Nothing was written.',
    );
  });

  it('keeps a payload whose values only name a forbidden key, as JSON.stringify writes it', () => {
    const event = new ParcelShipped('constructor, __proto__ and prototype \\u0041', 1);
    expect(serialiseEvent(event)).toBe(JSON.stringify(event));
  });

  it('counts bytes, not characters, against the size limit', () => {
    // 60 characters, 140 bytes in UTF-8.
    const payload = serialiseEvent(new ParcelShipped('€'.repeat(40), 1));
    expect(payload.length).toBeLessThan(100);
    expect(() => checkMessageSize('t', payload, '{}', 100)).toThrow(/t is 1\d\d bytes of JSON with its headers/);
  });

  it('counts the headers with the payload against the size limit', () => {
    const payload = serialiseEvent(new ParcelShipped('x'.repeat(50), 1));
    expect(() => checkMessageSize('t', payload, '{}', 100)).not.toThrow();
    expect(() => checkMessageSize('t', payload, JSON.stringify({ custom: { note: 'y'.repeat(40) } }), 100)).toThrow(
      /t is 1\d\d bytes of JSON with its headers, over the 100-byte limit \(option maxPayloadBytes\)/,
    );
  });

  it('rejects values that are not event objects', () => {
    expect(() => serialiseEvent(null as unknown as object)).toThrow(/must be an object/);
  });
});

describe('readEvent', () => {
  it('builds a real instance of the class with the payload fields', () => {
    const event = readEvent(
      ParcelShipped,
      stored('codec.parcel-shipped.v1', '{"parcelId":"p9","weight":3}'),
    ) as ParcelShipped;
    expect(event).toBeInstanceOf(ParcelShipped);
    expect(event.describe()).toBe('p9 (3 kg)');
  });

  it('uses the class revive function when it has one', () => {
    const event = readEvent(Dated, stored('codec.dated.v1', '{"at":"2026-11-22T10:00:00.000Z"}')) as Dated;
    expect(event.at).toBeInstanceOf(Date);
    expect(event.at.toISOString()).toBe('2026-11-22T10:00:00.000Z');
  });

  it.each([
    ['{"__proto__": {"polluted": true}}', /forbidden key "__proto__"/],
    ['{"a": {"\\u005f_proto__": {"polluted": true}}}', /forbidden key "__proto__"/],
    ['{"constructor": {"name": "x"}}', /forbidden key "constructor"/],
    ['{"a": 1', /not valid JSON/],
    ['[1, 2]', /expected a JSON object/],
    ['"text"', /expected a JSON object/],
  ])('refuses %s without touching any prototype', (text, message) => {
    expect(() => readEvent(ParcelShipped, stored('codec.parcel-shipped.v1', text))).toThrow(OutboxMessageError);
    expect(() => parsePayload('t', text)).toThrow(message);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('parsePayload: the fast path never lets a forbidden key through', () => {
  it.each([
    ['spelled out', '{"a": 1, "__proto__": {"x": 1}}'],
    ['escaped', '{"a": 1, "\\u005f_proto__": {"x": 1}}'],
    ['escaped constructor', '{"\\u0063onstructor": {"prototype": {}}}'],
  ])('refuses a payload with a forbidden key %s', (_, text) => {
    expect(() => parsePayload('t', text)).toThrow(/forbidden key "(__proto__|constructor|prototype)"/);
  });

  it('reads plain payloads, including ones that mention the names inside values', () => {
    expect(parsePayload('t', '{"note": "see constructor and prototype"}')).toEqual({
      note: 'see constructor and prototype',
    });
    expect(parsePayload('t', '{"n": [1, {"m": "é"}]}')).toEqual({ n: [1, { m: 'é' }] });
  });
});
