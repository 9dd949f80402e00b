/**
 * Deterministic weighted schedules: shares are exact over every cycle, not
 * random.
 *
 * - `SmoothWeightedRoundRobin` (nginx's algorithm): O(n) per pick, integer
 *   exact, spreads each item's picks evenly through the cycle (30/60/10 gives
 *   v2 v1 v2 v2 v1 v2 v3 v2 v1 v2 …). For a handful of items: route splits.
 * - `EdfSchedule` (earliest deadline first, as in Envoy): O(log n) per pick
 *   with a binary heap, for endpoint sets of any size. Item i is due at
 *   (picks_i + offset_i) / weight_i; the deadline is recomputed from counts,
 *   not accumulated, so there is no floating-point drift.
 *
 * Weight 0 items are never picked.
 */

export class SmoothWeightedRoundRobin<T> {
  private readonly items: T[] = [];
  private readonly weights: number[] = [];
  private readonly current: number[] = [];

  constructor(entries: Iterable<readonly [T, number]>) {
    for (const [item, weight] of entries) {
      this.items.push(item);
      this.weights.push(weight);
      this.current.push(0);
    }
  }

  get size(): number {
    return this.items.length;
  }

  /** The next item among those `available` accepts; undefined if none with weight > 0 is. */
  pick(available?: (item: T, index: number) => boolean): T | undefined {
    const index = this.choose(available);
    if (index < 0) return undefined;
    this.commit(index, available);
    return this.items[index];
  }

  /**
   * The index `pick` would return, without advancing the schedule (-1 if
   * none). With `commit` a caller advances only when the pick is used, so a
   * call queued while its subset connects does not consume a turn.
   */
  choose(available?: (item: T, index: number) => boolean): number {
    let best = -1;
    let bestValue = 0;
    for (let i = 0; i < this.items.length; i++) {
      const weight = this.weights[i]!;
      if (weight <= 0 || (available && !available(this.items[i]!, i))) continue;
      const value = this.current[i]! + weight;
      if (best < 0 || value > bestValue) {
        best = i;
        bestValue = value;
      }
    }
    return best;
  }

  /** Advances the schedule as if `index` had been picked under the same `available` filter. */
  commit(index: number, available?: (item: T, index: number) => boolean): void {
    let total = 0;
    for (let i = 0; i < this.items.length; i++) {
      const weight = this.weights[i]!;
      if (weight <= 0 || (available && !available(this.items[i]!, i))) continue;
      this.current[i]! += weight;
      total += weight;
    }
    this.current[index]! -= total;
  }

  itemAt(index: number): T {
    return this.items[index]!;
  }
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
      const offset = random();
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
