import type { experimental } from '@grpc/grpc-js';
import { EdfSchedule } from '../weighted-schedule';
import type { EndpointChild } from './endpoint-policy';

/**
 * Rotates over `ready`, starting where the previous picker of the same
 * `scope` (kept in `memo`) would have gone next, else at a random child.
 */
export class RoundRobinPicker implements experimental.Picker {
  private next: number;

  constructor(
    private readonly ready: readonly EndpointChild[],
    memo: Map<string, unknown>,
    scope: string,
  ) {
    const memoKey = `round_robin:${scope}`;
    const previous = memo.get(memoKey);
    let start = Math.floor(Math.random() * ready.length);
    if (previous instanceof RoundRobinPicker) {
      const nextKey = previous.peekKey();
      const at = ready.findIndex((c) => c.key === nextKey);
      if (at >= 0) start = at;
    }
    this.next = start;
    memo.set(memoKey, this);
  }

  pick(args: experimental.PickArgs): experimental.PickResult {
    const child = this.ready[this.next]!;
    this.next = this.next + 1 === this.ready.length ? 0 : this.next + 1;
    return child.picker.pick(args);
  }

  private peekKey(): string | undefined {
    return this.ready[this.next]?.key;
  }
}

/**
 * Picks uniformly at random among `ready`; with `weightOf`, in proportion
 * to the weights instead (children of weight 0 never; `size` 0 when no
 * child has a positive weight).
 */
export class RandomPicker implements experimental.Picker {
  private readonly children: readonly EndpointChild[];
  /** Running sums of the weights, when weighted. */
  private readonly sums: Float64Array | undefined;

  constructor(
    ready: readonly EndpointChild[],
    weightOf?: (child: EndpointChild) => number,
    private readonly random: () => number = Math.random,
  ) {
    if (!weightOf) {
      this.children = ready;
      this.sums = undefined;
      return;
    }
    const weighted = ready
      .map((c) => [c, weightOf(c)] as const)
      .filter(([, w]) => w > 0 && Number.isFinite(w));
    this.children = weighted.map(([c]) => c);
    this.sums = new Float64Array(weighted.length);
    let total = 0;
    weighted.forEach(([, w], i) => (this.sums![i] = total += w));
  }

  get size(): number {
    return this.children.length;
  }

  pick(args: experimental.PickArgs): experimental.PickResult {
    const n = this.children.length;
    const sums = this.sums;
    let at: number;
    if (!sums) {
      at = Math.floor(this.random() * n);
    } else {
      // The first running sum above a point drawn in [0, total).
      const point = this.random() * sums[n - 1]!;
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (sums[mid]! > point) hi = mid;
        else lo = mid + 1;
      }
      at = lo;
    }
    return this.children[Math.min(at, n - 1)]!.picker.pick(args);
  }
}

/**
 * Smooth weighted picks (earliest deadline first; the bounds on its shares
 * are in weighted-schedule.ts). Weight 0 children get nothing. `size` 0
 * means no ready child has a positive weight.
 */
export class WeightedPicker implements experimental.Picker {
  private readonly schedule: EdfSchedule<EndpointChild>;

  constructor(
    ready: readonly EndpointChild[],
    weightOf: (child: EndpointChild) => number,
    private readonly onEmpty: experimental.Picker,
  ) {
    this.schedule = new EdfSchedule(ready.map((c) => [c, weightOf(c)] as const));
  }

  get size(): number {
    return this.schedule.size;
  }

  pick(args: experimental.PickArgs): experimental.PickResult {
    const child = this.schedule.pick();
    return child ? child.picker.pick(args) : this.onEmpty.pick(args);
  }
}
