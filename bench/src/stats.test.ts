import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { histogram, median, percentile, sortedCopy, summarize } from './stats';

describe('percentile', () => {
  const sorted = sortedCopy(Array.from({ length: 100 }, (_, i) => 100 - i)); // 1 … 100

  test('is the nearest-rank sample: p50 of 1…100 is 50, p99 is 99, p100 is 100', () => {
    assert.equal(percentile(sorted, 0.5), 50);
    assert.equal(percentile(sorted, 0.99), 99);
    assert.equal(percentile(sorted, 0.999), 100);
    assert.equal(percentile(sorted, 1), 100);
  });

  test('p0 and tiny fractions give the fastest sample', () => {
    assert.equal(percentile(sorted, 0), 1);
    assert.equal(percentile(sorted, 0.001), 1);
  });

  test('of one sample is that sample; of none is NaN', () => {
    assert.equal(percentile([7], 0.99), 7);
    assert.ok(Number.isNaN(percentile([], 0.5)));
  });

  test('rejects a fraction outside [0, 1]', () => {
    assert.throws(() => percentile(sorted, 1.5), RangeError);
  });
});

describe('histogram', () => {
  test('has equal-width buckets from fastest to slowest that count every sample once', () => {
    const buckets = histogram(sortedCopy([1, 2, 2, 3, 10, 11]), 10);
    assert.equal(buckets.length, 10);
    assert.equal(buckets[0]!.upToMs, 2);
    assert.equal(buckets[9]!.upToMs, 11);
    assert.equal(
      buckets.reduce((n, b) => n + b.count, 0),
      6,
    );
    assert.deepEqual(
      buckets.map((b) => b.count),
      [3, 1, 0, 0, 0, 0, 0, 0, 1, 1],
    );
  });

  test('is one bucket when every sample is equal, and empty for no samples', () => {
    assert.deepEqual(histogram(sortedCopy([4, 4, 4])), [{ upToMs: 4, count: 3 }]);
    assert.deepEqual(histogram([]), []);
  });
});

describe('summarize', () => {
  test('reports count, extremes, average, rps over the window and the percentiles', () => {
    const summary = summarize([3, 1, 2, 4], 2000);
    assert.equal(summary.count, 4);
    assert.equal(summary.fastestMs, 1);
    assert.equal(summary.slowestMs, 4);
    assert.equal(summary.averageMs, 2.5);
    assert.equal(summary.rps, 2);
    assert.equal(summary.percentiles.p50, 2);
    assert.equal(summary.percentiles.p99, 4);
    assert.deepEqual(Object.keys(summary.percentiles), [
      'p10',
      'p25',
      'p50',
      'p75',
      'p90',
      'p95',
      'p99',
      'p99.9',
    ]);
  });
});

describe('median', () => {
  test('takes the middle value, or the mean of the middle two, ignoring non-finite values', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
    assert.equal(median([NaN, 5, Infinity]), 5);
    assert.ok(Number.isNaN(median([])));
  });
});
