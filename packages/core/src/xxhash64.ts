/**
 * XXH64 (xxHash, 64-bit variant; the hash gRPC's ring hash (A42), Envoy's
 * ring hash and Maglev, and A68 subsetting use), computed with 32-bit
 * integer arithmetic: no BigInt on the pick path. A 64-bit value is carried
 * as two unsigned 32-bit halves, `hi` and `lo`.
 *
 * The algorithm follows the published xxHash specification (Yann Collet,
 * "xxHash fast digest algorithm", XXH64 section); the unit tests check it
 * against the reference vectors and against a straightforward BigInt
 * transcription of the same specification.
 */

export interface Hash64 {
  /** The upper 32 bits, unsigned. */
  readonly hi: number;
  /** The lower 32 bits, unsigned. */
  readonly lo: number;
}

// The five primes of the specification, as [hi, lo].
const P1H = 0x9e3779b1;
const P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d;
const P2L = 0x27d4eb4f;
const P3H = 0x165667b1;
const P3L = 0x9e3779f9;
const P4H = 0x85ebca77;
const P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f;
const P5L = 0x165667c5;

// The result of the last 64-bit operation, [hi, lo]: a typed array, so that storing a value above
// 2^30 allocates no boxed number (a module-level `let` would, on every step).
const R = new Uint32Array(2);

