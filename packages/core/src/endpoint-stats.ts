/** Per-endpoint counters and latency, read by outlier detection, least-request picking and observers. */
export class EndpointStats {
  calls = 0;
  failures = 0;
  outstanding = 0;
  /** Peak-EWMA of call latency in ms; 0 until the first sample. */
  latencyEwmaMs = 0;
  consecutiveFailures = 0;
  intervalSuccesses = 0;
  intervalFailures = 0;
  private lastSampleAt = 0;

  /**
   * Linkerd's peak EWMA: a slower sample takes over at once, a faster one
   * pulls the average down with a time-based decay, so a backend that turns
   * slow is avoided immediately and trusted again gradually.
   */
  recordLatency(ms: number, now: number, decayMs: number): void {
    if (this.latencyEwmaMs === 0 || ms > this.latencyEwmaMs) {
      this.latencyEwmaMs = ms;
    } else {
      const elapsed = Math.max(0, now - this.lastSampleAt);
      const keep = Math.exp(-elapsed / decayMs);
      this.latencyEwmaMs = this.latencyEwmaMs * keep + ms * (1 - keep);
    }
    this.lastSampleAt = now;
  }
}
