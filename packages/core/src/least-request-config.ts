import { ConfigError, describe } from './errors';
import { parseDurationMs } from './resilience-config';

/**
 * `grpc-lb.least_request`: two random choices (P2C), the one with the lower
 * peak-EWMA latency × (outstanding + 1) / weight wins (Linkerd's balancer).
 *
 *     { "grpc-lb.least_request": { "choiceCount": 2 } }
 */
export const LEAST_REQUEST_POLICY = 'grpc-lb.least_request';

export interface LeastRequestConfig {
  /** How many endpoints are sampled per pick (2 = power of two choices). */
  readonly choiceCount: number;
  /** Latency assumed for an endpoint with no sample yet. */
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
  const count = obj['choiceCount'] ?? obj['choice_count'];
  if (
    count !== undefined &&
    (typeof count !== 'number' || !Number.isInteger(count) || count < 2 || count > 10)
  ) {
    throw new ConfigError(
      `${field}.choiceCount`,
      `expected an integer 2-10, got ${describe(count)}`,
    );
  }
  const latency = obj['defaultLatency'] ?? obj['default_latency'];
  return {
    choiceCount: count ?? 2,
    defaultLatencyMs:
      latency === undefined ? 10 : parseDurationMs(latency, `${field}.defaultLatency`),
  };
}
