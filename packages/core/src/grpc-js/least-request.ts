/**
 * `grpc-lb.least_request`: for each call, sample `choiceCount` distinct
 * endpoints at random and take the cheapest (power of two choices with peak
 * EWMA, as Linkerd, Finagle and tower balance):
 *
 *   cost = latency estimate × (calls in flight + 1) ÷ weight
 *
 * The latency estimate (endpoint-stats.ts) decays toward 0 while an
 * endpoint gets no calls and is forgotten after 3 time constants (30 s), so
 * an endpoint avoided after a slow call is tried again within 30 s. An
 * endpoint with no estimate costs defaultLatency × calls in flight: nothing
 * while it has none, so a new or long-unused endpoint gets one call at once
 * and more once that call has answered. Equal costs are broken at random.
 */
import {
  LEAST_REQUEST_POLICY,
  parseLeastRequestConfig,
  type LeastRequestConfig,
} from '../least-request-config';
import { createEndpointPolicy, type EndpointChild, type PolicyClasses } from './endpoint-policy';
import type { LeastRequestTally } from '../metrics';
import type { Runtime } from './runtime';
import type { experimental } from '@grpc/grpc-js';

export interface LeastRequestPickerOptions {
  /** The clock the endpoints' latency samples are stamped with, in ms (the balancer's is `performance.now`). */
  readonly now?: () => number;
  /** A number in [0, 1). */
  readonly random?: () => number;
  /** Counts how each pick chose (`grpc_lb.least_request.picks`). */
  readonly tally?: LeastRequestTally | undefined;
}

/**
 * The cheapest of `choiceCount` distinct items drawn at random (all of them
 * when there are no more), ties broken at random. `cost` is called once for
 * each item drawn, and for no other. `tally`, when given, counts how the
 * item was chosen.
 */
export function pickCheapest<T>(
  items: readonly T[],
  choiceCount: number,
  cost: (item: T) => number,
  random: () => number,
  tally?: LeastRequestTally,
): T {
  const n = items.length;
  if (n === 1) {
    if (tally) tally.only++;
    return items[0]!;
  }
  let best: T = items[0]!;
  let bestCost = Infinity;
  let ties = 0;
  const consider = (item: T): void => {
    const c = cost(item);
    if (ties === 0 || c < bestCost) {
      best = item;
      bestCost = c;
      ties = 1;
    } else if (c === bestCost) {
      // Keeps each of the tied items with the same chance, whatever order they come in.
      ties++;
      if (random() * ties < 1) best = item;
    }
  };
  const k = Math.min(choiceCount, n);
  if (k === n) {
    for (const item of items) consider(item);
  } else if (k === 2) {
    const first = Math.floor(random() * n);
    let second = Math.floor(random() * (n - 1));
    if (second >= first) second++;
    consider(items[first]!);
    consider(items[second]!);
  } else {
    // Floyd's sampling: k distinct indices, each k-subset equally likely.
    const drawn: number[] = [];
    for (let j = n - k; j < n; j++) {
      const t = Math.floor(random() * (j + 1));
      const index = drawn.includes(t) ? j : t;
      drawn.push(index);
      consider(items[index]!);
    }
  }
  if (tally) {
    if (ties > 1) tally.tie++;
    else tally.cheaper++;
  }
  return best;
}

export class LeastRequestPicker implements experimental.Picker {
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly tally: LeastRequestTally | undefined;

  constructor(
    private readonly ready: readonly EndpointChild[],
    private readonly config: LeastRequestConfig,
    private readonly weightOf: (child: EndpointChild) => number,
    options: LeastRequestPickerOptions = {},
  ) {
    this.now = options.now ?? (() => performance.now());
    this.random = options.random ?? Math.random;
    this.tally = options.tally;
  }

  private cost(child: EndpointChild, now: number): number {
    const weight = this.weightOf(child);
    if (!(weight > 0)) return Infinity;
    const stats = child.stats;
    const latency = stats.latencyAt(now);
    const load =
      latency === undefined
        ? this.config.defaultLatencyMs * stats.outstanding
        : latency * (stats.outstanding + 1);
    return load / weight;
  }

  pick(args: experimental.PickArgs): experimental.PickResult {
    const now = this.now();
    const child = pickCheapest(
      this.ready,
      this.config.choiceCount,
      (c) => this.cost(c, now),
      this.random,
      this.tally,
    );
    return child.picker.pick(args);
  }
}

export function createLeastRequestPolicy(rt: Runtime): PolicyClasses {
  return createEndpointPolicy<LeastRequestConfig>(rt, {
    name: LEAST_REQUEST_POLICY,
    parse: (json) => parseLeastRequestConfig(json),
    makePicker: ({ ready, config, weightOf, metrics }) =>
      new LeastRequestPicker(ready, config, weightOf, { tally: metrics?.leastRequestTally() }),
    needsLatency: true,
  });
}
