/**
 * The lookup tables of `grpc-lb.consistent_hash`, pure: built from the
 * endpoints' keys and weights, asked for the slot of a request's hash. A
 * table never depends on the endpoints' order, only on the set, so every
 * client of a service with the same endpoint list sends a key to the same
 * endpoint.
 *
 * Ring hash (gRFC A42, after Karger et al. and Envoy's ketama ring): each
 * endpoint puts entries on a ring of 64-bit hashes, XXH64 of
 * `"<address>_<n>"`, as many as its share of the weight; a request goes to
 * the first entry at or after the XXH64 of its key. A42 sizes the ring to
 * just above `minRingSize`, so when an endpoint comes or goes every other
 * endpoint's entry count changes too, and about as many keys again move
 * between the endpoints that stayed. Here the lightest endpoint's entry
 * count is rounded up to a power of two instead: counts change only when
 * the total weight crosses a power of two, and in between adding or
 * removing one of N endpoints moves only about 1/N of the keys. The ring
 * still has at least `minRingSize` entries (below 2 × `minRingSize` with
 * equal weights) and never more than `maxRingSize`; above that cap every
 * count is scaled down as A42 does (the lightest endpoints may get none).
 *
 * Maglev (Eisenbud et al., NSDI 2016, as Envoy builds it): a table of a
 * prime number of slots; each endpoint walks its own permutation of the
 * slots (offset and skip from XXH64 of its address with seeds 0 and 1) and
 * takes its next free slot, in turns weighted by its weight, until the table
 * is full. A request goes to slot XXH64(key) mod size: O(1).
 */
import { hashMod, hashPoint, xxh64String, type Hash64 } from './xxhash64';

export interface HashEndpoint {
  /** The endpoint's address (`host:port`): what is hashed onto the table. */
  readonly key: string;
  /** Its share; 0 (or less) puts it nowhere. */
  readonly weight: number;
}

export interface HashTable {
  readonly algorithm: 'ring_hash' | 'maglev';
  /** The endpoints on the table, by the numbers `owners` holds (sorted by key). */
  readonly keys: readonly string[];
  /** Endpoint number by key. */
  readonly index: ReadonlyMap<string, number>;
  /** The endpoint number of each slot, in walking order (ring: ascending hash). */
  readonly owners: Int32Array;
  /** The slot a request with this hash goes to first (the next ones follow, wrapping). */
  slotOf(hash: Hash64): number;
  /** 1 for each endpoint number that owns at least one slot, else 0. */
  readonly placed: Uint8Array;
  /**
   * Endpoints of a weight above 0 that got no slot: a ring capped by
   * `maxRingSize`, a Maglev table with more endpoints than slots or one
   * whose lightest endpoints' turns never came before it was full.
   */
  readonly unplaced: number;
}

