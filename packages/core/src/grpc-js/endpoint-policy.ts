/**
 * What every grpc-lb policy shares: one pick_first leaf per endpoint, kept
 * across updates (an endpoint that stays keeps its leaf and connection —
 * gotcha 8); re-resolution asked when a READY endpoint drops; per-endpoint
 * counters fed by every call; passive outlier detection, active health
 * checks, the panic threshold and slow start (resilience-config.ts); the
 * channel state aggregated over the leaves; errors that name the target.
 *
 * A policy only says how to pick among the endpoints in rotation
 * (`PolicySpec.makePicker`): new weights, labels, routes, ejections or
 * health apply by building a new picker, never by reconnecting.
 */
import type {
  ChannelOptions,
  connectivityState as ConnectivityStateEnum,
  experimental,
} from '@grpc/grpc-js';
import type { NormalizedEndpoint } from '../endpoint';
import {
  isObserver,
  OBSERVER_OPTION,
  type EndpointHealth,
  type EndpointSnapshot,
  type LoadBalancerObserver,
  type PanicEvent,
} from '../observer';
import { EndpointStats, OutlierDetector, type OutlierSubject } from '../outlier-detection';
import {
  DEFAULT_FAILURE_STATUS_CODES,
  splitPolicyJson,
  type ResilienceConfig,
} from '../resilience-config';
import { endpointKey, TARGET_ATTRIBUTE, type GrpcLbEndpoint } from './endpoint-info';
import { HealthWatcher } from './health-watcher';
import { withoutKey } from './options';
import type { Runtime } from './runtime';

type ConnectivityState = ConnectivityStateEnum;

/** Time constant of the peak-EWMA latency (Linkerd's default decay). */
const LATENCY_DECAY_MS = 10_000;
const DEFAULT_FAILURES = new Set(DEFAULT_FAILURE_STATUS_CODES);

/** What a policy sees of one endpoint. */
export interface EndpointChild {
  readonly key: string;
  /** Weight, labels and zone from the resolver; absent for endpoints of non-grpc-lb resolvers. */
  readonly info: NormalizedEndpoint | undefined;
  /** READY when the endpoint is in rotation (connected, healthy, not ejected — or any connected one, in panic). */
  readonly state: ConnectivityState;
  readonly picker: experimental.Picker;
  readonly stats: EndpointStats;
}

export interface PickerContext<C> {
  readonly config: C;
  /** Every endpoint, in resolver order. */
  readonly children: readonly EndpointChild[];
  /** The endpoints in rotation, in resolver order (never empty). */
  readonly ready: readonly EndpointChild[];
  readonly target: string;
  /** Per-balancer state that outlives pickers (rotation positions); cleared when the config changes. */
  readonly memo: Map<string, unknown>;
  /** The weight to pick with: the resolver's (1 if none) × `rampOf`. */
  readonly weightOf: (child: EndpointChild) => number;
  /** Slow start: the fraction (0–1] of its share an endpoint gets now; 1 outside the window. */
  readonly rampOf: (child: EndpointChild) => number;
  /** Some endpoint is in its slow-start window: equal-share policies should pick by `weightOf`. */
  readonly rampingUp: boolean;
}

export interface PolicySpec<C> {
  readonly name: string;
  /** The policy's own fields (the shared resilience fields are parsed apart). Pure; throws `ConfigError`. */
  parse(json: Readonly<Record<string, unknown>>): C;
  /** The picker while at least one endpoint is in rotation. */
  makePicker(context: PickerContext<C>): experimental.Picker;
  /** The picker reads per-endpoint latency and outstanding calls (least request). */
  readonly needsLatency?: boolean;
}

const enum Tracking {
  None,
  Count,
  Latency,
}

export interface PolicyClasses {
  readonly name: string;
  readonly LoadBalancer: new (
    helper: experimental.ChannelControlHelper,
  ) => experimental.LoadBalancer;
  readonly Config: Parameters<typeof experimental.registerLoadBalancerType>[2];
}

