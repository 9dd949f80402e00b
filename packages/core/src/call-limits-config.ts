/**
 * The two shared options that bound the load a channel puts on its
 * backends: `limits` (circuit breaking, after Envoy's circuit breakers and
 * Istio's `connectionPool`) and `retryBudget` (after Linkerd's and
 * Finagle's retry budgets). Both are off unless configured.
 *
 *     "limits": { "maxRequests": 100, "maxRequestsPerEndpoint": 20,
 *                 "maxPending": 50, "onLimit": "fail" },
 *     "retryBudget": { "ratio": 0.2, "minRetriesPerSecond": 10, "ttl": "10s" }
 */
import { ConfigError, describe } from './errors';
import { Fields, integer, oneOf, parseDurationMs, STRICT, type ParseContext } from './json-fields';

/** What a call over `maxRequests` or `maxRequestsPerEndpoint` does. */
export type OnLimit = 'fail' | 'queue';

export interface CallLimitsConfig {
  /** Calls in flight on the channel (all endpoints); Envoy `max_requests`. Undefined: no limit. */
  readonly maxRequests: number | undefined;
  /** Calls in flight on one endpoint (its one connection). Undefined: no limit. */
  readonly maxRequestsPerEndpoint: number | undefined;
  /**
   * Calls the balancer holds waiting for a pick: while no endpoint is ready
   * yet, and (with `onLimit: "queue"`) waiting for a slot under the limits;
   * Envoy `max_pending_requests`. Undefined: no limit.
   */
  readonly maxPending: number | undefined;
  /** `fail` (default): fail fast with UNAVAILABLE. `queue`: wait for a slot (bounded by `maxPending`). */
  readonly onLimit: OnLimit;
}

export interface RetryBudgetConfig {
  /** Retries (and hedges) allowed per first attempt over the window: 0.2 = 20 % extra load. */
  readonly ratio: number;
  /** Retries allowed per second whatever the ratio says (for channels with few calls). */
  readonly minRetriesPerSecond: number;
  /** How long a call or a retry counts: the window the ratio is kept over. */
  readonly ttlMs: number;
}

/** Linkerd's retry budget defaults. */
export const DEFAULT_RETRY_BUDGET: RetryBudgetConfig = Object.freeze({
  ratio: 0.2,
  minRetriesPerSecond: 10,
  ttlMs: 10_000,
});

const MAX_LIMIT = 1_000_000_000;

function limit(value: unknown, path: string): number {
  return integer(value, path, 1, MAX_LIMIT);
}

export function parseCallLimits(
  value: unknown,
  field: string,
  ctx: ParseContext = STRICT,
): CallLimitsConfig {
  const f = Fields.of(value, field, ctx);
  f.only(['maxRequests', 'maxRequestsPerEndpoint', 'maxPending', 'onLimit']);
  const config: CallLimitsConfig = {
    maxRequests: f.read('maxRequests', limit),
    maxRequestsPerEndpoint: f.read('maxRequestsPerEndpoint', limit),
    maxPending: f.read('maxPending', (v, at) => integer(v, at, 0, MAX_LIMIT)),
    onLimit: f.read('onLimit', (v, at) => oneOf(v, at, ['fail', 'queue'] as const)) ?? 'fail',
  };
  if (config.onLimit === 'queue' && config.maxPending === undefined) {
    throw new ConfigError(
      f.at('onLimit'),
      '"queue" needs maxPending: the number of calls that may wait for a slot',
    );
  }
  return config;
}

export function parseRetryBudget(
  value: unknown,
  field: string,
  ctx: ParseContext = STRICT,
): RetryBudgetConfig {
  const f = Fields.of(value, field, ctx);
  f.only(['ratio', 'minRetriesPerSecond', 'ttl']);
  const ratio = f.read('ratio', (v, at) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1000) {
      throw new ConfigError(at, `expected a number 0-1000, got ${describe(v)}`);
    }
    return v;
  });
  const ttlMs = f.read('ttl', (v, at) => {
    const ms = parseDurationMs(v, at, ctx);
    if (ms < 1000 || ms > 60_000) throw new ConfigError(at, 'must be between 1s and 60s');
    return ms;
  });
  return {
    ratio: ratio ?? DEFAULT_RETRY_BUDGET.ratio,
    minRetriesPerSecond:
      f.read('minRetriesPerSecond', (v, at) => integer(v, at, 0, 1_000_000)) ??
      DEFAULT_RETRY_BUDGET.minRetriesPerSecond,
    ttlMs: ttlMs ?? DEFAULT_RETRY_BUDGET.ttlMs,
  };
}
