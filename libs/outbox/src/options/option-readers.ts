import { OutboxOptionsError } from '../outbox.errors.js';
import { invalidOption } from '../outbox.messages.js';

/** Readers for one option each: the default when absent, a named error when out of range. */

export function int(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new OutboxOptionsError(invalidOption(name, `an integer from ${min} to ${max}`, value));
  }
  return value;
}

export function fraction(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new OutboxOptionsError(invalidOption(name, 'a number from 0 to 1', value));
  }
  return value;
}

export function flag(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new OutboxOptionsError(invalidOption(name, 'true or false', value));
  return value;
}

export function text(name: string, value: unknown, fallback: string, pattern: RegExp, rule: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !pattern.test(value)) throw new OutboxOptionsError(invalidOption(name, rule, value));
  return value;
}

export function oneOf<T extends string>(name: string, value: unknown, fallback: T, allowed: readonly T[]): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T)) {
    throw new OutboxOptionsError(invalidOption(name, `one of ${allowed.map((a) => `"${a}"`).join(', ')}`, value));
  }
  return value as T;
}

export function section<T extends object>(name: string, value: T | undefined): T {
  if (value === undefined) return {} as T;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new OutboxOptionsError(invalidOption(name, 'an object', value));
  }
  return value;
}
