/**
 * Decides which connected endpoints may take calls: passive outlier
 * detection (its interval timer, ejections and the timers that return
 * ejected endpoints), active health checks (one watcher per endpoint
 * connection), the panic threshold, and slow start (the ramp and the timer
 * that rebuilds pickers while it grows). Config from
 * `resilience-config.ts`; the decisions from `outlier-detection.ts`. It owns
 * every timer of the balancer but the batching of state changes.
 */
import type { PanicEvent } from '../observer';
import { OutlierDetector } from '../outlier-detection';
import { DEFAULT_FAILURE_STATUS_CODES, type ResilienceConfig } from '../resilience-config';
import type { ChildEndpoint } from './endpoint-child';
import type { EndpointChild } from './endpoint-policy';
import { HealthWatcher } from './health-watcher';
import type { Runtime } from './runtime';
import type { LoadBalancerObserver } from '../observer';
import type { TargetMetrics } from '../metrics';

const DEFAULT_FAILURES: ReadonlySet<number> = new Set(DEFAULT_FAILURE_STATUS_CODES);

/** What the controller needs of its balancer. */
export interface ResilienceHost {
  /** The target as the user wrote it (in events). */
  readonly target: string;
  /** Policy and target, the prefix of trace lines. */
  readonly describe: string;
  readonly children: readonly ChildEndpoint[];
  readonly observer: LoadBalancerObserver | undefined;
  /** The channel's metrics, when switched on. */
  readonly metrics: TargetMetrics | undefined;
  readonly destroyed: boolean;
  /** Rebuild the channel state and picker now. */
  recompute(): void;
}

export class ResilienceController {
  private config: ResilienceConfig | undefined;
  private detector: OutlierDetector | undefined;
  private intervalTimer: NodeJS.Timeout | undefined;
  private rampTimer: NodeJS.Timeout | undefined;
  private panic = false;

  /** Whether the last evaluation put the balancer in panic mode. */
  get inPanic(): boolean {
    return this.panic;
  }

  constructor(
    private readonly rt: Runtime,
    private readonly host: ResilienceHost,
  ) {}

  get current(): ResilienceConfig | undefined {
    return this.config;
  }

  /** Whether outlier detection needs every call counted. */
  get countsCalls(): boolean {
    return this.config?.outlierDetection !== undefined;
  }

  /** A new config: restarts outlier detection and reaches every endpoint's health check. */
  apply(config: ResilienceConfig): void {
    this.config = config;
    if (this.intervalTimer) clearInterval(this.intervalTimer);
    this.intervalTimer = undefined;
    const outlier = config.outlierDetection;
    const children = this.host.children;
    if (outlier) {
      this.detector = new OutlierDetector(outlier, {
        eject: (subject, reason, method) => {
          this.host.metrics?.ejection(true, method);
          this.ejected(subject as ChildEndpoint, reason);
        },
        unenforced: (_subject, method) => this.host.metrics?.ejection(false, method),
        random: Math.random,
      });
      this.intervalTimer = setInterval(() => this.tick(), outlier.intervalMs);
      this.intervalTimer.unref();
    } else if (this.detector) {
      // A50: with outlier detection off, every endpoint returns and starts
      // again from nothing: a later ejection is a first one.
      this.detector = undefined;
      for (const child of children) {
        this.returnChild(child, false);
        child.timesEjected = 0;
        child.stats.consecutiveFailures = 0;
        child.stats.intervalSuccesses = 0;
        child.stats.intervalFailures = 0;
      }
    }
    for (const child of children) this.configureHealth(child);
  }

  failureCodes(): ReadonlySet<number> {
    return this.config?.outlierDetection?.failureStatusCodes ?? DEFAULT_FAILURES;
  }

  /** One call of `child` ended: outlier detection counts it (and may eject at once). */
  callEnded(child: ChildEndpoint, failed: boolean): void {
    if (this.detector && !child.removed && !this.host.destroyed) {
      this.detector.record(child, failed, this.host.children, Date.now());
    }
  }

