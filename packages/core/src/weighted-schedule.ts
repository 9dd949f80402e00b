/**
 * Deterministic weighted schedules: shares come from the order of picks, not
 * from chance. Weight 0 items are never picked.
 *
 * `SmoothWeightedRoundRobin` (nginx's algorithm), O(n) per pick, for a
 * handful of items (route splits). With integer weights w_i summing to W over
 * k items of weight above 0, from its creation:
 * - no item is ever ahead of its exact share: after n picks item i has at
 *   most n·w_i/W + (k−1)/k of them. The item picked has the largest
 *   current + weight, at least the mean W/k, so its current never drops
 *   below −W·(k−1)/k;
 * - so the picks repeat with period W: after W picks each current is a
 *   multiple of W, above −W, and they sum to 0, so all are 0 again. Every W
 *   consecutive picks, from any point on, hold exactly w_i picks of item i
 *   (30/60/10 gives v2 v1 v2 v2 v1 v2 v3 v2 v1 v2 over and over), and no item
 *   is passed over more than W − w_i times in a row.
 *
 * `EdfSchedule` (earliest deadline first, as in Envoy), O(log n) per pick
 * with a binary heap, for endpoint sets of any size. Item i is due at
 * (picks_i + offset_i) / weight_i with offset_i in [0, 1); the deadline is
 * recomputed from counts, not accumulated, so there is no drift. Then:
 * - no item is ever a whole pick ahead of another in weighted time:
 *   (picks_i − 1 + offset_i) / weight_i ≤ (picks_j + offset_j) / weight_j;
 * - between two picks of item i (or before its first) there are at most
 *   Σ over j ≠ i of (⌊weight_j / weight_i⌋ + 1) picks of others;
 * - with integer weights summing to W, after every m·W picks item i has
 *   exactly m·weight_i;
 * - over any run of m consecutive picks, item i of share p_i = weight_i / W
 *   (among k items) has m·p_i picks within 1 + (k − 2)·p_i. After a pick
 *   whose deadline is T (at the start, T = 0), every count lies in
 *   [weight_j·T − o_j, weight_j·T − o_j + 1], as picks come in deadline
 *   order; so over a run item j gets weight_j·ΔT + e_j picks with
 *   |e_j| ≤ 1, and with m = W·ΔT + Σ e_j, item i is off its share by
 *   e_i·(1 − p_i) − p_i·Σ_{j≠i} e_j.
 *   With two items that is ±1, but a heavy item among many light ones can
 *   fall nearly k − 1 picks behind when the light ones come due together.
 */

export class SmoothWeightedRoundRobin<T> {
  private readonly items: T[] = [];
  private readonly weights: number[] = [];
  private readonly current: number[] = [];
  /** Which items the filter accepted in the pick under way (each is asked once per pick). */
  private readonly accepted: Uint8Array;

  constructor(entries: Iterable<readonly [T, number]>) {
    for (const [item, weight] of entries) {
      this.items.push(item);
      this.weights.push(weight);
      this.current.push(0);
    }
    this.accepted = new Uint8Array(this.items.length);
  }

  get size(): number {
    return this.items.length;
  }

  /**
   * The next item among those `available` accepts (all by default);
   * undefined if none with weight > 0 is. Every pick advances the schedule.
   */
  pick(available?: (item: T, index: number) => boolean): T | undefined {
    const { items, weights, current, accepted } = this;
    let best = -1;
    let bestValue = 0;
    let total = 0;
    for (let i = 0; i < items.length; i++) {
      const weight = weights[i]!;
      const ok = weight > 0 && (available === undefined || available(items[i]!, i));
      accepted[i] = ok ? 1 : 0;
      if (!ok) continue;
      total += weight;
      const value = current[i]! + weight;
      if (best < 0 || value > bestValue) {
        best = i;
        bestValue = value;
      }
    }
    if (best < 0) return undefined;
    for (let i = 0; i < items.length; i++) {
      if (accepted[i] === 1) current[i]! += weights[i]!;
    }
    current[best]! -= total;
    return items[best];
  }
}

/**
 * Offsets are multiples of 1/65536 below 1. The last pick of a whole cycle m
 * is then due at least 1/(65536·weight) before m, far more than the rounding
 * of the division for the first 10^11 picks of an item, so every whole cycle
 * ends with each item at exactly its count. An offset as close to 1 as
 * `Math.random` can return would be rounded up to the next cycle, giving that
 * pick to another item.
 */
const OFFSET_STEPS = 65536;

function quantizeOffset(random: number): number {
  const step = Math.floor(random * OFFSET_STEPS);
  return step >= 0 ? Math.min(step, OFFSET_STEPS - 1) / OFFSET_STEPS : 0;
}

export class EdfSchedule<T> {
  // Parallel typed arrays and an index heap: picks at 10,000 entries stay in cache.
  private readonly items: T[] = [];
  private readonly weights: Float64Array;
  private readonly offsets: Float64Array;
  private readonly picks: Float64Array;
  private readonly deadlines: Float64Array;
  private readonly heap: Int32Array;

  /**
   * `random` spreads the first picks (each item starts at a random point of
   * its first period) so that many clients do not all start on the same item.
   */
  constructor(entries: Iterable<readonly [T, number]>, random: () => number = Math.random) {
    const weights: number[] = [];
    for (const [item, weight] of entries) {
      if (!(weight > 0)) continue;
      this.items.push(item);
      weights.push(weight);
    }
    const n = this.items.length;
    this.weights = Float64Array.from(weights);
    this.offsets = new Float64Array(n);
    this.picks = new Float64Array(n);
    this.deadlines = new Float64Array(n);
    this.heap = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const offset = quantizeOffset(random());
      this.offsets[i] = offset;
      this.deadlines[i] = offset / weights[i]!;
      this.heap[i] = i;
    }
    for (let i = (n >> 1) - 1; i >= 0; i--) this.down(i);
  }

  get size(): number {
    return this.items.length;
  }

  pick(): T | undefined {
    if (this.items.length === 0) return undefined;
    const top = this.heap[0]!;
    const picks = ++this.picks[top]!;
    this.deadlines[top] = (picks + this.offsets[top]!) / this.weights[top]!;
    this.down(0);
    return this.items[top];
  }

  private down(index: number): void {
    const heap = this.heap;
    const deadlines = this.deadlines;
    const n = heap.length;
    const entry = heap[index]!;
    const deadline = deadlines[entry]!;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      let childDeadline = deadlines[heap[left]!]!;
      if (right < n) {
        const rightDeadline = deadlines[heap[right]!]!;
        if (
          rightDeadline < childDeadline ||
          (rightDeadline === childDeadline && heap[right]! < heap[left]!)
        ) {
          child = right;
          childDeadline = rightDeadline;
        }
      }
      if (childDeadline > deadline || (childDeadline === deadline && heap[child]! > entry)) break;
      heap[index] = heap[child]!;
      index = child;
    }
    heap[index] = entry;
  }
}
