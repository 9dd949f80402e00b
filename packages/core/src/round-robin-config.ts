/** `grpc-lb.round_robin`'s name and config: no options of its own beside the shared ones. */
import { Fields, STRICT, type ParseContext } from './json-fields';
import { RESILIENCE_OPTIONS } from './resilience-config';

/** Our policy names live under `grpc-lb.` so they never clash with grpc-js built-ins. */
export const ROUND_ROBIN_POLICY = 'grpc-lb.round_robin';

export type RoundRobinConfig = Record<string, never>;

/** Parses the policy's own fields of a `grpc-lb.round_robin` entry (there are none yet). */
export function parseRoundRobinConfig(
  json: unknown,
  field = ROUND_ROBIN_POLICY,
  ctx: ParseContext = STRICT,
): RoundRobinConfig {
  if (json === undefined || json === null) return {};
  Fields.of(json, field, ctx).only(
    [],
    `${ROUND_ROBIN_POLICY} takes only the shared options ${RESILIENCE_OPTIONS.join(', ')}`,
  );
  return {};
}
