/**
 * Call tracking: the outcome of each call picked onto an endpoint (start,
 * end, status, latency) reaches that endpoint's counters. It costs something
 * on every call, so it is only as detailed as someone needs: nothing,
 * counts (outlier detection), or counts and latency (least request, an
 * observer, metrics).
 */
import type { experimental } from '@grpc/grpc-js';
import type { EndpointStats } from '../endpoint-stats';
import type { TargetMetrics } from '../metrics';
import { METHOD_PICK_KEY } from './config-selector';

/** Time constant of the peak-EWMA latency (Linkerd's default decay). */
export const LATENCY_DECAY_MS = 10_000;

export enum Tracking {
  None,
  Count,
  Latency,
}

/** What call tracking needs of an endpoint. */
export interface TrackedEndpoint {
  readonly stats: EndpointStats;
  /** Bound once per endpoint, so that counting without latency allocates nothing per call. */
  readonly countStart: () => void;
  readonly countEnd: (code: number) => void;
}

export interface CallOutcomes<T extends TrackedEndpoint> {
  /** The status codes that count as a failure of the endpoint. */
  failureCodes(): ReadonlySet<number>;
  /** One call of `endpoint` ended (after its counters were updated). */
  callEnded(endpoint: T, failed: boolean): void;
}

export class CallTracker<T extends TrackedEndpoint> {
  /** What each call must report; set by the balancer from its config and observer. */
  mode: Tracking = Tracking.None;
  /** The channel's metrics when switched on (then `mode` is `Latency`). */
  metrics: TargetMetrics | undefined;

  constructor(
    private readonly completeType: experimental.PickResultType,
    private readonly outcomes: CallOutcomes<T>,
  ) {}

  /** The functions an endpoint binds once as its `countStart` / `countEnd`. */
  counters(endpoint: T): Pick<TrackedEndpoint, 'countStart' | 'countEnd'> {
    return {
      countStart: () => {
        endpoint.stats.outstanding++;
      },
      countEnd: (code) => this.ended(endpoint, code, -1),
    };
  }

  /** `result` of a pick onto `endpoint`, with the call's outcome reported back when needed. */
  track(
    endpoint: T,
    result: experimental.PickResult,
    args: experimental.PickArgs,
  ): experimental.PickResult {
    const mode = this.mode;
    if (mode === Tracking.None || result.pickResultType !== this.completeType) return result;
    if (mode === Tracking.Count && result.onCallStarted === null && result.onCallEnded === null) {
      // pick_first hands out a fresh result object per pick.
      result.onCallStarted = endpoint.countStart;
      result.onCallEnded = endpoint.countEnd;
      return result;
    }
    return this.trackLatency(endpoint, result, args);
  }

  /** Wraps a completed pick so the call's start, end, status and latency reach the endpoint's counters. */
  private trackLatency(
    endpoint: T,
    result: experimental.PickResult,
    args: experimental.PickArgs,
  ): experimental.PickResult {
    const { onCallStarted, onCallEnded } = result;
    const metrics = this.metrics;
    const method = metrics?.method(args.extraPickInfo[METHOD_PICK_KEY]);
    let startedAt = 0;
    result.onCallStarted = () => {
      endpoint.stats.outstanding++;
      startedAt = performance.now();
      if (method) metrics?.attemptStarted(method);
      onCallStarted?.();
    };
    result.onCallEnded = (code, details, metadata) => {
      const endedAt = performance.now();
      const latencyMs = endedAt - startedAt;
      this.ended(endpoint, code, latencyMs, endedAt);
      if (method) metrics?.attemptEnded(method, code, latencyMs / 1000);
      onCallEnded?.(code, details, metadata);
    };
    return result;
  }

  /** `latencyMs` < 0: not measured; otherwise the call ended at `endedAt` (`performance.now()`). */
  ended(endpoint: T, code: number, latencyMs: number, endedAt = 0): void {
    const stats = endpoint.stats;
    if (stats.outstanding > 0) stats.outstanding--; // tracking may have been switched on mid-call
    stats.calls++;
    const failed = this.outcomes.failureCodes().has(code);
    if (failed) stats.failures++;
    if (latencyMs >= 0) stats.recordLatency(latencyMs, endedAt, LATENCY_DECAY_MS);
    this.outcomes.callEnded(endpoint, failed);
  }
}
