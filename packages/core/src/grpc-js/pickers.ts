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
