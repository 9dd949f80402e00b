/**
 * `grpc-lb.least_request`: for each call, sample `choiceCount` endpoints at
 * random and take the one with the lowest peak-EWMA latency × (outstanding
 * calls + 1) ÷ weight — Linkerd's balancer. A slow or overloaded endpoint
 * gets a small share at once, without ejecting it; a recovered one wins its
 * share back as its latency average decays.
 */
import {
  LEAST_REQUEST_POLICY,
  parseLeastRequestConfig,
  type LeastRequestConfig,
} from '../least-request-config';
import { createEndpointPolicy, type EndpointChild, type PolicyClasses } from './endpoint-policy';
import type { Runtime } from './runtime';
import type { experimental } from '@grpc/grpc-js';

export interface LeastRequestPickerOptions {
  /** The clock the endpoints' latency samples are stamped with (ms). */
  readonly now?: () => number;
  /** A number in [0, 1). */
  readonly random?: () => number;
}

export class LeastRequestPicker implements experimental.Picker {
  private readonly random: () => number;

  constructor(
    private readonly ready: readonly EndpointChild[],
    private readonly config: LeastRequestConfig,
    private readonly weightOf: (child: EndpointChild) => number,
    options: LeastRequestPickerOptions = {},
  ) {
    this.random = options.random ?? Math.random;
  }

  private cost(child: EndpointChild): number {
    const latency = child.stats.latencyEwmaMs || this.config.defaultLatencyMs;
    const weight = this.weightOf(child);
    return weight > 0 ? (latency * (child.stats.outstanding + 1)) / weight : Infinity;
  }

  pick(args: experimental.PickArgs): experimental.PickResult {
    const ready = this.ready;
    const n = ready.length;
    // Distinct choices: sampling with replacement would hand the worst endpoint 1/n² of calls.
    const k = Math.min(this.config.choiceCount, n);
    let best: EndpointChild | undefined;
    let bestCost = Infinity;
    if (k === n) {
      for (const child of ready) {
        const cost = this.cost(child);
        if (best === undefined || cost < bestCost) [best, bestCost] = [child, cost];
      }
    } else {
      const first = Math.floor(this.random() * n);
      best = ready[first]!;
      bestCost = this.cost(best);
      let second = Math.floor(this.random() * (n - 1));
      if (second >= first) second++;
      for (let i = 1; i < k; i++) {
        if (i > 1) second = Math.floor(this.random() * n);
        const other = ready[second]!;
        if (other === best) continue;
        const cost = this.cost(other);
        if (cost < bestCost) [best, bestCost] = [other, cost];
      }
    }
    return best!.picker.pick(args);
  }
}

export function createLeastRequestPolicy(rt: Runtime): PolicyClasses {
  return createEndpointPolicy<LeastRequestConfig>(rt, {
    name: LEAST_REQUEST_POLICY,
    parse: (json) => parseLeastRequestConfig(json),
    makePicker: ({ ready, config, weightOf }) => new LeastRequestPicker(ready, config, weightOf),
    needsLatency: true,
  });
}
