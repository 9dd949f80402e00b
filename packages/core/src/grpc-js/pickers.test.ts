import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { RandomPicker } from './pickers';
import { CS, endpoint, outcomeOf, pickArgs } from './testing/split-pickers';

/** `n` evenly spaced draws in [0, 1): (j + ½) / n. */
function evenDraws(n: number): () => number {
  let j = 0;
  return () => (j++ % n) / n + 0.5 / n;
}

describe('RandomPicker', () => {
  test('weighted: over n evenly spaced draws, each endpoint gets n·w/W picks (±1); weight 0 or not finite never', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.nat(20), fc.constantFrom(0, 0.5, Infinity, NaN)), {
          minLength: 1,
          maxLength: 8,
        }),
        (weights) => {
          const ready = weights.map((_, i) => endpoint(`10.0.0.${i + 1}:80`, { state: CS.READY }));
          const weightOf = new Map(ready.map((c, i) => [c, weights[i]!]));
          const n = 1000;
          const picker = new RandomPicker(ready, (c) => weightOf.get(c)!, evenDraws(n));
          const usable = weights.map((w) => (w > 0 && Number.isFinite(w) ? w : 0));
          const total = usable.reduce((a, b) => a + b, 0);
          assert.equal(picker.size, usable.filter((w) => w > 0).length);
          if (total === 0) return;
          const counts = new Map<string, number>();
          const args = pickArgs();
          for (let i = 0; i < n; i++) {
            const key = outcomeOf(picker.pick(args));
            counts.set(key, (counts.get(key) ?? 0) + 1);
          }
          ready.forEach((c, i) => {
            const got = counts.get(c.key) ?? 0;
            if (usable[i] === 0) assert.equal(got, 0, `${c.key} has weight ${weights[i]}`);
            else assert.ok(Math.abs(got - (n * usable[i]!) / total) <= 1, `${c.key}: ${got}`);
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  test('unweighted: equal shares over evenly spaced draws, whatever the weights', () => {
    const ready = [1, 2, 3, 4].map((i) =>
      endpoint(`10.0.0.${i}:80`, { state: CS.READY, weight: i === 1 ? 0 : i }),
    );
    const picker = new RandomPicker(ready, undefined, evenDraws(400));
    const counts: Record<string, number> = {};
    for (let i = 0; i < 400; i++) {
      const key = outcomeOf(picker.pick(pickArgs()));
      counts[key] = (counts[key] ?? 0) + 1;
    }
    assert.deepEqual(Object.values(counts), [100, 100, 100, 100]);
  });
});
