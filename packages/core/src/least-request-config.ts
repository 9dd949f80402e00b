import { Fields, integer, parseDurationMs, STRICT, type ParseContext } from './json-fields';

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

/** The options of a policy that picks by least request without its own (a traffic split's subsets). */
export const DEFAULT_LEAST_REQUEST: LeastRequestConfig = Object.freeze({
  choiceCount: 2,
  defaultLatencyMs: 10,
});

export function parseLeastRequestConfig(
  json: unknown,
  field = LEAST_REQUEST_POLICY,
  ctx: ParseContext = STRICT,
): LeastRequestConfig {
  const f = Fields.of(json ?? {}, field, ctx);
  f.only(['choiceCount', 'defaultLatency']);
  return {
    choiceCount:
      f.read('choiceCount', (v, at) => integer(v, at, 2, 10)) ?? DEFAULT_LEAST_REQUEST.choiceCount,
    defaultLatencyMs:
      f.read('defaultLatency', (v, at) => parseDurationMs(v, at, ctx)) ??
      DEFAULT_LEAST_REQUEST.defaultLatencyMs,
  };
}
