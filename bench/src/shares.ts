/**
 * How evenly calls spread over backends: the max/min share, and how far each share is from the
 * share a weighted policy was asked for.
 */

export interface ShareAnalysis {
  /** Backends that should have received calls (the scenario's set), plus any others seen. */
  backends: number;
  /** Successful calls counted. */
  calls: number;
  /** busiest / least busy; null when a backend got nothing (the ratio is infinite). */
  maxMinShare: number | null;
  /** Fraction of the calls that went to the busiest backend (1 = everything pinned to one). */
  busiestShare: number;
  /** Backends of the set that received no call at all. */
  idleBackends: number;
}

/**
 * `perBackend` counts replies by backend address; `expected` lists every backend that should
 * have been used, so that one that received nothing counts as idle rather than being invisible.
 */
export function analyzeShares(
  perBackend: Readonly<Record<string, number>>,
  expected: readonly string[],
): ShareAnalysis {
  const counts = new Map<string, number>();
  for (const address of expected) counts.set(address, 0);
  for (const [address, count] of Object.entries(perBackend)) {
    counts.set(address, (counts.get(address) ?? 0) + count);
  }
  const values = [...counts.values()];
  const calls = values.reduce((a, b) => a + b, 0);
  const max = values.length > 0 ? Math.max(...values) : 0;
  const min = values.length > 0 ? Math.min(...values) : 0;
  return {
    backends: values.length,
    calls,
    maxMinShare: min > 0 ? max / min : null,
    busiestShare: calls > 0 ? max / calls : 0,
    idleBackends: values.filter((v) => v === 0).length,
  };
}

/**
 * The largest distance, in percentage points, between a backend's share of the calls and the
 * share it was configured for (`expectedShares`: address → fraction, summing to 1).
 */
export function maxShareErrorPp(
  perBackend: Readonly<Record<string, number>>,
  expectedShares: Readonly<Record<string, number>>,
): number {
  const calls = Object.values(perBackend).reduce((a, b) => a + b, 0);
  if (calls === 0) return NaN;
  let worst = 0;
  const addresses = new Set([...Object.keys(perBackend), ...Object.keys(expectedShares)]);
  for (const address of addresses) {
    const actual = (perBackend[address] ?? 0) / calls;
    const wanted = expectedShares[address] ?? 0;
    worst = Math.max(worst, Math.abs(actual - wanted) * 100);
  }
  return worst;
}
