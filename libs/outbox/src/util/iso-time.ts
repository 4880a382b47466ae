let lastMs = Number.NaN;
let lastText = '';

/**
 * `date.toISOString()`, remembered for the last millisecond asked: the rows of one flush mostly
 * share it, and each row's is printed twice (into its headers, then into the INSERT).
 */
export function isoTime(date: Date): string {
  const ms = date.getTime();
  // An invalid date is NaN, never equal to itself: toISOString throws for it as before.
  if (ms !== lastMs) {
    lastText = date.toISOString();
    lastMs = ms;
  }
  return lastText;
}