/** (ah:al) × (bh:bl) mod 2^64 → R = [hi, lo]. */
function mul(ah: number, al: number, bh: number, bl: number): void {
  // al × bl in full, from 16-bit pieces whose products are exact in a double.
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const lo = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  const carry = a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  // The cross terms only reach the upper half, where their low 32 bits are all that count.
  R[0] = (carry + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
  R[1] = lo;
}

/** (ah:al) + (bh:bl) mod 2^64 → R = [hi, lo]. */
function add(ah: number, al: number, bh: number, bl: number): void {
  const lo = al + bl;
  R[1] = lo >>> 0;
  R[0] = (ah + bh + (lo > 0xffffffff ? 1 : 0)) >>> 0;
}

/** (h:l) rotated left by `r` bits, 0 < r < 32 → R = [hi, lo]. */
function rotl(h: number, l: number, r: number): void {
  R[0] = ((h << r) | (l >>> (32 - r))) >>> 0;
  R[1] = ((l << r) | (h >>> (32 - r))) >>> 0;
}

/** One round: acc + input × P2, rotated by 31, × P1 → R = [hi, lo]. */
function round(acch: number, accl: number, inh: number, inl: number): void {
  mul(inh, inl, P2H, P2L);
  add(acch, accl, R[0]!, R[1]!);
  rotl(R[0]!, R[1]!, 31);
  mul(R[0]!, R[1]!, P1H, P1L);
}

function read32(bytes: Uint8Array, at: number): number {
  return (
    (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0
  );
}

/**
 * XXH64 of `bytes[0..length)` with a seed of at most 32 bits (0 by
 * default; A42 and Envoy hash with seed 0).
 */
export function xxh64(bytes: Uint8Array, seed = 0, length = bytes.length): Hash64 {
  const s = seed >>> 0;
  let hh: number;
  let hl: number;
  let p = 0;
  if (length >= 32) {
    // v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed − P1.
    add(0, s, P1H, P1L);
    add(R[0]!, R[1]!, P2H, P2L);
    let v1h = R[0]!;
    let v1l = R[1]!;
    add(0, s, P2H, P2L);
    let v2h = R[0]!;
    let v2l = R[1]!;
    let v3h = 0;
    let v3l = s;
    // −P1 mod 2^64 is its two's complement.
    add(~P1H >>> 0, ~P1L >>> 0, 0, 1);
    add(R[0]!, R[1]!, 0, s);
    let v4h = R[0]!;
    let v4l = R[1]!;
    const limit = length - 32;
    do {
      round(v1h, v1l, read32(bytes, p + 4), read32(bytes, p));
      v1h = R[0]!;
      v1l = R[1]!;
      round(v2h, v2l, read32(bytes, p + 12), read32(bytes, p + 8));
      v2h = R[0]!;
      v2l = R[1]!;
      round(v3h, v3l, read32(bytes, p + 20), read32(bytes, p + 16));
      v3h = R[0]!;
      v3l = R[1]!;
      round(v4h, v4l, read32(bytes, p + 28), read32(bytes, p + 24));
      v4h = R[0]!;
      v4l = R[1]!;
      p += 32;
    } while (p <= limit);
    rotl(v1h, v1l, 1);
    hh = R[0]!;
    hl = R[1]!;
    rotl(v2h, v2l, 7);
    add(hh, hl, R[0]!, R[1]!);
    hh = R[0]!;
    hl = R[1]!;
    rotl(v3h, v3l, 12);
    add(hh, hl, R[0]!, R[1]!);
    hh = R[0]!;
    hl = R[1]!;
    rotl(v4h, v4l, 18);
    add(hh, hl, R[0]!, R[1]!);
    hh = R[0]!;
    hl = R[1]!;
    for (const [vh, vl] of [
      [v1h, v1l],
      [v2h, v2l],
      [v3h, v3l],
      [v4h, v4l],
    ] as const) {
      // Merge: h ^= round(0, v); h = h × P1 + P4.
      round(0, 0, vh, vl);
      mul((hh ^ R[0]!) >>> 0, (hl ^ R[1]!) >>> 0, P1H, P1L);
      add(R[0]!, R[1]!, P4H, P4L);
      hh = R[0]!;
      hl = R[1]!;
    }
  } else {
    add(0, s, P5H, P5L);
    hh = R[0]!;
    hl = R[1]!;
  }
  // h += length (a length fits in 53 bits: split it into its halves).
  add(hh, hl, Math.floor(length / 0x100000000) >>> 0, length >>> 0);
  hh = R[0]!;
  hl = R[1]!;
  for (; p + 8 <= length; p += 8) {
    round(0, 0, read32(bytes, p + 4), read32(bytes, p));
    rotl((hh ^ R[0]!) >>> 0, (hl ^ R[1]!) >>> 0, 27);
    mul(R[0]!, R[1]!, P1H, P1L);
    add(R[0]!, R[1]!, P4H, P4L);
    hh = R[0]!;
    hl = R[1]!;
  }
  if (p + 4 <= length) {
    mul(0, read32(bytes, p), P1H, P1L);
    rotl((hh ^ R[0]!) >>> 0, (hl ^ R[1]!) >>> 0, 23);
    mul(R[0]!, R[1]!, P2H, P2L);
    add(R[0]!, R[1]!, P3H, P3L);
    hh = R[0]!;
    hl = R[1]!;
    p += 4;
  }
  for (; p < length; p++) {
    mul(0, bytes[p]!, P5H, P5L);
    rotl((hh ^ R[0]!) >>> 0, (hl ^ R[1]!) >>> 0, 11);
    mul(R[0]!, R[1]!, P1H, P1L);
    hh = R[0]!;
    hl = R[1]!;
  }
  // Avalanche: h ^= h >> 33; h ×= P2; h ^= h >> 29; h ×= P3; h ^= h >> 32.
  hl = (hl ^ (hh >>> 1)) >>> 0;
  mul(hh, hl, P2H, P2L);
  hh = (R[0]! ^ (R[0]! >>> 29)) >>> 0;
  hl = (R[1]! ^ ((R[1]! >>> 29) | (R[0]! << 3))) >>> 0;
  mul(hh, hl, P3H, P3L);
  return { hi: R[0]!, lo: (R[1]! ^ R[0]!) >>> 0 };
}

const encoder = new TextEncoder();
let scratch = new Uint8Array(256);

/** XXH64 of the UTF-8 bytes of `text`. */
export function xxh64String(text: string, seed = 0): Hash64 {
  const n = text.length;
  // A UTF-16 code unit is at most 3 UTF-8 bytes.
  if (n * 3 > scratch.length) scratch = new Uint8Array(n * 3);
  // ASCII (the usual key) is copied here: cheaper than a call into the encoder.
  let i = 0;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) break;
    scratch[i] = c;
  }
  const length = i === n ? n : encoder.encodeInto(text, scratch).written;
  return xxh64(scratch, seed, length);
}

/** The hash as 16 lower-case hex digits. */
export function hash64Hex(hash: Hash64): string {
  return hash.hi.toString(16).padStart(8, '0') + hash.lo.toString(16).padStart(8, '0');
}

/**
 * The top 53 bits of the hash as an exact integer in a double, in
 * [0, 2^53): ordered as the full 64-bit values are (values equal in their
 * top 53 bits compare equal), and cheap to sort and binary-search in a
 * `Float64Array`.
 */
export function hashPoint(hash: Hash64): number {
  return hash.hi * 0x200000 + (hash.lo >>> 11);
}

/** The hash (as an unsigned 64-bit number) modulo `m`, for 0 < m ≤ 2^26. */
export function hashMod(hash: Hash64, m: number): number {
  // 2^32 mod m, and every product below stays under 2^52: exact.
  const base = 0x100000000 % m;
  return ((hash.hi % m) * base + (hash.lo % m)) % m;
}
