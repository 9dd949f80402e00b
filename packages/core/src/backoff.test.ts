import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff } from './backoff';

test('backoff grows by the multiplier, is capped, and resets', () => {
  const backoff = new Backoff({ initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0 });
  assert.deepEqual(
    [1, 2, 3, 4, 5].map(() => backoff.next()),
    [100, 200, 400, 800, 1000],
  );
  assert.equal(backoff.failures, 5);
  backoff.reset();
  assert.equal(backoff.next(), 100);
});

test('backoff jitter stays within its fraction and the cap', () => {
  const low = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.2, random: () => 0 });
  const high = new Backoff({ initialMs: 1000, maxMs: 5000, jitter: 0.2, random: () => 0.999999 });
  assert.equal(low.next(), 800);
  assert.equal(high.next(), 1200);
});
