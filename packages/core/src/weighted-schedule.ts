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

interface EdfEntry<T> {
  readonly item: T;
  readonly weight: number;
  readonly offset: number;
  readonly order: number;
  picks: number;
  deadline: number;
}

export class EdfSchedule<T> {
  private readonly heap: EdfEntry<T>[] = [];

  /**
   * `random` spreads the first picks (each item starts at a random point of
   * its first period) so that many clients do not all start on the same item.
   */
  constructor(entries: Iterable<readonly [T, number]>, random: () => number = Math.random) {
    let order = 0;
    for (const [item, weight] of entries) {
      if (!(weight > 0)) continue;
      const offset = random();
      this.heap.push({ item, weight, offset, order: order++, picks: 0, deadline: offset / weight });
    }
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  get size(): number {
    return this.heap.length;
  }

  pick(): T | undefined {
    const top = this.heap[0];
    if (!top) return undefined;
    top.picks++;
    top.deadline = (top.picks + top.offset) / top.weight;
    this.down(0);
    return top.item;
  }

  private less(a: EdfEntry<T>, b: EdfEntry<T>): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.order < b.order);
  }

  private down(index: number): void {
    const heap = this.heap;
    const n = heap.length;
    const entry = heap[index]!;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.less(heap[right]!, heap[left]!) ? right : left;
      if (!this.less(heap[child]!, entry)) break;
      heap[index] = heap[child]!;
      index = child;
    }
    heap[index] = entry;
  }
}
