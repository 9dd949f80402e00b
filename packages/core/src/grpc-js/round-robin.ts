/**
 * `grpc-lb.round_robin`: each call to the next endpoint in rotation, starting
 * at a random one. Resolver weights are ignored (see
 * `grpc-lb.weighted_round_robin`); during slow start, new endpoints get a
 * growing share.
 */
import { parseRoundRobinConfig, ROUND_ROBIN_POLICY } from '../round-robin-config';
import { createEndpointPolicy, type PolicyClasses } from './endpoint-policy';
import { RoundRobinPicker, WeightedPicker } from './pickers';
import type { Runtime } from './runtime';

export function createRoundRobinPolicy(rt: Runtime): PolicyClasses {
  const { UnavailablePicker } = rt.grpc.experimental;
  return createEndpointPolicy(rt, {
    name: ROUND_ROBIN_POLICY,
    parse: (json) => parseRoundRobinConfig(json),
    makePicker: ({ ready, memo, rampingUp, rampOf, target }) =>
      rampingUp
        ? new WeightedPicker(
            ready,
            rampOf,
            new UnavailablePicker({ details: `grpc-lb: ${target}: no endpoint` }),
          )
        : new RoundRobinPicker(ready, memo, 'all'),
  });
}
