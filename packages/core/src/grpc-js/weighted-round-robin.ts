/**
 * `grpc-lb.weighted_round_robin`: calls in proportion to the weight each
 * resolver gives its endpoints (etcd metadata, Consul `Weights`, SRV weight,
 * `static:` `;weight=`), smooth and deterministic. Weight 0: known, no calls.
 * Unlike grpc-js's `weighted_round_robin` it needs no ORCA load reports.
 */
import {
  parseWeightedRoundRobinConfig,
  WEIGHTED_ROUND_ROBIN_POLICY,
} from '../weighted-round-robin-config';
import { createEndpointPolicy, type PolicyClasses } from './endpoint-policy';
import { WeightedPicker } from './pickers';
import type { Runtime } from './runtime';

export function createWeightedRoundRobinPolicy(rt: Runtime): PolicyClasses {
  const { UnavailablePicker } = rt.grpc.experimental;
  return createEndpointPolicy(rt, {
    name: WEIGHTED_ROUND_ROBIN_POLICY,
    parse: (json) => parseWeightedRoundRobinConfig(json),
    makePicker: ({ ready, target, weightOf }) =>
      new WeightedPicker(
        ready,
        weightOf,
        new UnavailablePicker({
          details: `grpc-lb: no endpoint with a weight above 0 is ready for ${target} (${ready.length} ready with weight 0)`,
        }),
      ),
  });
}