  /** `child` has a new subchannel: its health is watched on it, if health checks are on. */
  subchannelChanged(child: ChildEndpoint): void {
    child.watcher?.destroy();
    child.watcher = undefined;
    this.configureHealth(child);
  }

  /** `child` leaves the balancer: its watcher and return timer go with it. */
  release(child: ChildEndpoint): void {
    child.watcher?.destroy();
    child.watcher = undefined;
    if (child.returnTimer) clearTimeout(child.returnTimer);
    child.returnTimer = undefined;
  }

  /** Connected and allowed by its health check (whatever its ejection). */
  healthOk(child: ChildEndpoint): boolean {
    return (
      child.health === 'not_checked' ||
      child.health === 'serving' ||
      child.health === 'unimplemented'
    );
  }

  /** What the health check answered `child`, for failure messages. */
  healthDetail(child: ChildEndpoint): string {
    return child.watcher?.detail ?? child.health;
  }

  /** Connected with its first health answer pending, within the wait: neither in nor out yet. */
  awaitingHealth(child: ChildEndpoint): boolean {
    return child.health === 'unknown' && !(child.watcher?.overdue ?? false);
  }

  /**
   * Whether the balancer is in panic mode now, and the event to emit when
   * that changed (after the new state is published).
   */
  evaluatePanic(): { panic: boolean; event: PanicEvent | undefined } {
    const children = this.host.children;
    const config = this.config;
    const guarded =
      config !== undefined &&
      (config.outlierDetection !== undefined || config.healthCheck !== undefined);
    const threshold = config?.panicThresholdPercent ?? 0;
    const applies = guarded && threshold > 0 && children.length > 0;
    // Without outlier detection or health checks nothing is unhealthy: no count, no panic.
    if (!applies && !this.panic) return { panic: false, event: undefined };
    // An endpoint whose first health answer is still awaited is not counted against the threshold.
    let healthy = 0;
    for (const child of children) {
      if (child.ejectedUntil === 0 && (this.awaitingHealth(child) || this.healthOk(child)))
        healthy++;
    }
    const panic = applies && healthy * 100 < threshold * children.length;
    let event: PanicEvent | undefined;
    if (panic !== this.panic) {
      this.panic = panic;
      const healthyPercent = children.length ? Math.round((healthy * 100) / children.length) : 0;
      this.rt.trace(
        `${this.host.describe}: panic mode ${panic ? 'on' : 'off'}: ${healthy} of ${children.length} endpoints healthy (threshold ${threshold}%)`,
      );
      event = {
        target: this.host.target,
        active: panic,
        healthyPercent,
        thresholdPercent: threshold,
      };
    }
    return { panic, event };
  }

  /** Slow start: the fraction (0–1] of its share `child` gets at `now`. */
  rampOf(child: EndpointChild, now: number): number {
    const slowStart = this.config?.slowStart;
    const since = (child as ChildEndpoint).readySince;
    if (!slowStart || since === 0) return 1;
    const elapsed = now - since;
    if (elapsed >= slowStart.windowMs) return 1;
    const ramp = Math.pow(Math.max(elapsed, 0) / slowStart.windowMs, 1 / slowStart.aggression);
    return Math.max(slowStart.minWeightPercent / 100, ramp);
  }

  weightOf(child: EndpointChild, now: number): number {
    return (child.info?.weight ?? 1) * this.rampOf(child, now);
  }

  /** Whether some endpoint in rotation is in its slow-start window at `now`. */
  rampingUp(ready: readonly ChildEndpoint[], now: number): boolean {
    const slowStart = this.config?.slowStart;
    return (
      slowStart !== undefined &&
      ready.some((c) => c.readySince !== 0 && now - c.readySince < slowStart.windowMs)
    );
  }

