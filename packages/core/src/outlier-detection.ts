/**
 * Passive outlier detection, fed by the outcome of every call: Envoy's
 * consecutive-failures ejection (at once), and gRPC A50's success-rate and
 * failure-percentage ejection (each interval), with ejection time growing
 * with the times an endpoint was ejected and decaying while it behaves.
 * Pure logic over `OutlierSubject`s and an injected clock; the balancer owns
 * the timers.
 *
 * Where A50's text and grpc-go's and grpc-js's implementations of it
 * disagree, this does as the implementations: no ejection once the ejected
 * share has reached `maxEjectionPercent` (so 0 ejects nothing), failure
 * percentage ejects strictly above its threshold, and both algorithms count
 * as hosts only the endpoints with `requestVolume` calls in the interval.
 * Unlike A50, only `failureStatusCodes` count as failures, not every status
 * but OK (the package README lists every difference and its reason).
 */
import type { EndpointStats } from './endpoint-stats';
import type { OutlierDetectionConfig } from './resilience-config';

export interface OutlierSubject {
  readonly key: string;
  readonly stats: EndpointStats;
  /** 0 when not ejected. */
  ejectedUntil: number;
  timesEjected: number;
}

/** How an outlier was found (gRFC A91's `grpc.lb.outlier_detection.detection_method`). */
export type DetectionMethod = 'consecutive_failures' | 'success_rate' | 'failure_percentage';

export interface EjectionHooks {
  eject(subject: OutlierSubject, reason: string, method: DetectionMethod): void;
  /** An outlier left in by `enforcementPercentage` or `maxEjectionPercent` (A91's "unenforced"). */
  unenforced?(subject: OutlierSubject, method: DetectionMethod): void;
  random(): number;
}

function volume(subject: OutlierSubject): number {
  return subject.stats.intervalSuccesses + subject.stats.intervalFailures;
}

function successRate(subject: OutlierSubject): number {
  const total = volume(subject);
  return total === 0 ? 1 : subject.stats.intervalSuccesses / total;
}

export class OutlierDetector {
  constructor(
    private readonly config: OutlierDetectionConfig,
    private readonly hooks: EjectionHooks,
  ) {}

  isFailure(code: number): boolean {
    return this.config.failureStatusCodes.has(code);
  }

  /** Counts one call; ejects at once on N consecutive failures. */
  record(
    subject: OutlierSubject,
    failed: boolean,
    all: readonly OutlierSubject[],
    now: number,
  ): void {
    const stats = subject.stats;
    if (failed) {
      stats.intervalFailures++;
      stats.consecutiveFailures++;
      const limit = this.config.consecutiveFailures;
      if (limit > 0 && stats.consecutiveFailures >= limit && subject.ejectedUntil === 0) {
        this.tryEject(
          subject,
          all,
          now,
          `${stats.consecutiveFailures} consecutive failures`,
          'consecutive_failures',
        );
      }
    } else {
      stats.intervalSuccesses++;
      stats.consecutiveFailures = 0;
    }
  }

  /** The interval's evaluation: A50 success rate and failure percentage, then decay and counter reset. */
  tick(all: readonly OutlierSubject[], now: number): void {
    const rateConfig = this.config.successRateEjection;
    if (rateConfig) {
      const candidates = all.filter((s) => volume(s) >= rateConfig.requestVolume);
      if (candidates.length >= rateConfig.minimumHosts) {
        const rates = candidates.map(successRate);
        const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
        const variance = rates.reduce((a, r) => a + (r - mean) ** 2, 0) / rates.length;
        const threshold = mean - Math.sqrt(variance) * (rateConfig.stdevFactor / 1000);
        candidates.forEach((subject, i) => {
          const rate = rates[i]!;
          if (rate >= threshold) return;
          if (this.hooks.random() * 100 >= rateConfig.enforcementPercentage) {
            this.notEnforced(subject, 'success_rate');
            return;
          }
          this.tryEject(
            subject,
            all,
            now,
            `success rate ${(rate * 100).toFixed(1)}% below ${(threshold * 100).toFixed(1)}% (mean ${(mean * 100).toFixed(1)}%)`,
            'success_rate',
          );
        });
      }
    }
    const failurePercentage = this.config.failurePercentageEjection;
    if (failurePercentage) {
      const candidates = all.filter((s) => volume(s) >= failurePercentage.requestVolume);
      if (candidates.length >= failurePercentage.minimumHosts) {
        for (const subject of candidates) {
          const percent = (1 - successRate(subject)) * 100;
          if (percent <= failurePercentage.threshold) continue;
          if (this.hooks.random() * 100 >= failurePercentage.enforcementPercentage) {
            this.notEnforced(subject, 'failure_percentage');
            continue;
          }
          this.tryEject(
            subject,
            all,
            now,
            `${percent.toFixed(1)}% of calls failed (threshold ${failurePercentage.threshold}%)`,
            'failure_percentage',
          );
        }
      }
    }
    for (const subject of all) {
      // A50: an endpoint that stays in for an interval earns back one "times ejected".
      if (subject.ejectedUntil === 0 && subject.timesEjected > 0) subject.timesEjected--;
      subject.stats.intervalSuccesses = 0;
      subject.stats.intervalFailures = 0;
    }
  }

  /** How long the next ejection of `subject` lasts. */
  ejectionTimeMs(timesEjected: number): number {
    return Math.min(this.config.baseEjectionTimeMs * timesEjected, this.config.maxEjectionTimeMs);
  }

  private tryEject(
    subject: OutlierSubject,
    all: readonly OutlierSubject[],
    now: number,
    reason: string,
    method: DetectionMethod,
  ): void {
    if (subject.ejectedUntil !== 0) return;
    const ejected = all.filter((s) => s.ejectedUntil !== 0).length;
    // A50: eject only while the ejected share is below the maximum (so with any maximum above 0, one can go).
    if ((ejected * 100) / all.length >= this.config.maxEjectionPercent) {
      this.notEnforced(subject, method);
      return;
    }
    subject.timesEjected++;
    subject.ejectedUntil = now + this.ejectionTimeMs(subject.timesEjected);
    this.hooks.eject(subject, reason, method);
  }

  /** An outlier that stays in (only one not ejected already counts). */
  private notEnforced(subject: OutlierSubject, method: DetectionMethod): void {
    if (subject.ejectedUntil === 0) this.hooks.unenforced?.(subject, method);
  }
}
