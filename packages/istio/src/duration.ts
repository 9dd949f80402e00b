/**
 * Durations as Istio resources write them: Go's form (`10s`, `1.5s`, `500ms`,
 * `1m30s`, `2h`), which covers the protobuf JSON form (`10s`, `0.5s`).
 */

const UNIT_NANOS: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  µs: 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

const PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;

/** Nanoseconds of a duration, or undefined when `text` is not one. */
export function durationNanos(text: string): number | undefined {
  if (text === '' || text === '0') return text === '0' ? 0 : undefined;
  PART.lastIndex = 0;
  let total = 0;
  while (PART.lastIndex < text.length) {
    const start = PART.lastIndex;
    const match = PART.exec(text);
    if (!match || match.index !== start) return undefined;
    total += Number(match[1]) * UNIT_NANOS[match[2]!]!;
  }
  return Math.round(total);
}

/** A duration in the form gRPC service configs use: whole seconds and up to 9 decimals, `"1.5s"`. */
export function grpcDuration(nanos: number): string {
  const seconds = Math.floor(nanos / 1e9);
  const rest = Math.round(nanos - seconds * 1e9);
  if (rest === 0) return `${seconds}s`;
  return `${seconds}.${String(rest).padStart(9, '0').replace(/0+$/, '')}s`;
}
