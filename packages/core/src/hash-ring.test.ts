import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { HashRing, MaglevTable, ringScale, type HashEndpoint, type HashTable } from './hash-ring';
import { xxh64String } from './xxhash64';

const hosts = (n: number, weight = 1): HashEndpoint[] =>
  Array.from({ length: n }, (_, i) => ({ key: `10.0.${i >> 8}.${i & 0xff}:8080`, weight }));

const ownerOf = (table: HashTable, key: string): string =>
  table.keys[table.owners[table.slotOf(xxh64String(key))]!]!;

function entriesPerHost(table: HashTable): Map<string, number> {
  const counts = new Map<string, number>();
  for (const owner of table.owners) {
    const key = table.keys[owner]!;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

const KEYS = Array.from({ length: 4000 }, (_, i) => `user-${i}`);

function movedShare(before: HashTable, after: HashTable): { share: number; others: number } {
  let moved = 0;
  let others = 0;
  const changed = new Set(
    [...before.keys, ...after.keys].filter((k) => !before.index.has(k) || !after.index.has(k)),
  );
  for (const key of KEYS) {
    const a = ownerOf(before, key);
    const b = ownerOf(after, key);
    if (a === b) continue;
    moved++;
    if (!changed.has(a) && !changed.has(b)) others++;
  }
  return { share: moved / KEYS.length, others: others / KEYS.length };
}

describe('ring hash table', () => {
  test('entries in proportion to the weights, the lightest a power of two, at least minRingSize in all', () => {
    const ring = new HashRing(
      [
        { key: 'a:1', weight: 1 },
        { key: 'b:1', weight: 2 },
        { key: 'c:1', weight: 3 },
      ],
      1024,
      8_388_608,
    );
    // 1024 / 6 per unit of weight = 170.7, rounded up to 256.
    assert.deepEqual(Object.fromEntries(entriesPerHost(ring)), {
      'a:1': 256,
      'b:1': 512,
      'c:1': 768,
    });
    assert.equal(ring.points.length, 1536);
  });

  test('ring size: at least minRingSize, below twice it with equal weights, never above maxRingSize', () => {
    for (const n of [1, 3, 10, 100, 1000, 5000]) {
      const { size } = ringScale(Array(n).fill(1) as number[], 1024, 8_388_608);
      assert.ok(size >= 1024 && size < 2048 + n, `${n} endpoints: ring of ${size}`);
    }
    // Above the cap the counts scale down: 10,000 endpoints on at most 4096 entries.
    const capped = new HashRing(hosts(10_000), 1024, 4096);
    assert.equal(capped.points.length, 4096);
    assert.equal(capped.unplaced, 10_000 - 4096);
    assert.equal(new HashRing(hosts(10), 1024, 4096).unplaced, 0);
    const tiny = new HashRing(hosts(3), 4, 4);
    assert.equal(tiny.points.length, 4);
  });

  test('weight 0 puts an endpoint nowhere; no positive weight: an empty table', () => {
    const ring = new HashRing(
      [
        { key: 'a:1', weight: 0 },
        { key: 'b:1', weight: 1 },
      ],
      16,
      64,
    );
    assert.deepEqual(ring.keys, ['b:1']);
    assert.equal(new HashRing([{ key: 'a:1', weight: 0 }], 16, 64).owners.length, 0);
    assert.equal(new MaglevTable([], 7).owners.length, 0);
  });

  test('entries ascend and a hash goes to the first entry at or after it, wrapping', () => {
    const ring = new HashRing(hosts(5), 64, 1024);
    for (let i = 1; i < ring.points.length; i++) assert.ok(ring.points[i - 1]! <= ring.points[i]!);
    for (const key of KEYS.slice(0, 200)) {
      const h = xxh64String(key);
      const point = h.hi * 0x200000 + (h.lo >>> 11);
      const slot = ring.slotOf(h);
      const first = ring.points.findIndex((p) => p >= point);
      assert.equal(slot, first === -1 ? 0 : first);
    }
  });
});

describe('maglev table', () => {
  test('fills every slot; equal weights get equal slots within one', () => {
    const table = new MaglevTable(hosts(10), 65537);
    assert.equal(table.owners.length, 65537);
    assert.ok(table.owners.every((o) => o >= 0));
    const counts = [...entriesPerHost(table).values()];
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, counts.join(','));
  });

  test('slots in proportion to the weights', () => {
    const table = new MaglevTable(
      [
        { key: 'a:1', weight: 1 },
        { key: 'b:1', weight: 3 },
      ],
      65537,
    );
    const counts = entriesPerHost(table);
    const ratio = counts.get('b:1')! / counts.get('a:1')!;
    assert.ok(Math.abs(ratio - 3) < 0.01, `b/a = ${ratio}`);
  });

  test('endpoints without a slot are counted: more endpoints than slots, or too light a weight', () => {
    assert.equal(new MaglevTable(hosts(10), 65537).unplaced, 0);
    assert.equal(new MaglevTable(hosts(10), 7).unplaced, 3);
    const light = new MaglevTable(
      [
        { key: 'a:1', weight: 1000 },
        { key: 'b:1', weight: 1 },
      ],
      7,
    );
    assert.deepEqual([...entriesPerHost(light).keys()], ['a:1']);
    assert.equal(light.unplaced, 1);
  });
});

describe('consistent hashing properties', () => {
  const orders = fc
    .integer({ min: 2, max: 40 })
    .chain((n) => fc.tuple(fc.constant(n), fc.shuffledSubarray(hosts(n), { minLength: n })));

  for (const [name, build] of [
    ['ring hash', (e: readonly HashEndpoint[]) => new HashRing(e, 1024, 8_388_608)],
    ['maglev', (e: readonly HashEndpoint[]) => new MaglevTable(e, 65537)],
  ] as const) {
    test(`${name}: the table depends on the set of endpoints, not their order`, () => {
      fc.assert(
        fc.property(orders, ([n, shuffled]) => {
          const a = build(hosts(n));
          const b = build(shuffled);
          for (const key of KEYS.slice(0, 300)) assert.equal(ownerOf(a, key), ownerOf(b, key));
        }),
        { numRuns: 20 },
      );
    });

    test(`${name}: removing or adding one of N endpoints moves about 1/N of the keys`, () => {
      fc.assert(
        fc.property(fc.integer({ min: 3, max: 60 }), fc.nat(), fc.boolean(), (n, which, remove) => {
          const all = hosts(n);
          const fewer = all.filter((_, i) => i !== which % n);
          const [before, after] = remove ? [all, fewer] : [fewer, all];
          const lightestBefore = ringScale(Array(before.length).fill(1) as number[], 1024, 8e6);
          const lightestAfter = ringScale(Array(after.length).fill(1) as number[], 1024, 8e6);
          const { share, others } = movedShare(build(before), build(after));
          const expected = 1 / n;
          if (name === 'ring hash') {
            // Counts per endpoint change only when the total weight crosses a power of two.
            if (lightestBefore.scale / before.length !== lightestAfter.scale / after.length) return;
            assert.equal(others, 0, 'only keys of the endpoint that changed move');
            assert.ok(share <= 2.5 * expected + 0.01, `${n}: moved ${share}`);
          } else {
            assert.ok(share <= 1.6 * expected + 0.02, `${n}: moved ${share}`);
          }
          assert.ok(share >= 0.4 * expected - 0.01, `${n}: moved ${share}`);
        }),
        { numRuns: 25 },
      );
    });
  }

  test('ring hash: 10 equal endpoints, one removed: 10% ± 3 points of the keys move', () => {
    const all = hosts(10);
    for (let i = 0; i < 10; i++) {
      const { share } = movedShare(
        new HashRing(all, 1024, 8_388_608),
        new HashRing(
          all.filter((_, j) => j !== i),
          1024,
          8_388_608,
        ),
      );
      assert.ok(share >= 0.07 && share <= 0.13, `removing ${all[i]!.key}: ${share}`);
    }
  });
});