function positive(endpoints: readonly HashEndpoint[]): HashEndpoint[] {
  return endpoints
    .filter((e) => e.weight > 0 && Number.isFinite(e.weight))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function indexOf(keys: readonly string[]): Map<string, number> {
  return new Map(keys.map((k, i) => [k, i]));
}

/** Which of `count` endpoints own a slot of `owners`, and how many do not. */
function placement(owners: Int32Array, count: number): { placed: Uint8Array; unplaced: number } {
  const placed = new Uint8Array(count);
  let unplaced = count;
  for (const owner of owners) {
    if (owner >= 0 && placed[owner] === 0) {
      placed[owner] = 1;
      unplaced--;
    }
  }
  return { placed, unplaced };
}

/** Entries per endpoint of the lightest weight: see the file comment. */
export function ringScale(
  weights: readonly number[],
  minRingSize: number,
  maxRingSize: number,
): { scale: number; size: number } {
  let total = 0;
  let lightest = Infinity;
  for (const w of weights) {
    total += w;
    if (w < lightest) lightest = w;
  }
  // The ring has `scale` entries for the whole weight; the lightest endpoint gets k of them.
  const k = Math.max(1, 2 ** Math.ceil(Math.log2((minRingSize * lightest) / total)));
  const scale = Math.min((k * total) / lightest, maxRingSize);
  return { scale, size: Math.ceil(scale) };
}

export class HashRing implements HashTable {
  readonly algorithm = 'ring_hash';
  readonly keys: readonly string[];
  readonly index: ReadonlyMap<string, number>;
  /** hashPoint of each entry, ascending. */
  readonly points: Float64Array;
  readonly owners: Int32Array;
  readonly placed: Uint8Array;
  readonly unplaced: number;

  constructor(endpoints: readonly HashEndpoint[], minRingSize: number, maxRingSize: number) {
    const hosts = positive(endpoints);
    this.keys = hosts.map((h) => h.key);
    this.index = indexOf(this.keys);
    const total = hosts.reduce((sum, h) => sum + h.weight, 0);
    if (hosts.length === 0) {
      this.points = new Float64Array(0);
      this.owners = new Int32Array(0);
      ({ placed: this.placed, unplaced: this.unplaced } = placement(this.owners, 0));
      return;
    }
    const { scale, size } = ringScale(
      hosts.map((h) => h.weight),
      minRingSize,
      maxRingSize,
    );
    const points = new Float64Array(size + hosts.length);
    const owners = new Int32Array(size + hosts.length);
    let current = 0;
    let target = 0;
    hosts.forEach((host, i) => {
      // Fractions carry over from one endpoint to the next, so the ring has `scale` entries in all.
      target += (scale * host.weight) / total;
      for (let n = 0; current < target; n++, current++) {
        points[current] = hashPoint(xxh64String(`${host.key}_${n}`));
        owners[current] = i;
      }
    });
    const order = Array.from({ length: current }, (_, i) => i);
    // Equal points (1 in 2^53 per pair) fall back to the key order: still independent of input order.
    order.sort((a, b) => points[a]! - points[b]! || owners[a]! - owners[b]!);
    this.points = Float64Array.from(order, (i) => points[i]!);
    this.owners = Int32Array.from(order, (i) => owners[i]!);
    ({ placed: this.placed, unplaced: this.unplaced } = placement(this.owners, hosts.length));
  }

  get size(): number {
    return this.points.length;
  }

  /** The first entry at or after the hash, wrapping to entry 0 past the last. */
  slotOf(hash: Hash64): number {
    const point = hashPoint(hash);
    const points = this.points;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < point) lo = mid + 1;
      else hi = mid;
    }
    return lo === points.length ? 0 : lo;
  }
}

export class MaglevTable implements HashTable {
  readonly algorithm = 'maglev';
  readonly keys: readonly string[];
  readonly index: ReadonlyMap<string, number>;
  readonly owners: Int32Array;
  readonly placed: Uint8Array;
  readonly unplaced: number;

  /** `size` must be prime (every skip then walks every slot). */
  constructor(
    endpoints: readonly HashEndpoint[],
    readonly size: number,
  ) {
    const hosts = positive(endpoints);
    this.keys = hosts.map((h) => h.key);
    this.index = indexOf(this.keys);
    const table = new Int32Array(hosts.length === 0 ? 0 : size).fill(-1);
    this.owners = table;
    if (hosts.length === 0) {
      ({ placed: this.placed, unplaced: this.unplaced } = placement(table, 0));
      return;
    }
    const heaviest = Math.max(...hosts.map((h) => h.weight));
    const share = hosts.map((h) => h.weight / heaviest);
    const position = hosts.map((h) => hashMod(xxh64String(h.key, 0), size));
    const skip = hosts.map((h) => hashMod(xxh64String(h.key, 1), size - 1) + 1);
    const credit = new Float64Array(hosts.length);
    let filled = 0;
    while (filled < size) {
      for (let i = 0; i < hosts.length && filled < size; i++) {
        // Each turn an endpoint earns its share of a slot; the heaviest takes one every turn.
        credit[i]! += share[i]!;
        if (credit[i]! < 1) continue;
        credit[i]! -= 1;
        let at = position[i]!;
        while (table[at] !== -1) at = (at + skip[i]!) % size;
        table[at] = i;
        position[i] = (at + skip[i]!) % size;
        filled++;
      }
    }
    ({ placed: this.placed, unplaced: this.unplaced } = placement(table, hosts.length));
  }

  slotOf(hash: Hash64): number {
    return hashMod(hash, this.size);
  }
}
