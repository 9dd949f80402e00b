/** Go's duration syntax as Consul writes and reads it: `30s`, `5m`, `1m30s`, `250ms`, `1.5h`. */
const PART = /(\d+(?:\.\d+)?)(ms|h|m|s)/y;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };

/** Milliseconds, or `undefined` when `text` is not a positive Go duration. */
export function parseGoDuration(text: string): number | undefined {
  if (text === '') return undefined;
  PART.lastIndex = 0;
  let total = 0;
  while (PART.lastIndex < text.length) {
    const match = PART.exec(text);
    if (!match) return undefined;
    total += Number(match[1]) * UNIT_MS[match[2]!]!;
  }
  return total > 0 ? Math.round(total) : undefined;
}

/** What Consul's API accepts for a duration field: a Go duration string, or milliseconds. */
export function toGoDuration(value: string | number): string | undefined {
  if (typeof value === 'number') {
    return Number.isInteger(value) && value > 0 ? `${value}ms` : undefined;
  }
  return parseGoDuration(value) !== undefined ? value : undefined;
}

/** `300000` → `5m`, `1500` → `1500ms`: for messages and the `wait` parameter. */
export function formatDuration(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}
