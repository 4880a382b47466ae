import { Type } from '@mikro-orm/core';

/**
 * A json column written from JSON text the outbox already produced (and size-checked), so a row's
 * payload is stringified once, not again by the ORM.
 */
export class JsonTextType extends Type<string, string> {
  override convertToDatabaseValue(value: string): string {
    return value;
  }

  override convertToJSValue(value: unknown): string {
    return typeof value === 'string' ? value : JSON.stringify(value);
  }

  override compareAsType(): string {
    return 'string';
  }

  override getColumnType(): string {
    return 'json';
  }
}
