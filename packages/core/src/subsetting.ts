/**
 * Subsetting: each client connects to `subsetSize` of the endpoints instead
 * of all of them. Pure functions: the option's parser, the two selections
 * and the client id lookup of the deterministic mode.
 *
 *     "subsetting": { "subsetSize": 20 }                               // random (gRFC A68)
 *     "subsetting": { "subsetSize": 20, "mode": "deterministic" }      // id from the environment
 *     "subsetting": { "subsetSize": 20, "mode": "deterministic", "clientId": 7 }
 *
 * - `random` (gRFC A68, rendezvous hashing): the client draws a random seed
 *   once; every endpoint is ranked by a hash of (seed, address) and the
 *   `subsetSize` lowest ranks are kept. An endpoint's rank never depends on
 *   the other endpoints, so adding or removing one endpoint changes at most
 *   one member of the subset; over many clients every endpoint is equally
 *   likely to be chosen, so connections spread evenly in expectation (not
 *   exactly: see the bench's fleet group).
 * - `deterministic` (Google SRE book, "Load Balancing in the Datacenter"):
 *   clients with dense ids 0, 1, 2, … are grouped into rounds of
 *   `k = ⌊endpoints / subsetSize⌋` clients; every round orders the endpoints
 *   by a hash seeded with the round number (the same order on every client of
 *   the round) and cuts that order into `k` slices, one per client of the
 *   round. Every endpoint is in exactly one slice per round, so connections
 *   per endpoint differ by at most one across complete rounds. Its price is
 *   churn: one endpoint added or removed moves the slices' boundaries (a few
 *   members per client change instead of at most one), and when
 *   `⌊endpoints / subsetSize⌋` changes every client's round and slice change
 *   and most members are replaced.
 *
 * With fewer endpoints than `subsetSize` every endpoint is kept.
 */
import { randomBytes } from 'node:crypto';
import { ConfigError } from './errors';
import { Fields, integer, oneOf, STRICT, type ParseContext } from './json-fields';

export type SubsettingMode = 'random' | 'deterministic';
export const SUBSETTING_MODES: readonly SubsettingMode[] = ['random', 'deterministic'];

export interface SubsettingConfig {
  /** Endpoints each client connects to (all of them when there are fewer). */
  readonly subsetSize: number;
  readonly mode: SubsettingMode;
  /**
   * Deterministic mode: this client's id; undefined to read it from the
   * environment (`GRPC_LB_CLIENT_ID`, else the ordinal ending `HOSTNAME`).
   */
  readonly clientId: number | undefined;
}

/** gRFC A68's default subset size. */
export const DEFAULT_SUBSET_SIZE = 20;
export const MAX_SUBSET_SIZE = 1_000_000;
/** The largest client id accepted (config, `GRPC_LB_CLIENT_ID` or `HOSTNAME`). */
export const MAX_CLIENT_ID = 2 ** 31 - 1;
export const CLIENT_ID_ENV = 'GRPC_LB_CLIENT_ID';

/** Parses the `subsetting` option of a policy; every rejection is a `ConfigError` naming the field. */
export function parseSubsetting(
  value: unknown,
  field: string,
  ctx: ParseContext = STRICT,
): SubsettingConfig {
  const f = Fields.of(value, field, ctx);
  f.only(['subsetSize', 'mode', 'clientId']);
  const subsetSize =
    f.read('subsetSize', (v, at) => integer(v, at, 1, MAX_SUBSET_SIZE)) ?? DEFAULT_SUBSET_SIZE;
  const mode = f.read('mode', (v, at) => oneOf(v, at, SUBSETTING_MODES)) ?? 'random';
  const clientId = f.read('clientId', (v, at) => integer(v, at, 0, MAX_CLIENT_ID));
  if (clientId !== undefined && mode !== 'deterministic') {
    throw new ConfigError(f.at('clientId'), 'is used only with "mode": "deterministic"');
  }
  return { subsetSize, mode, clientId };
}

/** The random seed of one client: 64 bits, as two unsigned 32-bit halves. */
export interface SubsetSeed {
  readonly hi: number;
  readonly lo: number;
}

