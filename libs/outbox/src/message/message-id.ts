import { randomFillSync } from 'node:crypto';

let lastMs = 0;
let sequence = 0;

/**
 * Random bytes drawn 4 KiB at a time: one call into the OS per 455 ids rather than two per id
 * (a capture spent a third of its time in `randomBytes`).
 */
const POOL = Buffer.alloc(4096);
let poolAt = POOL.length;

/** Each byte's two hex digits: an id is spelled from them, without a Buffer and `toString('hex')` per id. */
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/**
 * UUID v7 (RFC 9562): time ordered, so the primary key index stays append-only and `ORDER BY id`
 * follows write order within a process. A 12-bit sequence keeps ids from one process strictly
 * increasing inside the same millisecond.
 */
export function newMessageId(): string {
  if (poolAt + 9 > POOL.length) {
    randomFillSync(POOL);
    poolAt = 0;
  }
  // Nine random bytes: the id's last eight (the first of them carries the variant), and a sequence start.
  const at = poolAt;
  poolAt += 9;
  let ms = Date.now();
  if (ms <= lastMs) {
    sequence++;
    if (sequence > 0xfff) {
      lastMs++;
      sequence = 0;
    }
    ms = lastMs;
  } else {
    lastMs = ms;
    // A random start in the lower half leaves room for 2,048 more ids in this millisecond.
    sequence = POOL[at + 8] & 0x7f;
  }
  // 48 bits of milliseconds: the high 16 and the low 32, as JavaScript's bitwise operators take 32.
  const high = Math.floor(ms / 0x1_0000_0000);
  const low = ms >>> 0;
  const p = POOL;
  return (
    HEX[(high >>> 8) & 0xff] +
    HEX[high & 0xff] +
    HEX[low >>> 24] +
    HEX[(low >>> 16) & 0xff] +
    '-' +
    HEX[(low >>> 8) & 0xff] +
    HEX[low & 0xff] +
    '-' +
    HEX[0x70 | (sequence >> 8)] +
    HEX[sequence & 0xff] +
    '-' +
    HEX[(p[at] & 0x3f) | 0x80] +
    HEX[p[at + 1]] +
    '-' +
    HEX[p[at + 2]] +
    HEX[p[at + 3]] +
    HEX[p[at + 4]] +
    HEX[p[at + 5]] +
    HEX[p[at + 6]] +
    HEX[p[at + 7]]
  );
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isMessageId(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}
