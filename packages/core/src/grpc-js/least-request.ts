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

export function createLeastRequestPolicy(rt: Runtime): PolicyClasses {
  class LeastRequestPicker implements experimental.Picker {
    constructor(
      private readonly ready: readonly EndpointChild[],
      private readonly config: LeastRequestConfig,
      private readonly weightOf: (child: EndpointChild) => number,
    ) {}

    private cost(child: EndpointChild): number {
      const latency = child.stats.latencyEwmaMs || this.config.defaultLatencyMs;
      const weight = this.weightOf(child);
      return weight > 0 ? (latency * (child.stats.outstanding + 1)) / weight : Infinity;
    }

    pick(args: experimental.PickArgs): experimental.PickResult {
      const ready = this.ready;
      const n = ready.length;
      let best = ready[Math.floor(Math.random() * n)]!;
      if (n > 1) {
        let bestCost = this.cost(best);
        for (let i = 1; i < this.config.choiceCount; i++) {
          const other = ready[Math.floor(Math.random() * n)]!;
          if (other === best) continue;
          const cost = this.cost(other);
          if (cost < bestCost) {
            best = other;
            bestCost = cost;
          }
        }
      }
      return best.picker.pick(args);
    }
  }

  return createEndpointPolicy<LeastRequestConfig>(rt, {
    name: LEAST_REQUEST_POLICY,
    parse: (json) => parseLeastRequestConfig(json),
    makePicker: ({ ready, config, weightOf }) => new LeastRequestPicker(ready, config, weightOf),
  });
}
