/**
 * Credentials hidden wherever they appear in a text: `redis://user:secret@host` → `redis://user:***@host`
 * (also when the password holds `@`, `/` or `:`, up to the last `@` of the URL), `user:secret@host`
 * without a scheme, and `password=` / `token=`-like query parameters.
 */
export function redactUrl(text: string): string {
  return text
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:@\s/]*:)\S*@/gi, '$1***@')
    .replace(/:[^:@/\s]*@/g, ':***@')
    .replace(/([?&](?:password|passwd|pass|pwd|secret|token|auth)=)[^&\s"']*/gi, '$1***');
}
