import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from './errors';
import { parseResilience } from './resilience-config';
import {
  byRankPosition,
  DEFAULT_SUBSET_SIZE,
  deterministicPlace,
  deterministicSubset,
  lookupClientId,
  parseSubsetting,
  randomSubset,
  randomSubsetSeed,
  roundOrder,
  subsetRank,
} from './subsetting';

function rejects(fn: () => unknown, field: string, reason: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.equal(e.field, field);
    assert.match(e.problem, reason);
    return true;
  });
}

const addresses = (n: number, from = 0): string[] =>
  Array.from({ length: n }, (_, i) => `10.${(i + from) >> 8}.${(i + from) & 255}.1:443`);

describe('parseSubsetting', () => {
  test('defaults: random, subset size 20 (gRFC A68), no client id', () => {
    assert.deepEqual(parseSubsetting({}, 'x'), {
      subsetSize: DEFAULT_SUBSET_SIZE,
      mode: 'random',
      clientId: undefined,
    });
    assert.equal(DEFAULT_SUBSET_SIZE, 20);
  });

  test('every field, in either spelling', () => {
    assert.deepEqual(parseSubsetting({ subsetSize: 3, mode: 'random' }, 'x'), {
      subsetSize: 3,
      mode: 'random',
      clientId: undefined,
    });
    assert.deepEqual(
      parseSubsetting({ subset_size: 30, mode: 'deterministic', client_id: 0 }, 'x'),
      { subsetSize: 30, mode: 'deterministic', clientId: 0 },
    );
  });

  const invalid: [string, unknown, string, RegExp][] = [
    ['not an object', 5, 'x', /expected an object/],
    ['subsetSize 0', { subsetSize: 0 }, 'x.subsetSize', /integer 1-1000000/],
    ['subsetSize 2.5', { subsetSize: 2.5 }, 'x.subsetSize', /integer/],
    ['subsetSize "3"', { subsetSize: '3' }, 'x.subsetSize', /integer/],
    ['mode "rendezvous"', { mode: 'rendezvous' }, 'x.mode', /"random", "deterministic"/],
    ['clientId -1', { mode: 'deterministic', clientId: -1 }, 'x.clientId', /integer 0-/],
    ['clientId "web-3"', { mode: 'deterministic', clientId: 'web-3' }, 'x.clientId', /integer/],
    ['clientId in random mode', { clientId: 3 }, 'x.clientId', /only with "mode": "deterministic"/],
    ['an unknown field', { size: 3 }, 'x.size', /unknown field.*subsetSize, mode, clientId/],
    ['subsetSize twice', { subsetSize: 3, subset_size: 4 }, 'x.subsetSize', /given twice/],
  ];
  for (const [name, json, field, reason] of invalid) {
    test(`${name} → ConfigError at ${field}`, () => {
      rejects(() => parseSubsetting(json, 'x'), field, reason);
    });
  }

  test('is one of the shared options: parsed with them, errors name the policy path', () => {
    assert.equal(parseResilience({}, 'p').subsetting, undefined);
    assert.deepEqual(parseResilience({ subsetting: { subsetSize: 5 } }, 'p').subsetting, {
      subsetSize: 5,
      mode: 'random',
      clientId: undefined,
    });
    rejects(
      () => parseResilience({ subsetting: { subsetSize: -1 } }, 'grpc-lb.round_robin'),
      'grpc-lb.round_robin.subsetting.subsetSize',
      /integer/,
    );
  });
});

describe('randomSubset (gRFC A68)', () => {
  const seed = { hi: 0x12345678, lo: 0x9abcdef0 };

  test('keeps the subsetSize endpoints of lowest rank, in input order', () => {
    const keys = addresses(50);
    const chosen = randomSubset(keys, 5, seed);
    assert.equal(chosen.length, 5);
    const byRank = [...keys].sort((a, b) => subsetRank(seed, a) - subsetRank(seed, b));
    assert.deepEqual(new Set(chosen), new Set(byRank.slice(0, 5)));
    assert.deepEqual(
      chosen,
      keys.filter((k) => chosen.includes(k)),
    );
  });

  test('fewer endpoints than subsetSize (or as many): all of them', () => {
    assert.deepEqual(randomSubset(addresses(3), 5, seed), addresses(3));
    assert.deepEqual(randomSubset(addresses(5), 5, seed), addresses(5));
    assert.deepEqual(randomSubset([], 5, seed), []);
  });

  test('duplicate addresses count once', () => {
    const keys = addresses(10);
    const chosen = randomSubset([...keys, ...keys], 4, seed);
    assert.equal(new Set(chosen).size, 4);
    assert.equal(chosen.length, 4);
  });

  test('the same seed gives the same subset whatever the resolver order', () => {
    const keys = addresses(40);
    const a = randomSubset(keys, 7, seed);
    const b = randomSubset([...keys].reverse(), 7, seed);
    assert.deepEqual(new Set(a), new Set(b));
  });

  test('another seed, another subset (a fresh seed per channel spreads clients)', () => {
    const keys = addresses(100);
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add(randomSubset(keys, 5, randomSubsetSeed()).join(','));
    assert.equal(seen.size, 20);
  });

  test('ranks are 53-bit integers', () => {
    for (const key of addresses(100)) {
      const rank = subsetRank(randomSubsetSeed(), key);
      assert.ok(Number.isSafeInteger(rank) && rank >= 0, String(rank));
    }
  });
});

