import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EdfSchedule, SmoothWeightedRoundRobin } from './weighted-schedule';

/** A deterministic `random` in [0, 1): a 32-bit linear congruential generator. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function picks<T>(schedule: { pick(): T | undefined }, n: number): T[] {
  const out: T[] = [];
  for (let i = 0; i < n; i++) {
    const item = schedule.pick();
    assert.notEqual(item, undefined, `pick ${i} returned undefined`);
    out.push(item!);
  }
  return out;
}

function countOf<T>(items: readonly T[]): Map<T, number> {
  const counts = new Map<T, number>();
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1);
  return counts;
}

describe('SmoothWeightedRoundRobin', () => {
  const split = (): SmoothWeightedRoundRobin<string> =>
    new SmoothWeightedRoundRobin([
      ['v1', 30],
      ['v2', 60],
      ['v3', 10],
    ]);

  test('gives v1/v2/v3 exactly 3/6/1 of every 10 picks, window by window', () => {
    const sequence = picks(split(), 1000);
    for (let start = 0; start < sequence.length; start += 10) {
      const window = countOf(sequence.slice(start, start + 10));
      assert.deepEqual(
        [window.get('v1'), window.get('v2'), window.get('v3')],
        [3, 6, 1],
        `picks ${start}-${start + 9}: ${sequence.slice(start, start + 10).join(' ')}`,
      );
    }
  });

  test('spreads picks smoothly: v3 never twice within 10 picks, v2 never more than 2 in a row', () => {
    const sequence = picks(split(), 1000);
    let lastV3 = -Infinity;
    let v2Run = 0;
    sequence.forEach((item, i) => {
      if (item === 'v3') {
        assert.ok(i - lastV3 >= 10, `v3 at picks ${lastV3} and ${i}`);
        lastV3 = i;
      }
      v2Run = item === 'v2' ? v2Run + 1 : 0;
      assert.ok(v2Run <= 2, `v2 ${v2Run} times in a row ending at pick ${i}`);
    });
  });

  test('picks 30/60/10 in the documented order v2 v1 v2 v2 v1 v2 v3 v2 v1 v2, cycle after cycle', () => {
    const cycle = ['v2', 'v1', 'v2', 'v2', 'v1', 'v2', 'v3', 'v2', 'v1', 'v2'];
    assert.deepEqual(picks(split(), 30), [...cycle, ...cycle, ...cycle]);
  });

  test('gives exactly 3000/6000/1000 of 10,000 picks', () => {
    const counts = countOf(picks(split(), 10_000));
    assert.deepEqual([counts.get('v1'), counts.get('v2'), counts.get('v3')], [3000, 6000, 1000]);
  });

  test('with v3 unavailable, v1 and v2 share 30:60 = 1:2 in every 3 picks', () => {
    const schedule = split();
    const sequence: string[] = [];
    for (let i = 0; i < 300; i++) sequence.push(schedule.pick((item) => item !== 'v3')!);
    for (let start = 0; start < sequence.length; start += 3) {
      const window = countOf(sequence.slice(start, start + 3));
      assert.deepEqual([window.get('v1'), window.get('v2'), window.get('v3')], [1, 2, undefined]);
    }
  });

  test('the filter is given each item with its index, and excluding by index works', () => {
    const schedule = split();
    const seen = new Set<string>();
    const sequence: string[] = [];
    for (let i = 0; i < 80; i++) {
      sequence.push(
        schedule.pick((item, index) => {
          seen.add(`${item}@${index}`);
          return index !== 1;
        })!,
      );
    }
    assert.deepEqual([...seen].sort(), ['v1@0', 'v2@1', 'v3@2']);
    // 30:10 = 3:1 in every 4 picks.
    for (let start = 0; start < sequence.length; start += 4) {
      const window = countOf(sequence.slice(start, start + 4));
      assert.deepEqual([window.get('v1'), window.get('v2'), window.get('v3')], [3, undefined, 1]);
    }
  });

  test('goes back to exact 3/6/1 windows after a whole cycle with v3 unavailable', () => {
    const schedule = split();
    // A whole 30:60 cycle (3 picks, 90 weight) leaves every running total where it was.
    for (let i = 0; i < 3; i++) schedule.pick((item) => item !== 'v3');
    const window = countOf(picks(schedule, 10));
    assert.deepEqual([window.get('v1'), window.get('v2'), window.get('v3')], [3, 6, 1]);
  });

  test('never picks an item of weight 0 (or less)', () => {
    const schedule = new SmoothWeightedRoundRobin([
      ['zero', 0],
      ['a', 1],
      ['negative', -5],
      ['b', 2],
    ]);
    const counts = countOf(picks(schedule, 300));
    assert.deepEqual(
      [counts.get('zero'), counts.get('a'), counts.get('negative'), counts.get('b')],
      [undefined, 100, undefined, 200],
    );
  });

  const none: [string, () => string | undefined][] = [
    ['there are no items', () => new SmoothWeightedRoundRobin<string>([]).pick()],
    [
      'every weight is 0',
      () =>
        new SmoothWeightedRoundRobin([
          ['a', 0],
          ['b', 0],
        ]).pick(),
    ],
    ['the filter accepts no item', () => split().pick(() => false)],
    [
      'the filter accepts only weight-0 items',
      () =>
        new SmoothWeightedRoundRobin([
          ['a', 0],
          ['b', 5],
        ]).pick((item) => item === 'a'),
    ],
  ];
  for (const [when, pick] of none) {
    test(`returns undefined when ${when}`, () => {
      assert.equal(pick(), undefined);
    });
  }

  test('size counts every item given, weight 0 included', () => {
    assert.equal(split().size, 3);
    assert.equal(new SmoothWeightedRoundRobin([['a', 0]]).size, 1);
  });
});

describe('EdfSchedule', () => {
  const seeds = [1, 2, 42, 1234567, 0xdeadbeef];

  // Every pick is the earliest deadline (picks_i + offset_i) / w_i with offset_i in [0, 1), so
  // after any n picks each item is less than one pick ahead of any other in weighted time, and the
  // count of an item of share p = w/Σw among k items is within 1 + (k - 2)·p of n·p (±1 for two
  // items; up to ~1.6 with these weights for unlucky offsets: not ±1 in general).
  test('after every prefix of n ≤ 2000 picks, counts stay within the EDF bounds of n·w/Σw (weights 1,2,3,5,0,7)', () => {
    const weights = [1, 2, 3, 5, 0, 7];
    const total = weights.reduce((a, b) => a + b, 0);
    const k = weights.filter((w) => w > 0).length;
    for (let seed = 1; seed <= 40; seed++) {
      const schedule = new EdfSchedule(
        weights.map((w, i) => [i, w] as const),
        lcg(seed),
      );
      const counts = weights.map(() => 0);
      for (let n = 1; n <= 2000; n++) {
        counts[schedule.pick()!]!++;
        const where = `seed ${seed}, after ${n} picks ${JSON.stringify(counts)}`;
        weights.forEach((w, i) => {
          const share = w / total;
          assert.ok(
            Math.abs(counts[i]! - n * share) < 1 + (k - 2) * share,
            `${where}: item ${i} (weight ${w}) is too far from ${n * share}`,
          );
          if (n % total === 0) assert.equal(counts[i], n * share, `${where}: whole cycles`);
          weights.forEach((v, j) => {
            if (w > 0 && v > 0)
              assert.ok(
                (counts[i]! - 1) / w < (counts[j]! + 1) / v,
                `${where}: item ${i} is more than a pick ahead of item ${j}`,
              );
          });
        });
      }
    }
  });

  test('with two items, each has n·w/Σw picks ±1 after every prefix of n picks', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const schedule = new EdfSchedule(
        [
          ['a', 7],
          ['b', 11],
        ],
        lcg(seed),
      );
      let a = 0;
      for (let n = 1; n <= 2000; n++) {
        if (schedule.pick() === 'a') a++;
        assert.ok(Math.abs(a - (n * 7) / 18) <= 1, `seed ${seed}: a has ${a} of ${n} picks`);
      }
    }
  });

  test('leaves out weight-0 (and negative or NaN) items: size counts only the others', () => {
    const schedule = new EdfSchedule(
      [
        ['a', 1],
        ['zero', 0],
        ['b', 1],
        ['negative', -1],
        ['nan', NaN],
      ],
      lcg(7),
    );
    assert.equal(schedule.size, 2);
    const counts = countOf(picks(schedule, 100));
    assert.deepEqual([...counts.keys()].sort(), ['a', 'b']);
  });

  test('with equal weights is round robin: each of k items once in every k picks', () => {
    for (const seed of seeds) {
      const k = 7;
      const schedule = new EdfSchedule(
        Array.from({ length: k }, (_, i) => [i, 3] as const),
        lcg(seed),
      );
      const sequence = picks(schedule, 50 * k);
      // Any k consecutive picks, not only those aligned on k.
      for (let start = 0; start + k <= sequence.length; start++) {
        assert.deepEqual(
          [...sequence.slice(start, start + k)].sort((a, b) => a - b),
          [0, 1, 2, 3, 4, 5, 6],
          `seed ${seed}, picks ${start}-${start + k - 1}`,
        );
      }
    }
  });

  test('breaks equal deadlines in favour of the item listed first', () => {
    const schedule = new EdfSchedule(
      [
        ['a', 2],
        ['b', 1],
        ['c', 2],
        ['d', 1],
      ],
      () => 0.5,
    );
    // Deadlines (picks + 0.5) / w: a and c at 0.25, 0.75, 1.25…; b and d at 0.5, 1.5….
    assert.deepEqual(picks(schedule, 12), [
      'a',
      'c',
      'b',
      'd',
      'a',
      'c',
      'a',
      'c',
      'b',
      'd',
      'a',
      'c',
    ]);
  });

  test('works with non-integer weights (0.5 and 1.5 share 1:3)', () => {
    for (const seed of seeds) {
      const schedule = new EdfSchedule(
        [
          ['a', 0.5],
          ['b', 1.5],
        ],
        lcg(seed),
      );
      let a = 0;
      for (let n = 1; n <= 1000; n++) {
        if (schedule.pick() === 'a') a++;
        assert.ok(Math.abs(a - n / 4) <= 1, `seed ${seed}: a has ${a} of ${n} picks`);
      }
      assert.equal(a, 250);
    }
  });

  test('a 10,000-item schedule gives each item exactly its weight in picks per cycle', () => {
    const size = 10_000;
    const weights = Array.from({ length: size }, (_, i) => 1 + (i % 4)); // Σw = 25,000
    const total = weights.reduce((a, b) => a + b, 0);
    const schedule = new EdfSchedule(
      weights.map((w, i) => [i, w] as const),
      lcg(99),
    );
    assert.equal(schedule.size, size);
    const counts = weights.map(() => 0);
    const cycles = 4;
    for (let cycle = 1; cycle <= cycles; cycle++) {
      for (let n = 0; n < total; n++) counts[schedule.pick()!]!++;
      weights.forEach((w, i) => {
        if (counts[i] !== cycle * w)
          assert.fail(`after ${cycle} cycles item ${i} (weight ${w}) has ${counts[i]} picks`);
      });
    }
  });

  test('a 10,000-item schedule of equal weights picks each item once per 10,000 picks', () => {
    const size = 10_000;
    const schedule = new EdfSchedule(
      Array.from({ length: size }, (_, i) => [i, 1] as const),
      lcg(3),
    );
    const counts = new Array<number>(size).fill(0);
    for (let round = 1; round <= 3; round++) {
      for (let n = 0; n < size; n++) counts[schedule.pick()!]!++;
      assert.ok(
        counts.every((c) => c === round),
        `round ${round}`,
      );
    }
  });

  // Found by the whole-cycle property: offset 0.9999999999999991 put item 1's last pick of the
  // fifth cycle at deadline (9 + 0.9999999999999991) / 2, rounded to exactly 5, where item 0
  // (offset 0, listed first) was also due, so item 0 took the pick: 6/9/5 after 20 picks.
  test('an offset a hair below 1 still gives exact whole cycles (weights 1, 2, 1; offsets 0, 1 − 9e-16, 0)', () => {
    const offsets = [0, 0.9999999999999991, 0];
    let next = 0;
    const schedule = new EdfSchedule(
      [
        [0, 1],
        [1, 2],
        [2, 1],
      ],
      () => offsets[next++]!,
    );
    const counts = [0, 0, 0];
    for (let cycle = 1; cycle <= 5; cycle++) {
      for (let n = 0; n < 4; n++) counts[schedule.pick()!]!++;
      assert.deepEqual(counts, [cycle, 2 * cycle, cycle], `after ${cycle} cycles`);
    }
  });

  test('an injected random of exactly 1, or NaN, still gives offsets in [0, 1)', () => {
    for (const value of [1, NaN, -0.5]) {
      const schedule = new EdfSchedule(
        [
          ['a', 1],
          ['b', 1],
        ],
        () => value,
      );
      assert.deepEqual(
        countOf(picks(schedule, 10)),
        countOf(['a', 'b', 'a', 'b', 'a', 'b', 'a', 'b', 'a', 'b']),
        `random ${value}`,
      );
    }
  });

  test('pick returns undefined on an empty schedule', () => {
    assert.equal(new EdfSchedule([]).pick(), undefined);
    assert.equal(new EdfSchedule([['a', 0]]).pick(), undefined);
    assert.equal(new EdfSchedule([['a', 0]]).size, 0);
  });

  test('with Math.random by default, still keeps shares exact per cycle', () => {
    const schedule = new EdfSchedule([
      ['a', 1],
      ['b', 3],
    ]);
    const counts = countOf(picks(schedule, 400));
    assert.deepEqual([counts.get('a'), counts.get('b')], [100, 300]);
  });
});
