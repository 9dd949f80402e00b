/**
 * `grpc-lb.round_robin`: each call to the next READY endpoint, starting at a
 * random one. Weights are ignored (see `grpc-lb.weighted_round_robin`).
 */
import { ROUND_ROBIN_POLICY, parseRoundRobinConfig } from '../service-config';
import { createEndpointPolicy, type PolicyClasses } from './endpoint-policy';
import { RoundRobinPicker } from './pickers';
import type { Runtime } from './runtime';

export function createRoundRobinPolicy(rt: Runtime): PolicyClasses {
  return createEndpointPolicy(rt, {
    name: ROUND_ROBIN_POLICY,
    parse: (json) => parseRoundRobinConfig(json),
    makePicker: ({ ready, memo }) => new RoundRobinPicker(ready, memo, 'all'),
  });
}
