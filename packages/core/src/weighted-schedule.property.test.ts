/**
 * The guarantees stated at the top of weighted-schedule.ts, checked over
 * generated weights and offsets. Each property runs in well under 2 s.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { EdfSchedule, SmoothWeightedRoundRobin } from './weighted-schedule';

/** Integer weights 0-`max`, at least one above 0. */
const integerWeights = (max: number, maxLength: number): fc.Arbitrary<number[]> =>
  fc
    .array(fc.nat(max), { minLength: 1, maxLength })
    .filter((weights) => weights.some((w) => w > 0));

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

function smoothPicks(weights: readonly number[], n: number): number[] {
  const schedule = new SmoothWeightedRoundRobin(weights.map((w, i) => [i, w] as const));
  return Array.from({ length: n }, () => schedule.pick()!);
}

/** prefix[i][n]: picks of item i among the first n. */
function prefixCounts(items: number, sequence: readonly number[]): number[][] {
  const prefix = Array.from({ length: items }, () => [0]);
  sequence.forEach((item, n) => {
    for (let i = 0; i < items; i++) prefix[i]!.push(prefix[i]![n]! + (item === i ? 1 : 0));
  });
  return prefix;
}

describe('SmoothWeightedRoundRobin properties (integer weights w_i, W = Σ w_i, k items above 0)', () => {
  test('every W consecutive picks, from any point, hold exactly w_i picks of item i; the picks repeat with period W', () => {
    fc.assert(
      fc.property(integerWeights(40, 8), (weights) => {
        const W = sum(weights);
        const sequence = smoothPicks(weights, 3 * W);
        const prefix = prefixCounts(weights.length, sequence);
        for (let start = 0; start + W <= sequence.length; start++) {
          weights.forEach((w, i) => {
            assert.equal(prefix[i]![start + W]! - prefix[i]![start]!, w, `item ${i} from ${start}`);
          });
          if (start + W < sequence.length) assert.equal(sequence[start + W], sequence[start]);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('no item is ever ahead of its share: after n picks, count_i − n·w_i/W ≤ (k−1)/k', () => {
    fc.assert(
      fc.property(integerWeights(60, 10), (weights) => {
        const W = sum(weights);
        const k = weights.filter((w) => w > 0).length;
        const sequence = smoothPicks(weights, W);
        const counts = weights.map(() => 0);
        sequence.forEach((item, index) => {
          counts[item]!++;
          const n = index + 1;
          weights.forEach((w, i) => {
            // Integers: (count·W − n·w)·k ≤ (k−1)·W, exact.
            assert.ok(
              (counts[i]! * W - n * w) * k <= (k - 1) * W,
              `item ${i} has ${counts[i]} of ${n} picks`,
            );
          });
        });
      }),
      { numRuns: 300 },
    );
  });

  test('no starvation: item i is never passed over more than W − w_i times in a row', () => {
    fc.assert(
      fc.property(integerWeights(40, 8), (weights) => {
        const W = sum(weights);
        const sequence = smoothPicks(weights, 2 * W);
        weights.forEach((w, i) => {
          if (w === 0) {
            assert.ok(!sequence.includes(i), `weight-0 item ${i} was picked`);
            return;
          }
          let run = 0;
          for (const item of sequence) {
            run = item === i ? 0 : run + 1;
            assert.ok(run <= W - w, `item ${i} passed over ${run} times`);
          }
        });
      }),
      { numRuns: 300 },
    );
  });

  test('scaling every weight by c gives the same picks', () => {
    fc.assert(
      fc.property(integerWeights(20, 6), fc.integer({ min: 2, max: 1000 }), (weights, c) => {
        const W = sum(weights);
        assert.deepEqual(
          smoothPicks(
            weights.map((w) => w * c),
            2 * W,
          ),
          smoothPicks(weights, 2 * W),
        );
      }),
      { numRuns: 200 },
    );
  });

  test('pick cost: the filter is asked exactly once per item of weight above 0, per pick', () => {
    fc.assert(
      fc.property(
        integerWeights(20, 12),
        fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
        (weights, accepts) => {
          const schedule = new SmoothWeightedRoundRobin(weights.map((w, i) => [i, w] as const));
          const positive = weights.filter((w) => w > 0).length;
          for (let n = 0; n < 50; n++) {
            let asked = 0;
            schedule.pick((_, i) => {
              asked++;
              return accepts[i]!;
            });
            assert.equal(asked, positive);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

/** Offsets as EdfSchedule uses them: multiples of 1/65536 below 1 (so the test knows them). */
const gridOffset = fc.integer({ min: 0, max: 65535 }).map((step) => step / 65536);

interface EdfRun {
  readonly weights: readonly number[];
  readonly offsets: readonly number[];
  readonly sequence: readonly number[];
}

function edfPicks(weights: readonly number[], offsets: readonly number[], n: number): EdfRun {
  let next = 0;
  const schedule = new EdfSchedule(
    weights.map((w, i) => [i, w] as const),
    () => offsets[next++]!,
  );
  return { weights, offsets, sequence: Array.from({ length: n }, () => schedule.pick()!) };
}

const positiveWeight = fc.oneof(
  fc.integer({ min: 1, max: 50 }),
  fc.double({ min: 0.01, max: 50, noNaN: true }),
);

const edfItems = (weight: fc.Arbitrary<number>, offset: fc.Arbitrary<number>) =>
  fc.array(fc.record({ weight, offset }), { minLength: 1, maxLength: 10 });

describe('EdfSchedule properties (weights w_i above 0, offsets o_i in [0, 1))', () => {
  test('no item is ever a whole pick ahead of another: (c_i − 1 + o_i)/w_i ≤ (c_j + o_j)/w_j after every pick', () => {
    fc.assert(
      fc.property(
        edfItems(positiveWeight, gridOffset),
        fc.integer({ min: 1, max: 400 }),
        (items, n) => {
          const weights = items.map((x) => x.weight);
          const offsets = items.map((x) => x.offset);
          const { sequence } = edfPicks(weights, offsets, n);
          const counts = weights.map(() => 0);
          for (const item of sequence) {
            counts[item]!++;
            weights.forEach((wi, i) => {
              if (counts[i] === 0) return;
              const last = (counts[i]! - 1 + offsets[i]!) / wi;
              weights.forEach((wj, j) => {
                assert.ok(last <= (counts[j]! + offsets[j]!) / wj, `item ${i} ahead of ${j}`);
              });
            });
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('no starvation: between two picks of item i (or before its first) at most Σ_{j≠i} (⌊w_j/w_i⌋ + 1) other picks', () => {
    fc.assert(
      fc.property(edfItems(positiveWeight, gridOffset), (items) => {
        const weights = items.map((x) => x.weight);
        const { sequence } = edfPicks(
          weights,
          items.map((x) => x.offset),
          Math.min(2000, Math.ceil(sum(weights) / Math.min(...weights)) * 3),
        );
        weights.forEach((wi, i) => {
          const bound = sum(weights.map((wj, j) => (j === i ? 0 : Math.floor(wj / wi) + 1)));
          let run = 0;
          for (const item of sequence) {
            run = item === i ? 0 : run + 1;
            assert.ok(run <= bound, `item ${i} (weight ${wi}) passed over ${run} > ${bound} times`);
          }
        });
      }),
      { numRuns: 300 },
    );
  });

  test('integer weights: after every m·W picks item i has exactly m·w_i, whatever random returns', () => {
    const anyRandom = fc.oneof(
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      fc.constantFrom(0, 1 - 2 ** -53, 0.9999999999999991, 0.5),
    );
    fc.assert(
      fc.property(
        edfItems(fc.integer({ min: 1, max: 30 }), anyRandom),
        fc.integer({ min: 1, max: 6 }),
        (items, cycles) => {
          const weights = items.map((x) => x.weight);
          const W = sum(weights);
          const { sequence } = edfPicks(
            weights,
            items.map((x) => x.offset),
            cycles * W,
          );
          const counts = weights.map(() => 0);
          sequence.forEach((item, index) => {
            counts[item]!++;
            if ((index + 1) % W === 0) {
              const m = (index + 1) / W;
              assert.deepEqual(
                counts,
                weights.map((w) => m * w),
                `after ${m} cycles`,
              );
            }
          });
        },
      ),
      { numRuns: 500 },
    );
  });

  test('over any run of m consecutive picks, item i has m·p_i picks within 1 + (k − 2)·p_i (p_i = w_i/W, k items)', () => {
    fc.assert(
      fc.property(
        edfItems(positiveWeight, gridOffset),
        fc.integer({ min: 1, max: 200 }),
        (items, n) => {
          const weights = items.map((x) => x.weight);
          const W = sum(weights);
          const k = weights.length;
          const { sequence } = edfPicks(
            weights,
            items.map((x) => x.offset),
            n,
          );
          const prefix = prefixCounts(k, sequence);
          weights.forEach((w, i) => {
            const p = w / W;
            const bound = 1 + (k - 2) * p + 1e-9;
            const counts = prefix[i]!;
            for (let start = 0; start < n; start++) {
              for (let end = start + 1; end <= n; end++) {
                const off = counts[end]! - counts[start]! - (end - start) * p;
                if (Math.abs(off) > bound) {
                  assert.fail(
                    `item ${i} (share ${p}) is ${off} picks off its share in picks ${start}-${end - 1}`,
                  );
                }
              }
            }
          });
        },
      ),
      { numRuns: 150 },
    );
  });

  test('the bound is nearly reached: a weight 10 among ten of weight 1 can go 10 picks without one (5 short of its share)', () => {
    const weights = [10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
    const { sequence } = edfPicks(
      weights,
      weights.map(() => 0),
      11,
    );
    assert.deepEqual(sequence, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  test('pick cost: at most 1 + 2·⌊log2 n⌋ deadline reads per pick among n items', () => {
    fc.assert(
      fc.property(
        fc.array(positiveWeight, { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 1, max: 2 ** 31 }),
        (weights, seed) => {
          let state = seed;
          const schedule = new EdfSchedule(
            weights.map((w, i) => [i, w] as const),
            () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32,
          );
          // Count the heap's reads of deadlines: that is the work of a pick.
          const internals = schedule as unknown as { deadlines: Float64Array };
          let reads = 0;
          internals.deadlines = new Proxy(internals.deadlines, {
            get(target, key) {
              if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
              return target[key as unknown as number];
            },
            set(target, key, value: number) {
              target[Number(key)] = value;
              return true;
            },
          });
          const bound = 1 + 2 * Math.floor(Math.log2(weights.length));
          for (let n = 0; n < 200; n++) {
            reads = 0;
            schedule.pick();
            assert.ok(reads <= bound, `${reads} reads > ${bound} among ${weights.length} items`);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
