/**
 * The LoadBalancer grpc-js drives for every grpc-lb policy: it keeps one
 * child per endpoint across resolver updates (`endpoint-child.ts`), batches
 * their state changes, asks for re-resolution when a READY endpoint drops,
 * and on every change asks the resilience controller which endpoints may
 * take calls, the aggregator what the channel shows, the startup grace
 * whether to hold READY back a little longer, and the policy for a picker
 * over the endpoints in rotation. Connected endpoints that the resolver
 * removes en masse are held in rotation for a while (`removal-hold-down.ts`).
 * New connections start a bounded number at a time (`connection-pacer.ts`).
 */
import type {
  ChannelOptions,
  connectivityState as ConnectivityStateEnum,
  experimental,
} from '@grpc/grpc-js';
import {
  isObserver,
  OBSERVER_OPTION,
  type EndpointSnapshot,
  type LoadBalancerObserver,
  type ObservedBalancer,
} from '../observer';
import {
  METRICS_OPTION,
  type EndpointSource,
  type GrpcLbMetrics,
  type SubsetLabels,
  type TargetMetrics,
} from '../metrics';
import type { ResilienceConfig } from '../resilience-config';
import { CallGate } from './call-limits';
import { CallTracker, Tracking } from './call-tracking';
import { ConnectionPacer } from './connection-pacer';
import { PacedSubchannel } from './paced-subchannel';
import { ChildEndpoint, type ChildOwner } from './endpoint-child';
import { EndpointSubsetting } from './endpoint-subsetting';
import { endpointKey, TARGET_ATTRIBUTE, type GrpcLbEndpoint } from './endpoint-info';
import type { PolicySpec } from './endpoint-policy';
import { withoutKey } from './options';
import { isMassRemoval, RemovalHoldDown } from './removal-hold-down';
import { ResilienceController, type ResilienceHost } from './resilience-controller';
import type { Runtime } from './runtime';
import { StartupGrace } from './startup-grace';
import { describeNoEndpoints, StateAggregator, type Aggregate } from './state-aggregation';
import { zoneAwareMaker, ZoneRouting } from './zone-routing';

type ConnectivityState = ConnectivityStateEnum;

/** A policy's parsed config: its own fields and the shared resilience options. */
export class EndpointPolicyConfig<C> implements experimental.TypedLoadBalancingConfig {
  constructor(
    private readonly name: string,
    readonly parsed: C,
    readonly resilience: ResilienceConfig,
    private readonly json: unknown,
  ) {}
  getLoadBalancerName(): string {
    return this.name;
  }
  toJsonObject(): object {
    return { [this.name]: this.json ?? {} };
  }
}

