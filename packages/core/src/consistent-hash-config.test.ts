import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CONSISTENT_HASH_POLICY,
  DEFAULT_CONSISTENT_HASH,
  HASH_KEY_HEADER,
  isPrime,
  parseConsistentHashConfig,
  setHashKey,
} from './consistent-hash-config';
import { ConfigError } from './errors';
import { parseOurPolicy } from './service-config';

describe('parseConsistentHashConfig', () => {
  test('defaults: ring hash (A42 min 1024, max 4096), Maglev table 65537, random fallback, no header', () => {
    assert.deepEqual(parseConsistentHashConfig({}), DEFAULT_CONSISTENT_HASH);
    assert.deepEqual(parseConsistentHashConfig(undefined), {
      algorithm: 'ring_hash',
      hashHeader: undefined,
      minRingSize: 1024,
      maxRingSize: 4096,
      tableSize: 65537,
      fallback: 'random',
    });
  });

  test('reads every field, camelCase or snake_case', () => {
    assert.deepEqual(
      parseConsistentHashConfig({
        hash_header: 'x-user-id',
        min_ring_size: 64,
        maxRingSize: 128,
        fallback: 'round_robin',
      }),
      {
        ...DEFAULT_CONSISTENT_HASH,
        hashHeader: 'x-user-id',
        minRingSize: 64,
        maxRingSize: 128,
        fallback: 'round_robin',
      },
    );
    assert.deepEqual(parseConsistentHashConfig({ algorithm: 'maglev', tableSize: 251 }), {
      ...DEFAULT_CONSISTENT_HASH,
      algorithm: 'maglev',
      tableSize: 251,
    });
    // A minRingSize above the default max raises the default max with it.
    assert.equal(parseConsistentHashConfig({ minRingSize: 10_000 }).maxRingSize, 10_000);
  });

  const rejects: [string, unknown, RegExp][] = [
    ['an unknown field', { ringSize: 1 }, /grpc-lb\.consistent_hash\.ringSize: unknown field/],
    [
      'an unknown algorithm',
      { algorithm: 'ketama' },
      /algorithm: expected one of "ring_hash", "maglev"/,
    ],
    [
      'minRingSize above maxRingSize',
      { minRingSize: 100, maxRingSize: 10 },
      /minRingSize: 100 is above maxRingSize 10/,
    ],
    [
      'a ring above the 8M cap',
      { maxRingSize: 8_388_609 },
      /maxRingSize: expected an integer 1-8388608/,
    ],
    [
      'a table size that is not prime',
      { algorithm: 'maglev', tableSize: 65536 },
      /tableSize: must be a prime number/,
    ],
    [
      'a table size above Envoy’s largest',
      { algorithm: 'maglev', tableSize: 5_000_101 },
      /tableSize: expected an integer 2-5000011/,
    ],
    [
      'ring sizes with maglev',
      { algorithm: 'maglev', minRingSize: 10 },
      /minRingSize: applies to algorithm "ring_hash", not "maglev"/,
    ],
    [
      'a table size with ring_hash',
      { tableSize: 251 },
      /tableSize: applies to algorithm "maglev", not "ring_hash"/,
    ],
    [
      'an upper-case header',
      { hashHeader: 'X-User' },
      /hashHeader: header names are lower-case \("x-user"\)/,
    ],
    ['a binary header', { hashHeader: 'x-id-bin' }, /hashHeader: "x-id-bin" is a binary header/],
    ['a reserved header', { hashHeader: 'grpc-timeout' }, /reserved by gRPC/],
    ['an empty header', { hashHeader: '' }, /hashHeader: expected a non-empty string/],
    ['a bad fallback', { fallback: 'first' }, /fallback: expected one of "random", "round_robin"/],
  ];
  for (const [what, json, message] of rejects) {
    test(`rejects ${what}, naming the field`, () => {
      assert.throws(
        () => parseConsistentHashConfig(json),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
      );
    });
  }

  test('is one of our policies for service config checks, beside the shared options', () => {
    assert.doesNotThrow(() =>
      parseOurPolicy(CONSISTENT_HASH_POLICY, { hashHeader: 'x-user-id', panicThreshold: 50 }),
    );
  });

  test('isPrime', () => {
    assert.deepEqual([1, 2, 3, 4, 65537, 65536, 5_000_011, 5_000_013].map(isPrime), [
      false,
      true,
      true,
      false,
      true,
      false,
      true,
      false,
    ]);
  });

  test('setHashKey puts the key in the reserved header', () => {
    const values = new Map<string, string>();
    const metadata = { set: (k: string, v: string) => void values.set(k, v) };
    assert.equal(setHashKey(metadata, 'tenant-7'), metadata);
    assert.deepEqual([...values], [[HASH_KEY_HEADER, 'tenant-7']]);
  });
});
