import { ConfigError, describe } from './errors';
import { parseDurationMs } from './resilience-config';

/**
 * `grpc-lb.least_request`: two random choices (P2C), the one with the lower
 * peak-EWMA latency × (outstanding + 1) / weight wins (Linkerd's balancer;
 * the cost model is described in grpc-js/least-request.ts).
 *
 *     { "grpc-lb.least_request": { "choiceCount": 2 } }
 */
export const LEAST_REQUEST_POLICY = 'grpc-lb.least_request';

export interface LeastRequestConfig {
  /** How many endpoints are sampled per pick (2 = power of two choices). */
  readonly choiceCount: number;
  /**
   * Latency assumed for an endpoint with no estimate (no sample yet, or none
   * for 30 s) per call it has in flight: with none in flight it costs 0.
   */
  readonly defaultLatencyMs: number;
}

export function parseLeastRequestConfig(
  json: unknown,
  field = LEAST_REQUEST_POLICY,
): LeastRequestConfig {
  if (json === undefined || json === null) json = {};
  if (typeof json !== 'object' || Array.isArray(json)) {
    throw new ConfigError(field, `expected an object, got ${describe(json)}`);
  }
  const obj = json as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (
      key !== 'choiceCount' &&
      key !== 'choice_count' &&
      key !== 'defaultLatency' &&
      key !== 'default_latency'
    ) {
      throw new ConfigError(
        `${field}.${key}`,
        'unknown field (expected choiceCount, defaultLatency)',
      );
    }
  }
  const given = (camel: string, snake: string): [unknown, string] => {
    if (camel in obj && snake in obj)
      throw new ConfigError(`${field}.${camel}`, `given twice (also as ${snake})`);
    return snake in obj ? [obj[snake], `${field}.${snake}`] : [obj[camel], `${field}.${camel}`];
  };
  const [count, countField] = given('choiceCount', 'choice_count');
  if (
    count !== undefined &&
    (typeof count !== 'number' || !Number.isInteger(count) || count < 2 || count > 10)
  ) {
    throw new ConfigError(countField, `expected an integer 2-10, got ${describe(count)}`);
  }
  const [latency, latencyField] = given('defaultLatency', 'default_latency');
  return {
    choiceCount: count ?? 2,
    defaultLatencyMs: latency === undefined ? 10 : parseDurationMs(latency, latencyField),
  };
}