/** A fresh random seed (drawn once per channel and kept for its life). */
export function randomSubsetSeed(): SubsetSeed {
  const bytes = randomBytes(8);
  return { hi: bytes.readUInt32LE(0), lo: bytes.readUInt32LE(4) };
}

/** MurmurHash3's finalizer: every input bit affects every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The rank of `key` under `seed`: an integer in [0, 2^53). Two 32-bit lanes
 * of MurmurHash3's mixing (one UTF-16 code unit per block), seeded with the
 * two halves of the seed, in one pass over the key.
 */
export function subsetRank(seed: SubsetSeed, key: string): number {
  let h1 = seed.hi | 0;
  let h2 = seed.lo | 0;
  for (let i = 0; i < key.length; i++) {
    let k = Math.imul(key.charCodeAt(i), 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    h1 ^= k;
    h1 = (Math.imul((h1 << 13) | (h1 >>> 19), 5) + 0xe6546b64) | 0;
    h2 ^= k;
    h2 = (Math.imul((h2 << 11) | (h2 >>> 21), 5) + 0x561ccd1b) | 0;
  }
  return fmix32(h1 ^ key.length) * 2 ** 21 + (fmix32(h2 ^ key.length) >>> 11);
}

/** `keys` without repeats, first occurrence kept. */
function unique(keys: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const key of keys) {
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(key);
  }
  return out;
}

