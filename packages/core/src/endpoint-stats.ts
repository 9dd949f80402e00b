/**
 * What the balancer counts per endpoint from the outcome of every call:
 * calls, failures and calls in flight (observers, least request), the
 * failure counters outlier detection reads, and a latency estimate that
 * least request picks by.
 */

/**
 * An estimate not refreshed by a sample for this many time constants is
 * forgotten: the endpoint counts as never sampled, and so is cheap to try.
 * By then the estimate has decayed to under 5% of its value.
 */
const FORGET_AFTER_TIME_CONSTANTS = 3;

export class EndpointStats {
  calls = 0;
  failures = 0;
  outstanding = 0;
  consecutiveFailures = 0;
  intervalSuccesses = 0;
  intervalFailures = 0;
  /**
   * The latency estimate in ms as it stood right after the last sample; 0
   * until the first. `latencyAt(now)` gives it as it stands now.
   */
  latencyEwmaMs = 0;
  private sampledAt: number | undefined;
  private decayMs = 1;

  /**
   * Peak EWMA, as Linkerd's and Finagle's balancers keep it, with τ =
   * `decayMs` and Δ = the time since the previous sample:
   *
   *   - between samples the estimate decays toward 0: e(now) = e × exp(−Δ/τ)
   *     (see `latencyAt`), so an endpoint that gets no calls — because it
   *     once looked slow — soon looks cheap and is tried again;
   *   - a sample at or above the decayed estimate replaces it at once: an
   *     endpoint that turns slow is avoided from its first slow call;
   *   - a sample below it pulls it toward the sample by (1 − exp(−Δ/τ)):
   *     e ← e(now) + (sample − e(now)) × (1 − exp(−Δ/τ)), so a fast answer
   *     right after a slow one barely counts, and one after a long gap
   *     nearly replaces it;
   *   - an estimate not refreshed for 3τ is forgotten, and the next sample
   *     starts it afresh.
   *
   * `now` and `decayMs` must come from the clock and time constant
   * `latencyAt` is read with; a clock going backwards counts as no time.
   */
  recordLatency(ms: number, now: number, decayMs: number): void {
    this.decayMs = decayMs;
    const decayed = this.latencyAt(now);
    if (decayed === undefined || ms >= decayed) {
      this.latencyEwmaMs = ms;
    } else {
      const keep = Math.exp(-this.elapsed(now) / decayMs);
      this.latencyEwmaMs = decayed * keep + ms * (1 - keep);
    }
    this.sampledAt = now;
  }

  /**
   * The latency estimate at `now` (decayed since the last sample), or
   * undefined when there is none: never sampled, or not for 3 time constants.
   */
  latencyAt(now: number): number | undefined {
    if (this.sampledAt === undefined) return undefined;
    const elapsed = this.elapsed(now);
    if (elapsed >= FORGET_AFTER_TIME_CONSTANTS * this.decayMs) return undefined;
    return this.latencyEwmaMs * Math.exp(-elapsed / this.decayMs);
  }

  private elapsed(now: number): number {
    return Math.max(0, now - (this.sampledAt ?? now));
  }
}
