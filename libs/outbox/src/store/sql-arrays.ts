import { isMessageId } from '../message/message-id.js';

/**
 * A PostgreSQL `uuid[]` literal, passed as one parameter so a batch is one statement. Anything
 * that is not a uuid is dropped here, so no other text can reach the literal.
 */
export function uuidArray(ids: readonly string[]): string {
  return `{${ids.filter(isMessageId).join(',')}}`;
}

/** A PostgreSQL `text[]` literal, every element quoted and escaped, passed as one parameter. */
export function textArray(values: readonly string[]): string {
  return `{${values.map((value) => `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`).join(',')}}`;
}