/** The `k`-th smallest (0-based) of `values` (reordered in place): quickselect, O(n) on average. */
function kthSmallest(values: Float64Array, k: number): number {
  let lo = 0;
  let hi = values.length - 1;
  while (lo < hi) {
    // Median of three as the pivot keeps sorted or reversed input linear.
    const mid = (lo + hi) >>> 1;
    const a = values[lo]!;
    const b = values[mid]!;
    const c = values[hi]!;
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (values[i]! < pivot) i++;
      while (values[j]! > pivot) j--;
      if (i <= j) {
        const t = values[i]!;
        values[i] = values[j]!;
        values[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return values[k]!;
  }
  return values[k]!;
}

/**
 * The keys whose position in the order by (rank, key) is in [from, to), in
 * input order. `ranks[i]` is the rank of `keys[i]`; keys are distinct.
 * Exported for its tests.
 */
export function byRankPosition(
  keys: readonly string[],
  ranks: Float64Array,
  from: number,
  to: number,
): string[] {
  const n = keys.length;
  const scratch = ranks.slice();
  const low = from === 0 ? -Infinity : kthSmallest(scratch, from);
  const high = to >= n ? Infinity : kthSmallest(scratch, to);
  let lowTies = 0;
  let highTies = 0;
  for (let i = 0; i < n; i++) {
    if (ranks[i] === low) lowTies++;
    if (ranks[i] === high) highTies++;
  }
  if (lowTies > 1 || highTies > 1) {
    // Equal 53-bit ranks at a boundary (next to impossible): order those by key as well.
    const order = keys
      .map((key, i) => ({ key, rank: ranks[i]! }))
      .sort((a, b) => a.rank - b.rank || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const chosen = new Set(order.slice(from, to).map((r) => r.key));
    return keys.filter((key) => chosen.has(key));
  }
  const out: string[] = [];
  for (let i = 0; i < n; i++) if (ranks[i]! >= low && ranks[i]! < high) out.push(keys[i]!);
  return out;
}

function ranksOf(keys: readonly string[], seed: SubsetSeed): Float64Array {
  const ranks = new Float64Array(keys.length);
  for (let i = 0; i < keys.length; i++) ranks[i] = subsetRank(seed, keys[i]!);
  return ranks;
}

/**
 * Random subsetting (gRFC A68): the `subsetSize` keys of lowest rank under
 * `seed` (ties, which need equal 53-bit ranks, go to the smaller key).
 * Duplicate keys count once. Returns the chosen keys in input order.
 */
export function randomSubset(
  keys: readonly string[],
  subsetSize: number,
  seed: SubsetSeed,
): string[] {
  const all = unique(keys);
  if (all.length <= subsetSize) return all;
  return byRankPosition(all, ranksOf(all, seed), 0, subsetSize);
}

/** The seed every client of deterministic round `round` orders the endpoints with. */
export function roundSeed(round: number): SubsetSeed {
  return {
    hi: fmix32((round ^ 0x9e3779b9) | 0),
    lo: fmix32((Math.imul(round, 0x85ebca6b) ^ 0x7f4a7c15) | 0),
  };
}

/**
 * The keys in the order of deterministic round `round` (the same on every
 * client): a client's slice is a run of positions in it.
 */
export function roundOrder(keys: readonly string[], round: number): string[] {
  const seed = roundSeed(round);
  const ranked = unique(keys).map((key) => ({ key, rank: subsetRank(seed, key) }));
  ranked.sort((a, b) => a.rank - b.rank || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return ranked.map((r) => r.key);
}

/** Where client `clientId` sits among `endpoints` endpoints: its round, slot and the round's slice count. */
export function deterministicPlace(
  endpoints: number,
  subsetSize: number,
  clientId: number,
): { round: number; slot: number; slices: number } {
  const slices = Math.max(1, Math.floor(endpoints / subsetSize));
  return { round: Math.floor(clientId / slices), slot: clientId % slices, slices };
}

/**
 * Deterministic subsetting (SRE book): client `clientId`'s slice of its
 * round's order. The `k = ⌊n / subsetSize⌋` slices of a round partition the
 * `n` endpoints as evenly as possible, so a slice has `⌊n / k⌋` or
 * `⌈n / k⌉` keys: `subsetSize` or a few more, never fewer (below
 * `2 × subsetSize` endpoints the one slice is all of them). Duplicate keys
 * count once. Returns the chosen keys in input order.
 */
export function deterministicSubset(
  keys: readonly string[],
  subsetSize: number,
  clientId: number,
): string[] {
  const all = unique(keys);
  if (all.length <= subsetSize) return all;
  const { round, slot, slices } = deterministicPlace(all.length, subsetSize, clientId);
  const start = Math.floor((slot * all.length) / slices);
  const end = Math.floor(((slot + 1) * all.length) / slices);
  return byRankPosition(all, ranksOf(all, roundSeed(round)), start, end);
}

export type ClientIdSource = 'clientId' | typeof CLIENT_ID_ENV | 'HOSTNAME';

export type ClientIdLookup =
  | { readonly ok: true; readonly id: number; readonly source: ClientIdSource }
  | { readonly ok: false; readonly problem: string };

const DECIMAL = /^(0|[1-9]\d{0,9})$/;
/** A StatefulSet pod's hostname: `<name>-<ordinal>`. */
const ORDINAL_HOSTNAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?-(0|[1-9]\d{0,9})$/i;

/**
 * This client's id for deterministic subsetting: `configured` (the
 * `clientId` field), else `GRPC_LB_CLIENT_ID` (a decimal integer), else the
 * ordinal that ends `HOSTNAME` as in a StatefulSet's pods (`web-3` → 3).
 * A `GRPC_LB_CLIENT_ID` that is set but not an integer is a problem, not
 * skipped: the operator meant something by it.
 */
export function lookupClientId(
  configured: number | undefined,
  env: Readonly<Record<string, string | undefined>>,
): ClientIdLookup {
  if (configured !== undefined) return { ok: true, id: configured, source: 'clientId' };
  const fromEnv = env[CLIENT_ID_ENV];
  if (fromEnv !== undefined && fromEnv !== '') {
    const text = fromEnv.trim();
    if (!DECIMAL.test(text) || Number(text) > MAX_CLIENT_ID) {
      return {
        ok: false,
        problem: `${CLIENT_ID_ENV} is ${JSON.stringify(fromEnv)}, not an integer 0-${MAX_CLIENT_ID}`,
      };
    }
    return { ok: true, id: Number(text), source: CLIENT_ID_ENV };
  }
  const hostname = env['HOSTNAME'];
  const match = hostname === undefined ? null : ORDINAL_HOSTNAME.exec(hostname);
  if (match && Number(match[2]) <= MAX_CLIENT_ID) {
    return { ok: true, id: Number(match[2]), source: 'HOSTNAME' };
  }
  return {
    ok: false,
    problem:
      `no client id: no "clientId" in the config, ${CLIENT_ID_ENV} is not set` +
      (hostname
        ? `, and HOSTNAME ${JSON.stringify(hostname)} does not end in -<ordinal>`
        : ', and HOSTNAME is not set'),
  };
}
