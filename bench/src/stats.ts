/**
 * Latency statistics for one run (or several merged): exact percentiles from the raw samples,
 * a ghz-style linear histogram, and the median used to combine rounds.
 */

/** The percentiles every report shows, as fractions. */
export const PERCENTILES = [0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999] as const;
export type PercentileKey = 'p10' | 'p25' | 'p50' | 'p75' | 'p90' | 'p95' | 'p99' | 'p99.9';

export interface HistogramBucket {
  /** Upper bound of the bucket (inclusive), ms. */
  upToMs: number;
  count: number;
}

export interface LatencySummary {
  count: number;
  /** Wall time of the measured window, ms. */
  totalMs: number;
  slowestMs: number;
  fastestMs: number;
  averageMs: number;
  rps: number;
  percentiles: Record<PercentileKey, number>;
  histogram: HistogramBucket[];
}

export function percentileKey(fraction: number): PercentileKey {
  const text = `p${Number((fraction * 100).toFixed(1))}`;
  return text as PercentileKey;
}

/**
 * Nearest-rank percentile of ascending `sorted` samples: the smallest sample such that at least
 * `fraction` of all samples are ≤ it. NaN for no samples.
 */
export function percentile(sorted: ArrayLike<number>, fraction: number): number {
  if (sorted.length === 0) return NaN;
  if (!(fraction >= 0 && fraction <= 1)) throw new RangeError(`fraction ${fraction} not in [0, 1]`);
  const rank = Math.max(1, Math.ceil(fraction * sorted.length - 1e-9));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

/**
 * `buckets` equal-width buckets from the fastest to the slowest sample (as ghz draws them); each
 * counts the samples above the previous bound and up to its own. The first bucket also holds the
 * fastest sample itself.
 */
export function histogram(sorted: ArrayLike<number>, buckets = 10): HistogramBucket[] {
  if (sorted.length === 0) return [];
  const fastest = sorted[0]!;
  const slowest = sorted[sorted.length - 1]!;
  if (slowest === fastest) return [{ upToMs: slowest, count: sorted.length }];
  const width = (slowest - fastest) / buckets;
  const result: HistogramBucket[] = [];
  let index = 0;
  for (let b = 1; b <= buckets; b++) {
    const upTo = b === buckets ? slowest : fastest + width * b;
    let count = 0;
    while (index < sorted.length && sorted[index]! <= upTo) {
      count++;
      index++;
    }
    result.push({ upToMs: upTo, count });
  }
  return result;
}

export function sortedCopy(samples: ArrayLike<number>): Float64Array {
  const sorted = Float64Array.from(samples);
  sorted.sort();
  return sorted;
}

/** Summary of the samples of a window `totalMs` long (rps = count / total). */
export function summarize(samples: ArrayLike<number>, totalMs: number): LatencySummary {
  const sorted = sortedCopy(samples);
  let sum = 0;
  for (const value of sorted) sum += value;
  const count = sorted.length;
  const percentiles = {} as Record<PercentileKey, number>;
  for (const fraction of PERCENTILES) {
    percentiles[percentileKey(fraction)] = percentile(sorted, fraction);
  }
  return {
    count,
    totalMs,
    slowestMs: count > 0 ? sorted[count - 1]! : NaN,
    fastestMs: count > 0 ? sorted[0]! : NaN,
    averageMs: count > 0 ? sum / count : NaN,
    rps: totalMs > 0 ? (count * 1000) / totalMs : NaN,
    percentiles,
    histogram: histogram(sorted),
  };
}

/** Median of the finite values (mean of the middle two for an even count); NaN when none. */
export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return NaN;
  const middle = finite.length >> 1;
  return finite.length % 2 === 1 ? finite[middle]! : (finite[middle - 1]! + finite[middle]!) / 2;
}

/** Adds `from`'s counts into `into` (per backend, per status code). */
export function addCounts(into: Record<string, number>, from: Readonly<Record<string, number>>) {
  for (const [key, value] of Object.entries(from)) into[key] = (into[key] ?? 0) + value;
}