export class EndpointBalancer<C>
  implements experimental.LoadBalancer, ObservedBalancer, ChildOwner, ResilienceHost, EndpointSource
{
  /** The endpoints the resolver lists now, by key. */
  private childMap = new Map<string, ChildEndpoint>();
  /** The same, in the resolver's order. */
  private listed: ChildEndpoint[] = [];
  /** Counts resolver updates (`ChildEndpoint.listedIn`). */
  private updates = 0;
  /** Those, then the endpoints held after a mass removal. */
  children: ChildEndpoint[] = [];
  private state: ConnectivityState;
  private config: C | undefined;
  private configText = '';
  private readonly memo = new Map<string, unknown>();
  private recomputeImmediate: NodeJS.Immediate | undefined;
  observer: LoadBalancerObserver | undefined;
  private updatesPaused = false;
  target = 'target';
  private note = '';
  destroyed = false;
  readonly sharedHelper: ChildOwner['sharedHelper'];
  private readonly tracker: CallTracker<ChildEndpoint>;
  /** The registration's instruments `tracker.metrics` was made from. */
  private metricsSource: GrpcLbMetrics | undefined;
  private readonly resilience: ResilienceController;
  private readonly aggregator: StateAggregator;
  private readonly grace: StartupGrace;
  private readonly holdDown: RemovalHoldDown<ChildEndpoint>;
  private readonly zoneRouting: ZoneRouting;
  private readonly subsetting: EndpointSubsetting;
  private readonly gate: CallGate;
  /** When each endpoint's connection starts. */
  readonly pacer: ConnectionPacer<ChildEndpoint>;
  readonly queuePicker: experimental.Picker;
  private readonly CS: typeof import('@grpc/grpc-js').connectivityState;

  constructor(
    private readonly rt: Runtime,
    private readonly spec: PolicySpec<C>,
    private readonly Config: abstract new (...args: never[]) => EndpointPolicyConfig<C>,
    private readonly helper: experimental.ChannelControlHelper,
  ) {
    this.CS = rt.grpc.connectivityState;
    this.state = this.CS.IDLE;
    this.sharedHelper = {
      requestReresolution: helper.requestReresolution.bind(helper),
      addChannelzChild: helper.addChannelzChild.bind(helper),
      removeChannelzChild: helper.removeChannelzChild.bind(helper),
    };
    this.resilience = new ResilienceController(rt, this);
    this.tracker = new CallTracker(rt.grpc.experimental.PickResultType.COMPLETE, this.resilience);
    this.aggregator = new StateAggregator(rt);
    this.gate = new CallGate(rt, helper, this);
    this.grace = new StartupGrace(() => this.recompute());
    this.zoneRouting = new ZoneRouting(rt, this);
    this.subsetting = new EndpointSubsetting(rt.logger);
    this.pacer = new ConnectionPacer(() => this.scheduleRecompute());
    this.queuePicker = new rt.grpc.experimental.QueuePicker(this);
    this.holdDown = new RemovalHoldDown((expired) => {
      this.rt.trace(
        `${this.describe}: removal hold-down over for ${expired.map((c) => c.key).join(', ')}`,
      );
      this.dropHeld(expired);
    });
  }

  get describe(): string {
    return `${this.spec.name} ${this.target}`;
  }

  updateAddressList(
    endpoints: experimental.StatusOr<experimental.Endpoint[]>,
    config: experimental.TypedLoadBalancingConfig,
    options: ChannelOptions,
    resolutionNote: string,
  ): boolean {
    if (!(config instanceof this.Config)) return false;
    const configText = JSON.stringify(config.toJsonObject());
    if (configText !== this.configText) {
      this.memo.clear();
      this.configText = configText;
      this.resilience.apply(config.resilience);
      this.gate.configure(config.resilience);
      this.grace.configChanged();
      if (config.resilience.removalHoldDownMs === 0 && this.holdDown.size > 0) {
        this.dropHeld(this.holdDown.releaseAll(), false);
      }
    }
    this.config = config.parsed;
    const target: unknown = options[TARGET_ATTRIBUTE];
    if (typeof target === 'string') this.target = target;
    this.followMetrics(options[METRICS_OPTION] === false);
    this.note = resolutionNote;
    this.attachObserver(options[OBSERVER_OPTION]);
    this.updateTracking();
    const { UnavailablePicker } = this.rt.grpc.experimental;
    if (!endpoints.ok) {
      if (this.children.length === 0) {
        this.grace.noneReady();
        this.publish(
          this.CS.TRANSIENT_FAILURE,
          new UnavailablePicker(endpoints.error),
          endpoints.error.details,
        );
      } else {
        this.recompute();
      }
      return true;
    }
    const leafOptions = withoutKey(
      withoutKey(
        withoutKey(options, this.rt.grpc.experimental.CHANNEL_ARGS_CONFIG_SELECTOR_KEY),
        OBSERVER_OPTION,
      ),
      METRICS_OPTION,
    );
    // Only the endpoints of this client's subset get a child; the others are as if not listed.
    const subset = this.subsetting.select(
      endpoints.value,
      endpointKey,
      config.resilience.subsetting,
      this.target,
    );
    // The children are kept in place: an update that changed 1% of 10,000 endpoints looks each
    // one up and touches the 1%, rather than building a new map of all of them.
    const round = ++this.updates;
    const listed: ChildEndpoint[] = [];
    const added: ChildEndpoint[] = [];
    for (const endpoint of endpoints.value) {
      const key = endpointKey(endpoint);
      if (subset !== undefined && !subset.has(key)) continue;
      let child = this.childMap.get(key);
      if (child === undefined) {
        child = this.holdDown.take(key);
        if (child === undefined) {
          child = new ChildEndpoint(
            this.rt,
            key,
            (endpoint as Partial<GrpcLbEndpoint>).grpcLb,
            endpoint,
            leafOptions,
            this.note,
            this,
            this.tracker,
          );
          added.push(child);
        }
        this.childMap.set(key, child);
      } else if (child.listedIn === round) {
        continue; // listed twice
      }
      child.listedIn = round;
      child.info = (endpoint as Partial<GrpcLbEndpoint>).grpcLb;
      listed.push(child);
    }
    this.removeMissing(round, config.resilience.removalHoldDownMs);
    this.listed = listed;
    this.children = this.holdDown.size > 0 ? [...listed, ...this.holdDown.values()] : listed;
    this.rt.trace(
      `${this.describe}: ${listed.length} endpoints` +
        (subset ? ` (${this.subsetting.describe} of ${endpoints.value.length})` : '') +
        `, ${added.length} new` +
        (this.holdDown.size > 0 ? `, ${this.holdDown.size} held after removal` : ''),
    );
    if (this.children.length === 0) {
      const details = describeNoEndpoints(this.target, resolutionNote);
      this.grace.noneReady();
      this.publish(this.CS.TRANSIENT_FAILURE, new UnavailablePicker({ details }), details);
      return true;
    }
    this.updatesPaused = true;
    for (const child of added) this.pacer.request(child);
    this.pacer.flush();
    this.updatesPaused = false;
    if (this.pacer.queued > 0) {
      this.rt.trace(
        `${this.describe}: pacing connections: ${this.pacer.inProgress} connecting, ${this.pacer.queued} waiting (at most ${this.pacer.limit} at once)`,
      );
    }
    this.recompute();
    return true;
  }

  exitIdle(): void {
    const IDLE = this.CS.IDLE;
    this.connectIdle(this.children.filter((child) => child.connectivity === IDLE));
  }

  /** Idle endpoints (never started, or disconnected) connect, paced. */
  private connectIdle(idle: readonly ChildEndpoint[]): void {
    if (idle.length === 0) return;
    for (const child of idle) this.pacer.request(child);
    this.pacer.flush();
  }

  resetBackoff(): void {
    // The leaves' subchannels own their reconnect backoff.
  }

  destroy(): void {
    this.destroyed = true;
    this.holdDown.destroy();
    this.pacer.destroy();
    for (const child of this.children) this.removeChild(child);
    this.childMap.clear();
    this.listed = [];
    this.children = [];
    this.memo.clear();
    this.configText = '';
    this.resilience.destroy();
    this.gate.destroy();
    this.grace.destroy();
    if (this.recomputeImmediate) clearImmediate(this.recomputeImmediate);
    this.recomputeImmediate = undefined;
    this.observer?.detach(this);
    this.observer = undefined;
    this.metricsSource?.unwatch(this);
    this.metricsSource = undefined;
    this.tracker.metrics = undefined;
  }

  getTypeName(): string {
    return this.spec.name;
  }

  snapshot(): EndpointSnapshot[] {
    const now = Date.now();
    return this.children.map((child) => ({
      target: this.target,
      policy: this.spec.name,
      address: child.key,
      state: this.CS[child.connectivity],
      health: child.health,
      inRotation: child.state === this.CS.READY,
      ejected: child.ejectedUntil !== 0,
      ejectedUntil: child.ejectedUntil,
      timesEjected: child.timesEjected,
      calls: child.stats.calls,
      failures: child.stats.failures,
      outstanding: child.stats.outstanding,
      latencyEwmaMs: child.stats.latencyEwmaMs,
      weight: child.info?.weight ?? 1,
      effectiveWeight: this.resilience.weightOf(child, now),
      labels: child.info?.labels ?? {},
      heldUntil: child.heldUntil,
    }));
  }

  /** ChildOwner: the leaf of `child` wants a subchannel. */
  createSubchannel(
    child: ChildEndpoint,
    address: experimental.SubchannelAddress,
    args: ChannelOptions,
  ): experimental.SubchannelInterface {
    const subchannel = this.helper.createSubchannel(address, args);
    child.useSubchannel(subchannel);
    this.resilience.subchannelChanged(child);
    // Its reconnections after a failure are paced too.
    return new PacedSubchannel(subchannel, child, this.CS.IDLE);
  }

  /** ChildOwner: the leaf of `child` changed state. */
  leafStateChanged(child: ChildEndpoint, previous: ConnectivityState): void {
    if (this.destroyed) return;
    const READY = this.CS.READY;
    if (child.connectivity === READY || child.connectivity === this.CS.TRANSIENT_FAILURE) {
      this.pacer.settled(child);
    }
    if (child.heldUntil !== 0 && child.connectivity !== READY) {
      // Held after removal, and its connection is gone: it leaves now, without reconnecting.
      if (this.holdDown.release(child)) {
        this.rt.trace(`${this.describe}: ${child.key}, held after removal, left READY`);
        this.dropHeld([child]);
      }
      return;
    }
    if (previous === READY && child.connectivity !== READY) {
      this.rt.trace(`${this.describe}: ${child.key} left READY`);
      this.helper.requestReresolution();
      // Out of rotation at once: no call may be picked onto a dead connection.
      this.recompute();
    } else {
      // Joining (or still connecting): batched, so 10,000 endpoints connecting in one turn
      // of the event loop rebuild the picker once, not 10,000 times.
      this.scheduleRecompute();
    }
  }

  /** Rebuilds the channel state and picker from the endpoints' states now. */
  recompute(): void {
    if (this.recomputeImmediate) {
      clearImmediate(this.recomputeImmediate);
      this.recomputeImmediate = undefined;
    }
    const config = this.config;
    if (this.updatesPaused || this.destroyed || config === undefined) return;
    const resilience = this.resilience;
    if (this.holdDown.size > 0) this.dropUnhealthyHeld();
    const children = this.children;
    const { panic, event } = resilience.evaluatePanic();
    const aggregate = this.aggregator.aggregate(children, {
      panic,
      healthOk: (child) => resilience.healthOk(child),
      awaitingHealth: (child) => resilience.awaitingHealth(child),
      healthDetail: (child) => resilience.healthDetail(child),
      healthService: resilience.current?.healthCheck?.serviceName,
      target: this.target,
      note: this.note,
    });
    const now = Date.now();
    if (aggregate.state !== this.CS.READY) {
      this.grace.noneReady();
    } else if (
      this.grace.hold(
        () => this.someUnsettled(aggregate),
        resilience.current?.startupGraceMs ?? 0,
        now,
      )
    ) {
      this.rt.trace(
        `${this.describe}: startup grace: ${aggregate.ready.length} of ${children.length} endpoints ready, waiting for the others to connect or fail`,
      );
      this.publish(this.CS.CONNECTING, new this.rt.grpc.experimental.QueuePicker(this), null);
      this.connectIdle(aggregate.idle);
      if (event) this.observer?.emit('panic', event);
      return;
    }
    const ready = aggregate.ready;
    const rampingUp = resilience.rampingUp(ready, now);
    const zones = this.zoneRouting.router(resilience.current?.zoneAware, panic, this.memo);
    const makePicker = zoneAwareMaker(this.spec, zones);
    const picker = this.aggregator.pickerFor(
      aggregate,
      () =>
        makePicker({
          config,
          children,
          ready,
          target: this.target,
          memo: this.memo,
          weightOf: (child) => resilience.weightOf(child, now),
          rampOf: (child) => resilience.rampOf(child, now),
          rampingUp,
          metrics: this.tracker.metrics,
        }),
      this,
    );
    this.publish(aggregate.state, picker, aggregate.failure ?? null);
    if (rampingUp) resilience.scheduleRamp();
    // Every endpoint stays connected: a leaf that went idle reconnects (paced).
    this.connectIdle(aggregate.idle);
    if (event) this.observer?.emit('panic', event);
  }

  /**
   * Whether some endpoint is still on its way: connecting, idle (it is told
   * to reconnect), awaiting its first health answer, or failed before and
   * trying to connect again right now (pick_first keeps reporting
   * TRANSIENT_FAILURE meanwhile). One waiting out its reconnect backoff is
   * settled.
   */
  private someUnsettled(aggregate: Aggregate): boolean {
    if (aggregate.waiting > 0 || aggregate.idle.length > 0) return true;
    const { TRANSIENT_FAILURE, CONNECTING } = this.CS;
    return this.children.some(
      (c) => c.connectivity === TRANSIENT_FAILURE && c.subchannelState === CONNECTING,
    );
  }

  private scheduleRecompute(): void {
    if (this.recomputeImmediate || this.updatesPaused) return;
    this.recomputeImmediate = setImmediate(() => {
      this.recomputeImmediate = undefined;
      this.recompute();
    });
  }

  /** For `grpc_lb.panic`. */
  get inPanic(): boolean {
    return this.resilience.inPanic;
  }

  /** For `grpc_lb.subset.endpoints` and `grpc_lb.slow_start.endpoints`. */
  get subsets(): readonly SubsetLabels[] {
    return this.config === undefined ? [] : (this.spec.subsetsOf?.(this.config) ?? []);
  }
  get rampingEndpoints(): number {
    return this.resilience.rampingEndpoints(Date.now());
  }

  /** The channel's metrics: switched on by `register({ metrics })`, for this target. */
  get metrics(): TargetMetrics | undefined {
    return this.tracker.metrics;
  }

  private followMetrics(unmeasured: boolean): void {
    const source = unmeasured ? undefined : this.rt.metrics;
    if (source === this.metricsSource && this.tracker.metrics?.target === this.target) return;
    this.metricsSource?.unwatch(this);
    this.metricsSource = source;
    this.tracker.metrics = source?.forTarget(this.target);
    source?.watch(this);
  }

  /** For `grpc_lb.endpoints`: each endpoint's state (ejected before its connection's). */
  countEndpoints(count: Parameters<EndpointSource['countEndpoints']>[0]): void {
    const { READY, CONNECTING, IDLE } = this.CS;
    for (const child of this.children) {
      const state = child.connectivity;
      count(
        child.ejectedUntil !== 0
          ? 'ejected'
          : state === READY
            ? 'ready'
            : state === CONNECTING
              ? 'connecting'
              : state === IDLE
                ? 'idle'
                : 'transient_failure',
        child.health,
        child.info,
      );
    }
  }

  /** What each call must report: nothing, counts (outlier detection), or counts and latency. */
  private updateTracking(): void {
    const { needsLatency } = this.spec;
    const pickerNeedsLatency =
      typeof needsLatency === 'function'
        ? this.config !== undefined && needsLatency(this.config)
        : needsLatency === true;
    this.tracker.mode =
      pickerNeedsLatency || this.observer || this.tracker.metrics
        ? Tracking.Latency
        : this.resilience.countsCalls
          ? Tracking.Count
          : Tracking.None;
  }

  private attachObserver(value: unknown): void {
    const observer = isObserver(value) ? value : undefined;
    if (observer === this.observer) return;
    this.observer?.detach(this);
    this.observer = observer;
    observer?.attach(this, this.rt.logger);
  }

  /**
   * Removes the endpoints of the previous list that update `round` did not
   * list, except that connected ones removed en masse are held for `holdDownMs`.
   */
  private removeMissing(round: number, holdDownMs: number): void {
    const READY = this.CS.READY;
    let readyBefore = 0;
    const removedReady: ChildEndpoint[] = [];
    for (const child of this.listed) {
      const connected = child.connectivity === READY;
      if (connected) readyBefore++;
      if (child.listedIn === round) continue;
      this.childMap.delete(child.key);
      if (connected) removedReady.push(child);
      else this.removeChild(child);
    }
    if (removedReady.length === 0) return;
    if (holdDownMs > 0 && isMassRemoval(removedReady.length, readyBefore)) {
      this.rt.logger.warn(
        `${this.target}: the resolver removed ${removedReady.length} of ${readyBefore} connected endpoints at once; ` +
          `they keep taking calls for up to ${holdDownMs} ms in case the registry lists them again (removalHoldDownMs)`,
      );
      this.holdDown.hold(removedReady, holdDownMs, Date.now());
      return;
    }
    for (const child of removedReady) this.removeChild(child);
  }

  /**
   * Held endpoints whose health check says they are not serving leave, as
   * Envoy drops a host removed by discovery once it fails its health check.
   */
  private dropUnhealthyHeld(): void {
    const resilience = this.resilience;
    const failing: ChildEndpoint[] = [];
    for (const child of this.holdDown.values()) {
      if (!resilience.healthOk(child) && !resilience.awaitingHealth(child)) failing.push(child);
    }
    for (const child of failing) this.holdDown.release(child);
    if (failing.length === 0) return;
    this.rt.trace(
      `${this.describe}: ${failing.map((c) => c.key).join(', ')}, held after removal, failed the health check`,
    );
    const gone = new Set(failing);
    this.children = this.children.filter((c) => !gone.has(c));
    this.destroyLater(failing);
  }

  /**
   * Drops endpoints whose hold-down ended (no longer held) and publishes
   * what is left (`recompute`: false when the caller does).
   */
  private dropHeld(dropped: readonly ChildEndpoint[], publish = true): void {
    if (this.destroyed || dropped.length === 0) return;
    const gone = new Set(dropped);
    this.children = this.children.filter((c) => !gone.has(c));
    // Not from inside the leaf's own state callback: the leaves go once it has returned.
    this.destroyLater(dropped);
    if (!publish) return;
    if (this.children.length === 0) {
      const details = describeNoEndpoints(this.target, this.note);
      this.grace.noneReady();
      this.publish(
        this.CS.TRANSIENT_FAILURE,
        new this.rt.grpc.experimental.UnavailablePicker({ details }),
        details,
      );
    } else {
      this.recompute();
    }
  }

  private destroyLater(children: readonly ChildEndpoint[]): void {
    queueMicrotask(() => {
      for (const child of children) {
        if (!child.removed && this.childMap.get(child.key) !== child) {
          this.removeChild(child);
        }
      }
    });
  }

  private removeChild(child: ChildEndpoint): void {
    this.pacer.remove(child);
    this.resilience.release(child);
    child.destroy();
  }

  private publish(
    state: ConnectivityState,
    picker: experimental.Picker,
    errorMessage: string | null,
  ): void {
    if (state !== this.state)
      this.rt.trace(`${this.describe}: ${this.CS[this.state]} -> ${this.CS[state]}`);
    this.state = state;
    this.gate.publish(state, picker, errorMessage);
  }
}
