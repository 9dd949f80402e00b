import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { hash64Hex, hashMod, hashPoint, xxh64, xxh64String } from './xxhash64';

const M = (1n << 64n) - 1n;
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

/** The specification transcribed with BigInt: slow and obviously 64-bit, to check the 32-bit one against. */
function reference(bytes: Uint8Array, seed: bigint): bigint {
  const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & M;
  const round = (acc: bigint, input: bigint) => (rotl((acc + input * P2) & M, 31n) * P1) & M;
  const merge = (acc: bigint, v: bigint) => ((acc ^ round(0n, v)) * P1 + P4) & M;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = bytes.length;
  let p = 0;
  let h: bigint;
  if (len >= 32) {
    let v1 = (seed + P1 + P2) & M;
    let v2 = (seed + P2) & M;
    let v3 = seed;
    let v4 = (seed - P1) & M;
    while (p + 32 <= len) {
      v1 = round(v1, view.getBigUint64(p, true));
      v2 = round(v2, view.getBigUint64(p + 8, true));
      v3 = round(v3, view.getBigUint64(p + 16, true));
      v4 = round(v4, view.getBigUint64(p + 24, true));
      p += 32;
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M;
    for (const v of [v1, v2, v3, v4]) h = merge(h, v);
  } else {
    h = (seed + P5) & M;
  }
  h = (h + BigInt(len)) & M;
  for (; p + 8 <= len; p += 8) {
    h = (rotl(h ^ round(0n, view.getBigUint64(p, true)), 27n) * P1 + P4) & M;
  }
  if (p + 4 <= len) {
    h = (rotl(h ^ ((BigInt(view.getUint32(p, true)) * P1) & M), 23n) * P2 + P3) & M;
    p += 4;
  }
  for (; p < len; p++) h = (rotl(h ^ ((BigInt(bytes[p]!) * P5) & M), 11n) * P1) & M;
  h ^= h >> 33n;
  h = (h * P2) & M;
  h ^= h >> 29n;
  h = (h * P3) & M;
  h ^= h >> 32n;
  return h;
}

const hex = (text: string, seed = 0) => hash64Hex(xxh64String(text, seed));

describe('xxh64', () => {
  test('matches the published reference vectors (seed 0)', () => {
    assert.equal(hex(''), 'ef46db3751d8e999');
    assert.equal(hex('a'), 'd24ec4f1a98c6e5b');
    assert.equal(hex('abc'), '44bc2cf5ad770999');
  });

  test('matches a BigInt transcription of the specification for every length 0-100 and a seed', () => {
    const bytes = Uint8Array.from({ length: 100 }, (_, i) => (i * 131 + 7) & 0xff);
    for (let length = 0; length <= 100; length++) {
      for (const seed of [0, 1, 0xffffffff]) {
        const slice = bytes.subarray(0, length);
        const expected = reference(slice, BigInt(seed)).toString(16).padStart(16, '0');
        assert.equal(hash64Hex(xxh64(slice, seed)), expected, `length ${length}, seed ${seed}`);
      }
    }
  });

  test('matches the BigInt transcription on random inputs and seeds', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (bytes, seed) => {
          const expected = reference(bytes, BigInt(seed)).toString(16).padStart(16, '0');
          assert.equal(hash64Hex(xxh64(bytes, seed)), expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('hashes text as its UTF-8 bytes', () => {
    for (const text of ['x-user-id', 'ünïcødé', '10.0.0.1:8080_17', '🙂'.repeat(40)]) {
      assert.equal(
        hash64Hex(xxh64String(text)),
        reference(new TextEncoder().encode(text), 0n).toString(16).padStart(16, '0'),
      );
    }
  });

  test('hashPoint keeps the top 53 bits in order; hashMod is the 64-bit remainder', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 40 }),
        fc.integer({ min: 1, max: 5_000_011 }),
        (bytes, m) => {
          const h = xxh64(bytes);
          const full = (BigInt(h.hi) << 32n) | BigInt(h.lo);
          assert.equal(BigInt(hashPoint(h)), full >> 11n);
          assert.equal(BigInt(hashMod(h, m)), full % BigInt(m));
        },
      ),
      { numRuns: 300 },
    );
  });
});
