/**
 * The guarantees stated at the top of subsetting.ts, over generated
 * endpoint lists, seeds and client ids.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  deterministicPlace,
  deterministicSubset,
  randomSubset,
  roundOrder,
  subsetRank,
  type SubsetSeed,
} from './subsetting';

const seedArb: fc.Arbitrary<SubsetSeed> = fc.record({
  hi: fc.nat({ max: 0xffffffff }),
  lo: fc.nat({ max: 0xffffffff }),
});

/** Distinct `host:port` addresses. */
const addressesArb = (minLength: number, maxLength: number): fc.Arbitrary<string[]> =>
  fc.uniqueArray(
    fc
      .tuple(fc.nat(255), fc.nat(255), fc.integer({ min: 1, max: 65535 }))
      .map(([a, b, port]) => `10.0.${a}.${b}:${port}`),
    { minLength, maxLength },
  );

/** An endpoint list, an address not in it, and a position. */
const listAndExtraArb = addressesArb(1, 120).chain((keys) =>
  fc.tuple(
    fc.constant(keys),
    fc
      .tuple(fc.nat(255), fc.nat(255))
      .map(([a, b]) => `10.1.${a}.${b}:443`)
      .filter((k) => !keys.includes(k)),
    fc.nat(keys.length),
  ),
);

const changed = (before: readonly string[], after: readonly string[]) => {
  const a = new Set(before);
  const b = new Set(after);
  return {
    left: [...a].filter((k) => !b.has(k)),
    joined: [...b].filter((k) => !a.has(k)),
  };
};

describe('random subsetting properties (gRFC A68)', () => {
  test('the subset is the subsetSize keys of lowest rank (checked against a full sort)', () => {
    fc.assert(
      fc.property(
        addressesArb(0, 200),
        fc.integer({ min: 1, max: 60 }),
        seedArb,
        (keys, size, seed) => {
          const sorted = [...keys].sort((a, b) => subsetRank(seed, a) - subsetRank(seed, b));
          assert.deepEqual(new Set(randomSubset(keys, size, seed)), new Set(sorted.slice(0, size)));
        },
      ),
    );
  });

  test('the subset has min(n, subsetSize) distinct members, all from the list', () => {
    fc.assert(
      fc.property(
        addressesArb(0, 150),
        fc.integer({ min: 1, max: 60 }),
        seedArb,
        (keys, size, seed) => {
          const subset = randomSubset(keys, size, seed);
          assert.equal(subset.length, Math.min(keys.length, size));
          assert.equal(new Set(subset).size, subset.length);
          for (const key of subset) assert.ok(keys.includes(key));
        },
      ),
    );
  });

  test('one endpoint added changes at most one member (it joins, one leaves)', () => {
    fc.assert(
      fc.property(
        listAndExtraArb,
        fc.integer({ min: 1, max: 40 }),
        seedArb,
        ([keys, extra, at], size, seed) => {
          const before = randomSubset(keys, size, seed);
          const after = randomSubset([...keys.slice(0, at), extra, ...keys.slice(at)], size, seed);
          const { left, joined } = changed(before, after);
          assert.ok(
            joined.length <= 1 && left.length <= 1,
            `left ${left.join()} joined ${joined.join()}`,
          );
          if (joined.length === 1) assert.equal(joined[0], extra);
          if (keys.length >= size) assert.equal(left.length, joined.length);
        },
      ),
    );
  });

  test('one endpoint removed changes at most one member (its replacement, when it was one)', () => {
    fc.assert(
      fc.property(
        addressesArb(1, 120),
        fc.nat(),
        fc.integer({ min: 1, max: 40 }),
        seedArb,
        (keys, i, size, seed) => {
          const removed = keys[i % keys.length]!;
          const before = randomSubset(keys, size, seed);
          const after = randomSubset(
            keys.filter((k) => k !== removed),
            size,
            seed,
          );
          const { left, joined } = changed(before, after);
          assert.ok(left.length <= 1 && joined.length <= 1);
          if (before.includes(removed)) assert.deepEqual(left, [removed]);
          else assert.deepEqual({ left, joined }, { left: [], joined: [] });
        },
      ),
    );
  });

  test('deterministic per seed: the same list (in any order) and seed give the same subset', () => {
    fc.assert(
      fc.property(
        addressesArb(0, 100),
        fc.integer({ min: 1, max: 30 }),
        seedArb,
        fc.nat(),
        (keys, size, seed, shift) => {
          const rotated = keys.map((_, i) => keys[(i + shift) % keys.length]!);
          assert.deepEqual(
            new Set(randomSubset(keys, size, seed)),
            new Set(randomSubset(rotated, size, seed)),
          );
        },
      ),
    );
  });
});

describe('deterministic subsetting properties (SRE book)', () => {
  test("a client's subset is its slice of its round's order (checked against a full sort)", () => {
    fc.assert(
      fc.property(
        addressesArb(1, 200),
        fc.integer({ min: 1, max: 40 }),
        fc.nat(5000),
        (keys, size, id) => {
          fc.pre(keys.length > size);
          const { round, slot, slices } = deterministicPlace(keys.length, size, id);
          const order = roundOrder(keys, round);
          const slice = order.slice(
            Math.floor((slot * keys.length) / slices),
            Math.floor(((slot + 1) * keys.length) / slices),
          );
          assert.deepEqual(new Set(deterministicSubset(keys, size, id)), new Set(slice));
        },
      ),
    );
  });

  test('the clients of one round get disjoint slices that cover every endpoint', () => {
    fc.assert(
      fc.property(
        addressesArb(1, 150),
        fc.integer({ min: 1, max: 40 }),
        fc.nat(50),
        (keys, size, round) => {
          const { slices } = deterministicPlace(keys.length, size, 0);
          const seen = new Map<string, number>();
          for (let slot = 0; slot < slices; slot++) {
            const subset = deterministicSubset(keys, size, round * slices + slot);
            if (keys.length > size) {
              assert.ok(subset.length >= size && subset.length < 2 * size, `size ${subset.length}`);
            } else {
              assert.equal(subset.length, keys.length);
            }
            for (const key of subset) seen.set(key, (seen.get(key) ?? 0) + 1);
          }
          assert.equal(seen.size, keys.length);
          for (const n of seen.values()) assert.equal(n, 1);
        },
      ),
    );
  });

  test('deterministic per client id: the same list (in any order) and id give the same subset', () => {
    fc.assert(
      fc.property(
        addressesArb(0, 100),
        fc.integer({ min: 1, max: 30 }),
        fc.nat(10_000),
        fc.nat(),
        (keys, size, id, shift) => {
          const rotated = keys.map((_, i) => keys[(i + shift) % keys.length]!);
          assert.deepEqual(
            new Set(deterministicSubset(keys, size, id)),
            new Set(deterministicSubset(rotated, size, id)),
          );
        },
      ),
    );
  });

  test('one endpoint added while ⌊n / subsetSize⌋ stays: each client keeps all but at most 2 members', () => {
    fc.assert(
      fc.property(
        listAndExtraArb,
        fc.integer({ min: 1, max: 20 }),
        fc.nat(500),
        ([keys, extra, at], size, id) => {
          const grown = [...keys.slice(0, at), extra, ...keys.slice(at)];
          fc.pre(
            keys.length > size &&
              Math.floor(keys.length / size) === Math.floor(grown.length / size),
          );
          const { left } = changed(
            deterministicSubset(keys, size, id),
            deterministicSubset(grown, size, id),
          );
          assert.ok(left.length <= 2, `left ${left.length}`);
        },
      ),
    );
  });
});
