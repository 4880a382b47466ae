/** The message of an error (or the text of anything thrown), for logs and wrapped errors. */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
