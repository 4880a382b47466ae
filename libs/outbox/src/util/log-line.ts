import { redactUrl } from './redact.js';

export type LogFields = Record<string, string | number | boolean | null | undefined>;

/**
 * One log line a pipeline can parse without a custom pattern: logfmt (`key=value key="two words"`),
 * as Loki, Vector, Datadog and others read it. Values are quoted (JSON escapes, so a multi-line
 * error stays on one line) when they need it; credentials in URLs are hidden; absent fields are left out.
 */
export function logLine(fields: LogFields): string {
  const parts: string[] = [];
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    if (value === undefined || value === null) continue;
    parts.push(`${key}=${typeof value === 'string' ? quoted(redactUrl(value)) : String(value)}`);
  }
  return parts.join(' ');
}

function quoted(text: string): string {
  return /^[^\s"=\\\p{Cc}]+$/u.test(text) ? text : JSON.stringify(text);
}