/** A picker whose real picker is made on its first pick. */
function lazyPicker(make: () => experimental.Picker): experimental.Picker {
  let built: experimental.Picker | undefined;
  return {
    pick(args) {
      built ??= make();
      return built.pick(args);
    },
  };
}

export function createEndpointPolicy<C>(rt: Runtime, spec: PolicySpec<C>): PolicyClasses {
  const { LeafLoadBalancer, UnavailablePicker, QueuePicker, PickResultType } = rt.grpc.experimental;
  const SELECTOR_KEY = rt.grpc.experimental.CHANNEL_ARGS_CONFIG_SELECTOR_KEY;
  const CS = rt.grpc.connectivityState;

  class PolicyConfig implements experimental.TypedLoadBalancingConfig {
    constructor(
      readonly parsed: C,
      readonly resilience: ResilienceConfig,
      private readonly json: unknown,
    ) {}
    getLoadBalancerName(): string {
      return spec.name;
    }
    toJsonObject(): object {
      return { [spec.name]: this.json ?? {} };
    }
    static createFromJson(json: unknown): PolicyConfig {
      const { own, resilience } = splitPolicyJson(json, spec.name);
      return new PolicyConfig(spec.parse(own), resilience, json);
    }
  }

  class Child implements EndpointChild, OutlierSubject {
    state: ConnectivityState = CS.IDLE;
    connectivity: ConnectivityState = CS.IDLE;
    leafPicker!: experimental.Picker;
    leaf!: experimental.LeafLoadBalancer;
    readonly picker: experimental.Picker;
    readonly stats = new EndpointStats();
    subchannel: experimental.SubchannelInterface | undefined;
    watcher: HealthWatcher | undefined;
    health: EndpointHealth = 'not_checked';
    ejectedUntil = 0;
    timesEjected = 0;
    returnTimer: NodeJS.Timeout | undefined;
    readySince = 0;
    removed = false;

    /** Counting without latency needs no per-call allocation: these are bound once. */
    readonly started: () => void;
    readonly ended: (code: number) => void;

    constructor(
      readonly key: string,
      public info: NormalizedEndpoint | undefined,
      private readonly balancer: EndpointPolicyLoadBalancer,
    ) {
      this.picker = { pick: (args) => this.pick(args) };
      this.started = () => {
        this.stats.outstanding++;
      };
      this.ended = (code) => balancer.callEnded(this, code, -1);
    }

    /** The leaf's pick, with the call's outcome reported back to this endpoint's counters when needed. */
    private pick(args: experimental.PickArgs): experimental.PickResult {
      const result = this.leafPicker.pick(args);
      const tracking = this.balancer.tracking;
      if (tracking === Tracking.None || result.pickResultType !== PickResultType.COMPLETE)
        return result;
      if (
        tracking === Tracking.Count &&
        result.onCallStarted === null &&
        result.onCallEnded === null
      ) {
        // pick_first hands out a fresh result object per pick.
        result.onCallStarted = this.started;
        result.onCallEnded = this.ended;
        return result;
      }
      return this.balancer.trackLatency(this, result);
    }
  }

  class EndpointPolicyLoadBalancer implements experimental.LoadBalancer {
    private children = new Map<string, Child>();
    private childList: Child[] = [];
    private state: ConnectivityState = CS.IDLE;
    private config: C | undefined;
    private resilience: ResilienceConfig | undefined;
    private configText = '';
    private readonly memo = new Map<string, unknown>();
    private detector: OutlierDetector | undefined;
    private intervalTimer: NodeJS.Timeout | undefined;
    private rampTimer: NodeJS.Timeout | undefined;
    private recomputeImmediate: NodeJS.Immediate | undefined;
    private observer: LoadBalancerObserver | undefined;
    private panic = false;
    private updatesPaused = false;
    private target = 'target';
    private note = '';
    private lastError: string | null = null;
    private destroyed = false;

    private readonly sharedHelper: Pick<
      experimental.ChannelControlHelper,
      'requestReresolution' | 'addChannelzChild' | 'removeChannelzChild'
    >;

    constructor(private readonly helper: experimental.ChannelControlHelper) {
      this.sharedHelper = {
        requestReresolution: helper.requestReresolution.bind(helper),
        addChannelzChild: helper.addChannelzChild.bind(helper),
        removeChannelzChild: helper.removeChannelzChild.bind(helper),
      };
    }

    updateAddressList(
      endpoints: experimental.StatusOr<experimental.Endpoint[]>,
      config: experimental.TypedLoadBalancingConfig,
      options: ChannelOptions,
      resolutionNote: string,
    ): boolean {
      if (!(config instanceof PolicyConfig)) return false;
      const policyConfig = config as PolicyConfig;
      const configText = JSON.stringify(policyConfig.toJsonObject());
      if (configText !== this.configText) {
        this.memo.clear();
        this.configText = configText;
        this.applyResilience(policyConfig.resilience);
      }
      this.config = policyConfig.parsed;
      const target: unknown = options[TARGET_ATTRIBUTE];
      if (typeof target === 'string') this.target = target;
      this.note = resolutionNote;
      this.attachObserver(options[OBSERVER_OPTION]);
      this.updateTracking();
      if (!endpoints.ok) {
        if (this.children.size === 0) {
          this.publish(
            CS.TRANSIENT_FAILURE,
            new UnavailablePicker(endpoints.error),
            endpoints.error.details,
          );
        } else {
          this.recompute();
        }
        return true;
      }
      const leafOptions = withoutKey(withoutKey(options, SELECTOR_KEY), OBSERVER_OPTION);
      const next = new Map<string, Child>();
      const added: Child[] = [];
      for (const endpoint of endpoints.value) {
        const key = endpointKey(endpoint);
        if (next.has(key)) continue;
        const info = (endpoint as Partial<GrpcLbEndpoint>).grpcLb;
        const existing = this.children.get(key);
        if (existing) {
          existing.info = info;
          next.set(key, existing);
        } else {
          const child = this.createChild(key, info, endpoint, leafOptions);
          next.set(key, child);
          added.push(child);
        }
      }
      for (const [key, child] of this.children) {
        if (!next.has(key)) this.removeChild(child);
      }
      this.children = next;
      this.childList = [...next.values()];
      rt.trace(`${spec.name} ${this.target}: ${next.size} endpoints, ${added.length} new`);
      if (next.size === 0) {
        const details = `grpc-lb: no endpoints for ${this.target}${resolutionNote ? ` (${resolutionNote})` : ''}`;
        this.publish(CS.TRANSIENT_FAILURE, new UnavailablePicker({ details }), details);
        return true;
      }
      this.updatesPaused = true;
      for (const child of added) child.leaf.startConnecting();
      this.updatesPaused = false;
      this.recompute();
      return true;
    }

    exitIdle(): void {
      for (const child of this.childList) {
        if (child.connectivity === CS.IDLE) child.leaf.exitIdle();
      }
    }

    resetBackoff(): void {
      // The leaves' subchannels own their reconnect backoff.
    }

    destroy(): void {
      this.destroyed = true;
      for (const child of this.childList) this.removeChild(child);
      this.children.clear();
      this.childList = [];
      this.memo.clear();
      this.configText = '';
      this.detector = undefined;
      this.resilience = undefined;
      if (this.intervalTimer) clearInterval(this.intervalTimer);
      this.intervalTimer = undefined;
      if (this.rampTimer) clearTimeout(this.rampTimer);
      this.rampTimer = undefined;
      if (this.recomputeImmediate) clearImmediate(this.recomputeImmediate);
      this.recomputeImmediate = undefined;
      this.observer?.detach(this);
      this.observer = undefined;
    }

    getTypeName(): string {
      return spec.name;
    }

    /** Wraps a completed pick so the call's start, end, status and latency reach the endpoint's counters. */
    trackLatency(child: Child, result: experimental.PickResult): experimental.PickResult {
      const { onCallStarted, onCallEnded } = result;
      let startedAt = 0;
      result.onCallStarted = () => {
        child.stats.outstanding++;
        startedAt = performance.now();
        onCallStarted?.();
      };
      result.onCallEnded = (code, details, metadata) => {
        this.callEnded(child, code, performance.now() - startedAt);
        onCallEnded?.(code, details, metadata);
      };
      return result;
    }

    snapshot(): EndpointSnapshot[] {
      return this.childList.map((child) => ({
        target: this.target,
        policy: spec.name,
        address: child.key,
        state: CS[child.connectivity],
        health: child.health,
        inRotation: child.state === CS.READY,
        ejected: child.ejectedUntil !== 0,
        ejectedUntil: child.ejectedUntil,
        timesEjected: child.timesEjected,
        calls: child.stats.calls,
        failures: child.stats.failures,
        outstanding: child.stats.outstanding,
        latencyEwmaMs: child.stats.latencyEwmaMs,
        weight: child.info?.weight ?? 1,
        effectiveWeight: this.weightOf(child, Date.now()),
        labels: child.info?.labels ?? {},
      }));
    }

    /** `latencyMs` < 0: not measured. */
    callEnded(child: Child, code: number, latencyMs: number): void {
      const stats = child.stats;
      if (stats.outstanding > 0) stats.outstanding--; // tracking may have been switched on mid-call
      stats.calls++;
      const failed = (
        this.resilience?.outlierDetection?.failureStatusCodes ?? DEFAULT_FAILURES
      ).has(code);
      if (failed) stats.failures++;
      if (latencyMs >= 0) stats.recordLatency(latencyMs, performance.now(), LATENCY_DECAY_MS);
      if (this.detector && !child.removed && !this.destroyed) {
        this.detector.record(child, failed, this.childList, Date.now());
      }
    }

    /** What each call must report: nothing, counts (outlier detection), or counts and latency. */
    tracking: Tracking = Tracking.None;

    private updateTracking(): void {
      this.tracking =
        spec.needsLatency || this.observer
          ? Tracking.Latency
          : this.resilience?.outlierDetection
            ? Tracking.Count
            : Tracking.None;
    }

    private applyResilience(resilience: ResilienceConfig): void {
      this.resilience = resilience;
      if (this.intervalTimer) clearInterval(this.intervalTimer);
      this.intervalTimer = undefined;
      const outlier = resilience.outlierDetection;
      if (outlier) {
        this.detector = new OutlierDetector(outlier, {
          eject: (subject, reason) => this.ejected(subject as Child, reason),
          random: Math.random,
        });
        this.intervalTimer = setInterval(() => this.tick(), outlier.intervalMs);
        this.intervalTimer.unref();
      } else {
        this.detector = undefined;
        for (const child of this.childList) this.returnChild(child, false);
      }
      for (const child of this.childList) this.configureHealth(child);
    }

    private tick(): void {
      if (!this.detector || this.destroyed) return;
      this.detector.tick(this.childList, Date.now());
    }

    private ejected(child: Child, reason: string): void {
      const until = child.ejectedUntil;
      rt.trace(
        `${spec.name} ${this.target}: ejected ${child.key} for ${until - Date.now()} ms (times ejected ${child.timesEjected}): ${reason}`,
      );
      if (child.returnTimer) clearTimeout(child.returnTimer);
      child.returnTimer = setTimeout(
        () => this.returnChild(child, true),
        Math.max(0, until - Date.now()),
      );
      child.returnTimer.unref();
      this.recompute();
      this.observer?.emit('eject', {
        target: this.target,
        address: child.key,
        reason,
        ejectedUntil: until,
        timesEjected: child.timesEjected,
      });
    }

    private returnChild(child: Child, recompute: boolean): void {
      if (child.returnTimer) clearTimeout(child.returnTimer);
      child.returnTimer = undefined;
      if (child.ejectedUntil === 0) return;
      child.ejectedUntil = 0;
      child.stats.consecutiveFailures = 0;
      if (child.removed || this.destroyed) return;
      rt.trace(`${spec.name} ${this.target}: ${child.key} returns from ejection`);
      if (recompute) this.recompute();
      this.observer?.emit('return', { target: this.target, address: child.key });
    }

    private configureHealth(child: Child): void {
      const healthCheck = this.resilience?.healthCheck;
      if (!healthCheck) {
        child.watcher?.destroy();
        child.watcher = undefined;
        child.health = 'not_checked';
        return;
      }
      if (child.watcher || !child.subchannel) return;
      child.health = 'unknown';
      child.watcher = new HealthWatcher(
        rt,
        child.subchannel,
        healthCheck.serviceName,
        healthCheck.checkIntervalMs,
        (health) => {
          child.health = health;
          if (child.removed || this.destroyed) return;
          this.recompute();
          this.observer?.emit('health', { target: this.target, address: child.key, health });
        },
        `${spec.name} ${this.target}: ${child.key}`,
      );
    }

    private attachObserver(value: unknown): void {
      const observer = isObserver(value) ? value : undefined;
      if (observer === this.observer) return;
      this.observer?.detach(this);
      this.observer = observer;
      observer?.attach(this, rt.logger);
    }

    private createChild(
      key: string,
      info: NormalizedEndpoint | undefined,
      endpoint: experimental.Endpoint,
      options: ChannelOptions,
    ): Child {
      const child = new Child(key, info, this);
      // Only createSubchannel and updateState are per endpoint; the rest are bound once per balancer.
      const helper: experimental.ChannelControlHelper = {
        ...this.sharedHelper,
        createSubchannel: (address, args) => {
          const subchannel = this.helper.createSubchannel(address, args);
          child.watcher?.destroy();
          child.watcher = undefined;
          child.subchannel = subchannel;
          this.configureHealth(child);
          return subchannel;
        },
        updateState: (
          state: ConnectivityState,
          picker: experimental.Picker,
          errorMessage: string | null,
        ) => {
          if (this.destroyed || child.removed) return;
          const previous = child.connectivity;
          child.connectivity = state;
          child.leafPicker = picker;
          if (errorMessage) this.lastError = errorMessage;
          if (state === CS.READY && previous !== CS.READY) child.readySince = Date.now();
          if (previous === CS.READY && state !== CS.READY) {
            rt.trace(`${spec.name} ${this.target}: ${key} left READY`);
            this.helper.requestReresolution();
            // Out of rotation at once: no call may be picked onto a dead connection.
            this.recompute();
          } else {
            // Joining (or still connecting): batched, so 10,000 endpoints connecting in one turn
            // of the event loop rebuild the picker once, not 10,000 times.
            this.scheduleRecompute();
          }
        },
      };
      child.leaf = new LeafLoadBalancer(endpoint, helper, options, this.note);
      child.leafPicker = new QueuePicker(child.leaf as unknown as experimental.LoadBalancer);
      return child;
    }

    private removeChild(child: Child): void {
      child.removed = true;
      child.watcher?.destroy();
      child.watcher = undefined;
      if (child.returnTimer) clearTimeout(child.returnTimer);
      child.returnTimer = undefined;
      child.leaf.destroy();
    }

    private healthOk(child: Child): boolean {
      return (
        child.health === 'not_checked' ||
        child.health === 'serving' ||
        child.health === 'unimplemented'
      );
    }

    private rampOf(child: EndpointChild, now: number): number {
      const slowStart = this.resilience?.slowStart;
      const since = (child as Child).readySince;
      if (!slowStart || since === 0) return 1;
      const elapsed = now - since;
      if (elapsed >= slowStart.windowMs) return 1;
      const ramp = Math.pow(Math.max(elapsed, 0) / slowStart.windowMs, 1 / slowStart.aggression);
      return Math.max(slowStart.minWeightPercent / 100, ramp);
    }

    private weightOf(child: EndpointChild, now: number): number {
      return (child.info?.weight ?? 1) * this.rampOf(child, now);
    }

    private scheduleRecompute(): void {
      if (this.recomputeImmediate || this.updatesPaused) return;
      this.recomputeImmediate = setImmediate(() => {
        this.recomputeImmediate = undefined;
        this.recompute();
      });
    }

    private recompute(): void {
      if (this.recomputeImmediate) {
        clearImmediate(this.recomputeImmediate);
        this.recomputeImmediate = undefined;
      }
      if (this.updatesPaused || this.destroyed || this.config === undefined) return;
      const children = this.childList;
      const resilience = this.resilience;
      const guarded =
        resilience !== undefined &&
        (resilience.outlierDetection !== undefined || resilience.healthCheck !== undefined);
      // An endpoint whose health is not known yet is not counted against the threshold.
      let healthy = 0;
      for (const child of children) {
        if (child.ejectedUntil === 0 && (child.health === 'unknown' || this.healthOk(child)))
          healthy++;
      }
      const threshold = resilience?.panicThresholdPercent ?? 0;
      const panic =
        guarded &&
        threshold > 0 &&
        children.length > 0 &&
        healthy * 100 < threshold * children.length;
      let panicEvent: PanicEvent | undefined;
      if (panic !== this.panic) {
        this.panic = panic;
        const healthyPercent = children.length ? Math.round((healthy * 100) / children.length) : 0;
        rt.trace(
          `${spec.name} ${this.target}: panic mode ${panic ? 'on' : 'off'}: ${healthy} of ${children.length} endpoints healthy (threshold ${threshold}%)`,
        );
        panicEvent = {
          target: this.target,
          active: panic,
          healthyPercent,
          thresholdPercent: threshold,
        };
      }
      const ready: Child[] = [];
      const idle: Child[] = [];
      let waiting = 0;
      for (const child of children) {
        const connected = child.connectivity === CS.READY;
        const usable = connected && (panic || (child.ejectedUntil === 0 && this.healthOk(child)));
        child.state = usable ? CS.READY : connected ? CS.TRANSIENT_FAILURE : child.connectivity;
        if (usable) ready.push(child);
        else if (child.connectivity === CS.CONNECTING || (connected && child.health === 'unknown'))
          waiting++;
        else if (child.connectivity === CS.IDLE) idle.push(child);
      }
      const now = Date.now();
      const slowStart = resilience?.slowStart;
      const rampingUp =
        slowStart !== undefined &&
        ready.some((c) => c.readySince !== 0 && now - c.readySince < slowStart.windowMs);
      if (ready.length > 0) {
        // Built at the first pick: a burst of state changes (10,000 endpoints connecting) costs one build.
        const config = this.config;
        const picker = lazyPicker(() =>
          spec.makePicker({
            config,
            children,
            ready,
            target: this.target,
            memo: this.memo,
            weightOf: (child) => this.weightOf(child, now),
            rampOf: (child) => this.rampOf(child, now),
            rampingUp,
          }),
        );
        this.publish(CS.READY, picker, null);
      } else if (waiting > 0 || idle.length > 0) {
        this.publish(CS.CONNECTING, new QueuePicker(this), null);
      } else {
        const connected = children.filter((c) => c.connectivity === CS.READY).length;
        const details =
          connected > 0
            ? `grpc-lb: no usable endpoint for ${this.target}: ${connected} of ${children.length} connected, all ejected or unhealthy`
            : `grpc-lb: no reachable endpoint for ${this.target}: all ${children.length} failing` +
              (this.lastError ? ` (last error: ${this.lastError})` : '');
        this.publish(CS.TRANSIENT_FAILURE, new UnavailablePicker({ details }), details);
      }
      if (rampingUp && !this.rampTimer) {
        // Slow start: rebuild the picker as weights grow.
        this.rampTimer = setTimeout(
          () => {
            this.rampTimer = undefined;
            this.recompute();
          },
          Math.max(50, slowStart.windowMs / 20),
        );
        this.rampTimer.unref();
      }
      // Every endpoint stays connected: a leaf that went idle reconnects.
      for (const child of idle) child.leaf.exitIdle();
      if (panicEvent) this.observer?.emit('panic', panicEvent);
    }

    private publish(
      state: ConnectivityState,
      picker: experimental.Picker,
      errorMessage: string | null,
    ): void {
      if (state !== this.state)
        rt.trace(`${spec.name} ${this.target}: ${CS[this.state]} -> ${CS[state]}`);
      this.state = state;
      this.helper.updateState(state, picker, errorMessage);
    }
  }

  return { name: spec.name, LoadBalancer: EndpointPolicyLoadBalancer, Config: PolicyConfig };
}