  /** How many endpoints in rotation are inside their slow-start window at `now`. */
  rampingEndpoints(now: number): number {
    const slowStart = this.config?.slowStart;
    if (slowStart === undefined) return 0;
    const READY = this.rt.grpc.connectivityState.READY;
    let ramping = 0;
    for (const c of this.host.children) {
      if (c.state === READY && c.readySince !== 0 && now - c.readySince < slowStart.windowMs) {
        ramping++;
      }
    }
    return ramping;
  }

  /** While weights ramp up, the picker is rebuilt every 1/20 of the window (at least 50 ms apart). */
  scheduleRamp(): void {
    const slowStart = this.config?.slowStart;
    if (!slowStart || this.rampTimer) return;
    this.rampTimer = setTimeout(
      () => {
        this.rampTimer = undefined;
        this.host.recompute();
      },
      Math.max(50, slowStart.windowMs / 20),
    );
    this.rampTimer.unref();
  }

  /** Every timer stops; the config is forgotten. */
  destroy(): void {
    if (this.intervalTimer) clearInterval(this.intervalTimer);
    this.intervalTimer = undefined;
    if (this.rampTimer) clearTimeout(this.rampTimer);
    this.rampTimer = undefined;
    this.detector = undefined;
    this.config = undefined;
  }

  private tick(): void {
    if (!this.detector || this.host.destroyed) return;
    this.detector.tick(this.host.children, Date.now());
  }

  private ejected(child: ChildEndpoint, reason: string): void {
    const until = child.ejectedUntil;
    this.rt.trace(
      `${this.host.describe}: ejected ${child.key} for ${until - Date.now()} ms (times ejected ${child.timesEjected}): ${reason}`,
    );
    if (child.returnTimer) clearTimeout(child.returnTimer);
    child.returnTimer = setTimeout(
      () => this.returnChild(child, true),
      Math.max(0, until - Date.now()),
    );
    child.returnTimer.unref();
    this.host.recompute();
    this.host.observer?.emit('eject', {
      target: this.host.target,
      address: child.key,
      reason,
      ejectedUntil: until,
      timesEjected: child.timesEjected,
    });
  }

  private returnChild(child: ChildEndpoint, recompute: boolean): void {
    if (child.returnTimer) clearTimeout(child.returnTimer);
    child.returnTimer = undefined;
    if (child.ejectedUntil === 0) return;
    child.ejectedUntil = 0;
    child.stats.consecutiveFailures = 0;
    if (child.removed || this.host.destroyed) return;
    this.rt.trace(`${this.host.describe}: ${child.key} returns from ejection`);
    if (recompute) this.host.recompute();
    this.host.observer?.emit('return', { target: this.host.target, address: child.key });
  }

  private configureHealth(child: ChildEndpoint): void {
    const healthCheck = this.config?.healthCheck;
    if (!healthCheck) {
      child.watcher?.destroy();
      child.watcher = undefined;
      child.health = 'not_checked';
      return;
    }
    if (!child.subchannel) return;
    if (child.watcher) {
      // Same connection, new settings: no reconnect.
      child.watcher.reconfigure(healthCheck.serviceName, healthCheck.checkIntervalMs);
      child.health = child.watcher.current;
      return;
    }
    const watcher = new HealthWatcher(
      this.rt,
      child.subchannel,
      healthCheck.serviceName,
      healthCheck.checkIntervalMs,
      () => this.healthChanged(child, watcher),
      `${this.host.describe}: ${child.key}`,
    );
    child.watcher = watcher;
    child.health = watcher.current;
  }

  private healthChanged(child: ChildEndpoint, watcher: HealthWatcher): void {
    if (child.watcher !== watcher || child.removed || this.host.destroyed) return;
    const previous = child.health;
    child.health = watcher.current;
    this.host.recompute();
    if (child.health !== previous) {
      this.host.observer?.emit('health', {
        target: this.host.target,
        address: child.key,
        health: child.health,
      });
    }
  }
}
