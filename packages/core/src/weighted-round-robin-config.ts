/** `grpc-lb.weighted_round_robin`'s name and config: no options of its own beside the shared ones. */
import { Fields, STRICT, type ParseContext } from './json-fields';
import { RESILIENCE_OPTIONS } from './resilience-config';

export const WEIGHTED_ROUND_ROBIN_POLICY = 'grpc-lb.weighted_round_robin';

export type WeightedRoundRobinConfig = Record<string, never>;

/** Parses the policy's own fields of a `grpc-lb.weighted_round_robin` entry (there are none yet). */
export function parseWeightedRoundRobinConfig(
  json: unknown,
  field = WEIGHTED_ROUND_ROBIN_POLICY,
  ctx: ParseContext = STRICT,
): WeightedRoundRobinConfig {
  if (json === undefined || json === null) return {};
  Fields.of(json, field, ctx).only(
    [],
    `${WEIGHTED_ROUND_ROBIN_POLICY} takes only the shared options ${RESILIENCE_OPTIONS.join(', ')}`,
  );
  return {};
}
