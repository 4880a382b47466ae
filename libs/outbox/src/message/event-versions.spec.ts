import { describe, expect, it } from '@jest/globals';
import { OutboxError, OutboxMessageError, OutboxSetupError, OutboxVersionAheadError } from '../outbox.errors.js';
import { readEvent } from './event-codec.js';
import { OutboxEvent, eventMetadataOf, type EventPayload } from './event-type.js';

/** v1 `{ name }`, v2 `{ fullName }`, v3 `{ fullName, tier }`. */
@OutboxEvent({
  name: 'versions.member-joined',
  version: 3,
  upcast: {
    1: ({ name, ...rest }) => ({ ...rest, fullName: name }),
    2: (payload) => ({ ...payload, tier: 'basic' }),
  },
})
class MemberJoined {
  constructor(
    readonly fullName: string,
    readonly tier: string,
  ) {}
}

const message = (payload: EventPayload, version?: unknown) => ({
  type: 'versions.member-joined',
  payload: JSON.stringify(payload),
  headers: version === undefined ? {} : { version },
});

describe('versioned events', () => {
  it('reads a row without a version as version 1 and lifts it 1 → 2 → 3', () => {
    const event = readEvent(MemberJoined, message({ name: 'Ada' })) as MemberJoined;
    expect(event).toBeInstanceOf(MemberJoined);
    expect({ ...event }).toEqual({ fullName: 'Ada', tier: 'basic' });
  });

  it('starts the chain at the stored version, and runs none at the class version', () => {
    expect({ ...readEvent(MemberJoined, message({ fullName: 'Bo' }, 2)) }).toEqual({ fullName: 'Bo', tier: 'basic' });
    expect({ ...readEvent(MemberJoined, message({ fullName: 'Cy', tier: 'gold' }, 3)) }).toEqual({
      fullName: 'Cy',
      tier: 'gold',
    });
  });

  it('a version newer than the class is its own error, naming type and both versions', () => {
    let caught: unknown;
    try {
      readEvent(MemberJoined, message({ fullName: 'Di', tier: 'gold', since: 2027 }, 4));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(OutboxVersionAheadError);
    expect(caught).toBeInstanceOf(OutboxError);
    expect(caught).not.toBeInstanceOf(OutboxMessageError);
    expect(caught).toMatchObject({ type: 'versions.member-joined', storedVersion: 4, knownVersion: 3 });
    expect((caught as Error).message).toMatch(/written at version 4.*knows it up to version 3.*handed back/);
  });

  it.each([[0], [-1], [1.5], ['2'], [{}]])('a stored version of %p makes the message unreadable', (version) => {
    expect(() => readEvent(MemberJoined, message({ name: 'Ed' }, version))).toThrow(OutboxMessageError);
    expect(() => readEvent(MemberJoined, message({ name: 'Ed' }, version))).toThrow(/not a positive integer/);
  });

  it('an upcaster that throws, or returns no object, makes the message unreadable, naming the step', () => {
    @OutboxEvent({ name: 'versions.broken', version: 2, upcast: { 1: () => JSON.parse('null') as EventPayload } })
    class Broken {}
    @OutboxEvent({
      name: 'versions.throws',
      version: 2,
      upcast: {
        1: () => {
          throw new Error('no price');
        },
      },
    })
    class Throws {}
    expect(() => readEvent(Broken, { ...message({}), type: 'versions.broken' })).toThrow(
      'Payload of versions.broken could not be lifted from version 1 to 2: the upcaster returned no object.',
    );
    expect(() => readEvent(Throws, { ...message({}), type: 'versions.throws' })).toThrow(
      /from version 1 to 2: the upcaster threw: no price/,
    );
  });

  it('records the version on the class; an undecorated class is at version 1', () => {
    expect(eventMetadataOf(MemberJoined)).toMatchObject({ name: 'versions.member-joined', version: 3 });
    class Plain {}
    expect(eventMetadataOf(Plain)).toMatchObject({ name: 'Plain', version: 1 });
  });
});

describe('@OutboxEvent versions are checked at decoration time', () => {
  it('a missing step in the chain fails, saying which upcaster to add', () => {
    expect(() => OutboxEvent({ name: 'v.gap', version: 3, upcast: { 1: (p) => p } })).toThrow(OutboxSetupError);
    expect(() => OutboxEvent({ name: 'v.gap', version: 3, upcast: { 1: (p) => p } })).toThrow(
      '@OutboxEvent "v.gap" is at version 3 but has no upcaster from version 2: add upcast: { 2: (payload) => ... } ' +
        'returning the version-3 payload',
    );
    expect(() => OutboxEvent({ name: 'v.none', version: 2 })).toThrow(/no upcaster from version 1/);
  });

  it('an upcaster from the class version or beyond, or not keyed by a version, fails', () => {
    expect(() => OutboxEvent({ name: 'v.extra', version: 2, upcast: { 1: (p) => p, 2: (p) => p } })).toThrow(
      /upcaster under "2": at version 2, upcast takes functions keyed 1 to 1/,
    );
    expect(() => OutboxEvent({ name: 'v.key', upcast: { 0: (p) => p } })).toThrow(/upcaster under "0"/);
  });

  it.each([[0], [1.5], [10_001], ['2']])('a version of %p fails', (version) => {
    expect(() => OutboxEvent({ name: 'v.bad', version: version as number })).toThrow(
      /has version .*: use an integer from 1 to 10000/,
    );
  });
});