describe('byRankPosition', () => {
  test('a run of positions in the order by rank, in input order', () => {
    const keys = ['a', 'b', 'c', 'd', 'e'];
    const ranks = Float64Array.from([50, 10, 40, 20, 30]);
    assert.deepEqual(byRankPosition(keys, ranks, 0, 2), ['b', 'd']);
    assert.deepEqual(byRankPosition(keys, ranks, 2, 4), ['c', 'e']);
    assert.deepEqual(byRankPosition(keys, ranks, 4, 5), ['a']);
  });

  test('equal ranks at a boundary are ordered by key', () => {
    const keys = ['z', 'y', 'x', 'w'];
    const ranks = Float64Array.from([7, 7, 7, 1]);
    assert.deepEqual(byRankPosition(keys, ranks, 0, 2), ['x', 'w']);
    assert.deepEqual(byRankPosition(keys, ranks, 2, 4), ['z', 'y']);
  });
});

describe('deterministicSubset (SRE book)', () => {
  test('places clients in rounds of ⌊n / subsetSize⌋ slots', () => {
    assert.deepEqual(deterministicPlace(300, 10, 0), { round: 0, slot: 0, slices: 30 });
    assert.deepEqual(deterministicPlace(300, 10, 29), { round: 0, slot: 29, slices: 30 });
    assert.deepEqual(deterministicPlace(300, 10, 30), { round: 1, slot: 0, slices: 30 });
    assert.deepEqual(deterministicPlace(1000, 30, 100), { round: 3, slot: 1, slices: 33 });
    assert.deepEqual(deterministicPlace(25, 20, 7), { round: 7, slot: 0, slices: 1 });
  });

  test('the clients of one round get disjoint slices covering every endpoint', () => {
    const keys = addresses(300);
    const seen = new Map<string, number>();
    for (let id = 30; id < 60; id++) {
      const subset = deterministicSubset(keys, 10, id);
      assert.equal(subset.length, 10);
      for (const key of subset) seen.set(key, (seen.get(key) ?? 0) + 1);
    }
    assert.equal(seen.size, 300);
    assert.ok([...seen.values()].every((n) => n === 1));
  });

  test('300 clients × 300 endpoints, 10 each: every endpoint has exactly 10 clients', () => {
    const keys = addresses(300);
    const load = new Map<string, number>();
    for (let id = 0; id < 300; id++) {
      for (const key of deterministicSubset(keys, 10, id)) load.set(key, (load.get(key) ?? 0) + 1);
    }
    assert.deepEqual(new Set(load.values()), new Set([10]));
  });

  test('an uneven split gives slices of subsetSize or a little more, never fewer', () => {
    const keys = addresses(1000);
    const sizes = new Set<number>();
    for (let id = 0; id < 33; id++) sizes.add(deterministicSubset(keys, 30, id).length);
    assert.deepEqual([...sizes].sort(), [30, 31]);
  });

  test('the same id gives the same subset whatever the resolver order; rounds order differently', () => {
    const keys = addresses(100);
    assert.deepEqual(
      new Set(deterministicSubset(keys, 10, 13)),
      new Set(deterministicSubset([...keys].reverse(), 10, 13)),
    );
    assert.notDeepEqual(roundOrder(keys, 0), roundOrder(keys, 1));
  });

  test('fewer endpoints than subsetSize: all of them', () => {
    assert.deepEqual(deterministicSubset(addresses(4), 10, 99), addresses(4));
  });
});

describe('lookupClientId', () => {
  test('the clientId field first, then GRPC_LB_CLIENT_ID, then the HOSTNAME ordinal', () => {
    const env = { GRPC_LB_CLIENT_ID: '7', HOSTNAME: 'web-3' };
    assert.deepEqual(lookupClientId(2, env), { ok: true, id: 2, source: 'clientId' });
    assert.deepEqual(lookupClientId(undefined, env), {
      ok: true,
      id: 7,
      source: 'GRPC_LB_CLIENT_ID',
    });
    assert.deepEqual(lookupClientId(undefined, { HOSTNAME: 'web-3' }), {
      ok: true,
      id: 3,
      source: 'HOSTNAME',
    });
    assert.deepEqual(
      lookupClientId(undefined, { HOSTNAME: 'api-server-0', GRPC_LB_CLIENT_ID: '' }),
      {
        ok: true,
        id: 0,
        source: 'HOSTNAME',
      },
    );
  });

  const none: [string, Record<string, string>, RegExp][] = [
    ['nothing set', {}, /HOSTNAME is not set/],
    [
      'a hostname without an ordinal',
      { HOSTNAME: 'laptop' },
      /"laptop" does not end in -<ordinal>/,
    ],
    ['an ordinal with a leading zero', { HOSTNAME: 'web-03' }, /does not end in -<ordinal>/],
    ['a bare number', { HOSTNAME: '12' }, /does not end in -<ordinal>/],
    [
      'GRPC_LB_CLIENT_ID not a number',
      { GRPC_LB_CLIENT_ID: 'web-3', HOSTNAME: 'web-3' },
      /GRPC_LB_CLIENT_ID is "web-3", not an integer/,
    ],
    ['GRPC_LB_CLIENT_ID negative', { GRPC_LB_CLIENT_ID: '-1' }, /not an integer/],
    [
      'GRPC_LB_CLIENT_ID too large',
      { GRPC_LB_CLIENT_ID: '9999999999' },
      /not an integer 0-2147483647/,
    ],
  ];
  for (const [name, env, problem] of none) {
    test(`no id: ${name}`, () => {
      const lookup = lookupClientId(undefined, env);
      assert.equal(lookup.ok, false);
      if (!lookup.ok) assert.match(lookup.problem, problem);
    });
  }
});
