/**
 * A fake channel for state-level tests of our load balancers, in the manner
 * of grpc-js's own MockSubchannel tests: the real LoadBalancer classes (and
 * the real pick_first `LeafLoadBalancer` under each endpoint) run against
 * fake subchannels whose connectivity the test sets, a fake
 * ChannelControlHelper that records every state the balancer publishes, and
 * fake health servers that answer `grpc.health.v1` checks. No sockets, no
 * servers.
 *
 *     const h = PolicyHarness.create({
 *       policy: ROUND_ROBIN_POLICY,
 *       config: { healthCheck: { serviceName: 'x' } },
 *       endpoints: ['10.0.0.1:80', { address: '10.0.0.2:80', weight: 3, labels: { v: '2' } }],
 *     });
 *     await h.ready('10.0.0.1:80', '10.0.0.2:80');
 *     await h.setHealth('10.0.0.1:80', 'SERVING');
 *     assert.equal(h.stateName, 'READY');
 *     assert.deepEqual(h.pickMany(10).counts, { '10.0.0.1:80': 10 });
 *
 * State changes reach the balancer through pick_first (`process.nextTick`)
 * and our batching (`setImmediate`): the async helpers (`ready`,
 * `setHealth`, …) settle before they resolve; after a synchronous change
 * (`subchannel(a).setState(…)`) call `await h.settle()`. With
 * `mock.timers`, mock `setTimeout`, `setInterval` and `Date`, never
 * `setImmediate` (settling needs it).
 */
import * as grpc from '@grpc/grpc-js';
import type { ChannelOptions, connectivityState as ConnectivityStateEnum } from '@grpc/grpc-js';
import type { experimental } from '@grpc/grpc-js';
import { normalizeEndpoint } from '../../endpoint';
import { CONSISTENT_HASH_POLICY } from '../../consistent-hash-config';
import { LEAST_REQUEST_POLICY } from '../../least-request-config';
import type { Logger } from '../../logger';
import { createMetrics, type MeterProviderLike } from '../../metrics';
import { OBSERVER_OPTION, type LoadBalancerObserver } from '../../observer';
import { ROUND_ROBIN_POLICY } from '../../service-config';
import { TRAFFIC_SPLIT_POLICY } from '../../traffic-split-config';
import { WEIGHTED_ROUND_ROBIN_POLICY } from '../../weighted-round-robin-config';
import { METHOD_PICK_KEY } from '../config-selector';
import { TARGET_ATTRIBUTE, toGrpcEndpoint, type GrpcLbEndpoint } from '../endpoint-info';
import type { PolicyClasses } from '../endpoint-policy';
import {
  setHealthClientFactory,
  type HealthClient,
  type HealthClientFactory,
  type HealthStreamHandlers,
} from '../health-watcher';
import { createConsistentHashPolicy } from '../consistent-hash';
import { createLeastRequestPolicy } from '../least-request';
import { createRoundRobinPolicy } from '../round-robin';
import { createRuntime, statusNames, type Runtime } from '../runtime';
import { createTrafficSplitPolicy } from '../traffic-split';
import { createWeightedRoundRobinPolicy } from '../weighted-round-robin';

type ConnectivityState = ConnectivityStateEnum;
type SubchannelRef = ReturnType<experimental.SubchannelInterface['getChannelzRef']>;
type RealSubchannel = ReturnType<experimental.SubchannelInterface['getRealSubchannel']>;

export const CS = grpc.connectivityState;
export const { PickResultType } = grpc.experimental;
export const Status = grpc.status;

/** The state names a test writes: `'READY'` rather than `connectivityState.READY`. */
export type StateName = 'IDLE' | 'CONNECTING' | 'READY' | 'TRANSIENT_FAILURE' | 'SHUTDOWN';

export function stateOf(state: ConnectivityState | StateName): ConnectivityState {
  return typeof state === 'string' ? CS[state] : state;
}

let nextSubchannelId = 1;

/**
 * A subchannel whose connectivity the test sets. It records every
 * `startConnecting()` call and keeps a reference count (pick_first refs
 * what it uses), so a test can check that nothing holds it after `destroy()`.
 */
export class FakeSubchannel implements experimental.SubchannelInterface {
  private state: ConnectivityState = CS.IDLE;
  private readonly listeners = new Set<experimental.ConnectivityStateListener>();
  private readonly healthListeners = new Set<experimental.HealthListener>();
  private readonly ref_: SubchannelRef;
  startConnectingCalls = 0;
  refs = 0;

  constructor(
    readonly address: string,
    readonly args: ChannelOptions,
  ) {
    const id = nextSubchannelId++;
    this.ref_ = { kind: 'subchannel', id, name: `fake ${address}` } as unknown as SubchannelRef;
  }

  /** Moves to `state` and tells every listener at once, as a real subchannel does. */
  setState(state: ConnectivityState | StateName, errorMessage?: string): void {
    const next = stateOf(state);
    const previous = this.state;
    if (next === previous) return;
    this.state = next;
    for (const listener of [...this.listeners]) {
      listener(this, previous, next, 0, errorMessage);
    }
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  getConnectivityState(): ConnectivityState {
    return this.state;
  }
  addConnectivityStateListener(listener: experimental.ConnectivityStateListener): void {
    this.listeners.add(listener);
  }
  removeConnectivityStateListener(listener: experimental.ConnectivityStateListener): void {
    this.listeners.delete(listener);
  }
  startConnecting(): void {
    this.startConnectingCalls++;
  }
  getAddress(): string {
    return this.address;
  }
  throttleKeepalive(): void {}
  ref(): void {
    this.refs++;
  }
  unref(): void {
    this.refs--;
  }
  getChannelzRef(): SubchannelRef {
    return this.ref_;
  }
  isHealthy(): boolean {
    return true;
  }
  addHealthStateWatcher(listener: experimental.HealthListener): void {
    this.healthListeners.add(listener);
  }
  removeHealthStateWatcher(listener: experimental.HealthListener): void {
    this.healthListeners.delete(listener);
  }
  addDataWatcher(): void {}
  getRealSubchannel(): RealSubchannel {
    return this as unknown as RealSubchannel;
  }
  realSubchannelEquals(other: experimental.SubchannelInterface): boolean {
    return other.getRealSubchannel() === this.getRealSubchannel();
  }
  getCallCredentials(): ReturnType<experimental.SubchannelInterface['getCallCredentials']> {
    return grpc.credentials.createEmpty();
  }
  getChannel(): ReturnType<experimental.SubchannelInterface['getChannel']> {
    throw new Error(
      `fake subchannel ${this.address} has no channel: health checks go through the kit's fake health servers`,
    );
  }
}

export interface StateUpdate {
  readonly state: ConnectivityState;
  readonly picker: experimental.Picker;
  readonly error: string | null;
}

/**
 * The channel side of a balancer: one `FakeSubchannel` per address (asking
 * again for an address returns the same one, as grpc-js's subchannel pool
 * does), every `updateState` recorded, re-resolution requests counted.
 */
export class FakeChannelControlHelper implements experimental.ChannelControlHelper {
  readonly subchannels = new Map<string, FakeSubchannel>();
  /** The address of every `createSubchannel` call, in order. */
  readonly created: string[] = [];
  readonly updates: StateUpdate[] = [];
  reresolutionRequests = 0;

  createSubchannel(address: experimental.SubchannelAddress, args: ChannelOptions): FakeSubchannel {
    const key = grpc.experimental.subchannelAddressToString(address);
    this.created.push(key);
    let subchannel = this.subchannels.get(key);
    if (!subchannel) {
      subchannel = new FakeSubchannel(key, args);
      this.subchannels.set(key, subchannel);
    }
    return subchannel;
  }
  updateState(state: ConnectivityState, picker: experimental.Picker, error: string | null): void {
    this.updates.push({ state, picker, error });
  }
  requestReresolution(): void {
    this.reresolutionRequests++;
  }
  addChannelzChild(): void {}
  removeChannelzChild(): void {}

  get last(): StateUpdate | undefined {
    return this.updates[this.updates.length - 1];
  }
}

/** The `ServingStatus` values of `grpc.health.v1.HealthCheckResponse`. */
export const ServingStatus = {
  UNKNOWN: 0,
  SERVING: 1,
  NOT_SERVING: 2,
  SERVICE_UNKNOWN: 3,
} as const;
export type ServingStatusName = keyof typeof ServingStatus;

interface WatchCall {
  readonly service: string;
  readonly handlers: HealthStreamHandlers;
  open: boolean;
}

/**
 * The health service of one endpoint. It starts `silent`: streams open and
 * nothing is answered (the first answer is pending). `setStatus` makes it
 * serve: every open and future `Watch` gets the status of its service name
 * (a status set without a name applies to every name; a name with no
 * status gets SERVICE_UNKNOWN, and `Check` NOT_FOUND, as grpc's health
 * servers answer). `unimplemented` answers UNIMPLEMENTED. Answers arrive
 * asynchronously, as from a real stream.
 */
export class FakeHealthServer {
  mode: 'silent' | 'serve' | 'unimplemented' = 'silent';
  /** Only `Watch` is unimplemented: the watcher falls back to polling `Check`. */
  watchUnimplemented = false;
  private readonly statuses = new Map<string | null, number>();
  readonly watches: WatchCall[] = [];
  /** Every `Check` call's service name, in order. */
  readonly checks: string[] = [];

  constructor(readonly address: string) {}

  /** The status for `service`, or for every service name when `service` is omitted. */
  setStatus(status: ServingStatusName | number, service?: string): void {
    this.mode = 'serve';
    this.statuses.set(service ?? null, typeof status === 'number' ? status : ServingStatus[status]);
    for (const call of this.openWatches()) this.answer(call);
  }

  /** The service names of the `Watch` streams open now. */
  openWatches(): WatchCall[] {
    return this.watches.filter((w) => w.open);
  }

  /** Fails every open `Watch` stream with `code`. */
  failWatches(code: grpc.status, details = 'stream failed'): void {
    for (const call of this.openWatches()) {
      call.open = false;
      queueMicrotask(() => call.handlers.onError(code, details));
    }
  }

  /** Ends every open `Watch` stream with OK (a server closing its streams). */
  endWatches(): void {
    for (const call of this.openWatches()) {
      call.open = false;
      queueMicrotask(() => call.handlers.onEnd());
    }
  }

  private statusOf(service: string): number {
    return this.statuses.get(service) ?? this.statuses.get(null) ?? ServingStatus.SERVICE_UNKNOWN;
  }

  private answer(call: WatchCall): void {
    const status = this.statusOf(call.service);
    queueMicrotask(() => {
      if (call.open) call.handlers.onStatus(status);
    });
  }

  /** @internal The client side, given to the balancer's health watcher. */
  client(): HealthClient {
    return {
      watch: (service, handlers) => {
        const call: WatchCall = { service, handlers, open: true };
        this.watches.push(call);
        if (this.mode === 'unimplemented' || this.watchUnimplemented) {
          call.open = false;
          queueMicrotask(() => handlers.onError(Status.UNIMPLEMENTED, 'unknown service'));
        } else if (this.mode === 'serve') {
          this.answer(call);
        }
        return {
          cancel: () => {
            call.open = false;
          },
        };
      },
      check: (service, _deadline, done) => {
        this.checks.push(service);
        if (this.mode === 'silent') return;
        queueMicrotask(() => {
          if (this.mode === 'unimplemented') {
            done({ code: Status.UNIMPLEMENTED, details: 'unknown service' }, 0);
          } else if (!this.statuses.has(service) && !this.statuses.has(null)) {
            done({ code: Status.NOT_FOUND, details: 'unknown service' }, 0);
          } else {
            done(null, this.statusOf(service));
          }
        });
      },
    };
  }
}

/** One fake health server per address, handed to the balancer in place of gRPC calls. */
export class FakeHealthServers {
  readonly servers = new Map<string, FakeHealthServer>();

  server(address: string): FakeHealthServer {
    let server = this.servers.get(address);
    if (!server) {
      server = new FakeHealthServer(address);
      this.servers.set(address, server);
    }
    return server;
  }

  readonly factory: HealthClientFactory = (subchannel) =>
    this.server(subchannel.getAddress()).client();
}

export interface EndpointInput {
  /** `host:port` (`[v6]:port`). */
  readonly address: string;
  readonly weight?: number;
  readonly labels?: Readonly<Record<string, string>>;
  readonly zone?: string;
  /** Kubernetes `hints.forZones`. */
  readonly forZones?: readonly string[];
}

/** An endpoint as one of our resolvers delivers it (with weight, labels and zone). */
export function endpoint(input: string | EndpointInput): GrpcLbEndpoint {
  const spec = typeof input === 'string' ? { address: input } : input;
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(spec.address);
  if (!match) throw new Error(`endpoint address ${spec.address} is not host:port`);
  return toGrpcEndpoint(
    normalizeEndpoint({
      host: match[1] ?? match[2],
      port: Number(match[3]),
      weight: spec.weight,
      labels: spec.labels,
      zone: spec.zone,
      forZones: spec.forZones,
    }),
  );
}

const POLICIES: Readonly<Record<string, (rt: Runtime) => PolicyClasses>> = {
  [ROUND_ROBIN_POLICY]: createRoundRobinPolicy,
  [WEIGHTED_ROUND_ROBIN_POLICY]: createWeightedRoundRobinPolicy,
  [TRAFFIC_SPLIT_POLICY]: createTrafficSplitPolicy,
  [LEAST_REQUEST_POLICY]: createLeastRequestPolicy,
  [CONSISTENT_HASH_POLICY]: createConsistentHashPolicy,
};

export interface HarnessOptions {
  /** One of our policy names (`grpc-lb.round_robin`, …) or a policy factory. */
  readonly policy: string | ((rt: Runtime) => PolicyClasses);
  /** The policy's JSON config (the value under its name). Default `{}`. */
  readonly config?: unknown;
  /** The first resolver update; omitted: the balancer gets no update until `update()`. */
  readonly endpoints?: readonly (string | EndpointInput)[];
  /** The target as the user wrote it (reaches error messages). Default `test:///svc`. */
  readonly target?: string;
  readonly observer?: LoadBalancerObserver;
  /** Extra channel options for every update. */
  readonly options?: ChannelOptions;
  readonly resolutionNote?: string;
  /** Metrics switched on, recorded through this provider (as `register({ metrics: { meterProvider } })`). */
  readonly meterProvider?: MeterProviderLike;
}

export interface CallOptions {
  /** Full method name (`/pkg.Service/Method`), as our ConfigSelector passes it. */
  readonly method?: string;
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface EndOptions {
  /** Status code the call ends with. Default OK. */
  readonly code?: number;
  /** Latency the balancer measures for the call (its clock is stubbed around the callbacks). */
  readonly latencyMs?: number;
}

/** A call that was picked onto an endpoint and is in flight until `end()`. */
export interface StartedCall {
  readonly kind: 'complete';
  readonly address: string;
  end(options?: EndOptions): void;
}

export type PickOutcome =
  | StartedCall
  | { readonly kind: 'queue' }
  | { readonly kind: 'fail'; readonly code: number; readonly details: string }
  | { readonly kind: 'drop'; readonly code: number; readonly details: string };

export interface PickTally {
  /** Completed picks per address. */
  readonly counts: Record<string, number>;
  readonly queued: number;
  /** The details of every failed (or dropped) pick. */
  readonly failed: string[];
  /** The address of each completed pick, in order. */
  readonly order: string[];
}

/** Runs `fn` with `performance.now()` reading `at`. */
function withClock<T>(at: number, fn: () => T): T {
  const own = Object.getOwnPropertyDescriptor(performance, 'now');
  Object.defineProperty(performance, 'now', {
    value: () => at,
    configurable: true,
    writable: true,
  });
  try {
    return fn();
  } finally {
    if (own) Object.defineProperty(performance, 'now', own);
    else delete (performance as { now?: unknown }).now;
  }
}

/** Resolves after the pending ticks, microtasks and immediates of a few turns have run. */
export async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** A balancer of one of our policies, its fake channel and health servers, and the means to drive them. */
export class PolicyHarness {
  readonly rt: Runtime;
  readonly helper = new FakeChannelControlHelper();
  readonly health = new FakeHealthServers();
  readonly lb: experimental.LoadBalancer;
  readonly policy: PolicyClasses;
  /** Everything the balancer reported through the logger. */
  readonly warnings: string[] = [];
  private config: unknown;
  private endpoints: readonly (string | EndpointInput)[] = [];
  private readonly options: ChannelOptions;
  private readonly note: string;

  private constructor(options: HarnessOptions) {
    const logger: Logger = { warn: (message) => this.warnings.push(message) };
    this.rt = createRuntime(grpc, logger);
    if (options.meterProvider) {
      const { meterProvider } = options;
      this.rt.metrics = createMetrics({ meterProvider }, statusNames(grpc), logger);
    }
    setHealthClientFactory(this.rt, this.health.factory);
    const create = typeof options.policy === 'string' ? POLICIES[options.policy] : options.policy;
    if (!create) throw new Error(`no grpc-lb policy named ${String(options.policy)}`);
    this.policy = create(this.rt);
    this.lb = new this.policy.LoadBalancer(this.helper);
    this.config = options.config ?? {};
    this.note = options.resolutionNote ?? '';
    this.options = {
      [TARGET_ATTRIBUTE]: options.target ?? 'test:///svc',
      ...(options.observer ? { [OBSERVER_OPTION]: options.observer } : {}),
      ...options.options,
    };
  }

  /** A harness; with `endpoints`, the balancer has had its first update (connections not yet started by the test). */
  static create(options: HarnessOptions): PolicyHarness {
    const harness = new PolicyHarness(options);
    if (options.endpoints) harness.update({ endpoints: options.endpoints });
    return harness;
  }

  /** Parses a config of this policy as grpc-js would (throws what `createFromJson` throws). */
  parseConfig(json: unknown): experimental.TypedLoadBalancingConfig {
    return this.policy.Config.createFromJson(json);
  }

  /** A resolver update: new endpoints and/or config (each defaults to the previous one). Returns the balancer's answer. */
  update(
    change: {
      endpoints?: readonly (string | EndpointInput)[];
      config?: unknown;
      note?: string;
    } = {},
  ): boolean {
    if (change.endpoints) this.endpoints = change.endpoints;
    if (change.config !== undefined) this.config = change.config;
    return this.lb.updateAddressList(
      grpc.experimental.statusOrFromValue(this.endpoints.map(endpoint)),
      this.parseConfig(this.config),
      this.options,
      change.note ?? this.note,
    );
  }

  /** A resolver error (the endpoints the balancer knows stay). */
  resolverError(details: string, code: number = Status.UNAVAILABLE): boolean {
    return this.lb.updateAddressList(
      grpc.experimental.statusOrFromError({ code, details }),
      this.parseConfig(this.config),
      this.options,
      this.note,
    );
  }

  /** The subchannel of `address` (throws if the balancer never asked for one). */
  subchannel(address: string): FakeSubchannel {
    const subchannel = this.helper.subchannels.get(address);
    if (!subchannel) {
      throw new Error(
        `no subchannel for ${address}; have ${[...this.helper.subchannels.keys()].join(', ') || 'none'}`,
      );
    }
    return subchannel;
  }

  /** Sets the connectivity of each address, then settles. */
  async setState(
    state: ConnectivityState | StateName,
    addresses: readonly string[],
    errorMessage?: string,
  ): Promise<void> {
    await settle(1);
    for (const address of addresses) this.subchannel(address).setState(state, errorMessage);
    await settle();
  }

  /** Every given address (default: all known) goes CONNECTING then READY. */
  async ready(...addresses: string[]): Promise<void> {
    const list = addresses.length ? addresses : [...this.helper.subchannels.keys()];
    await this.setState('CONNECTING', list);
    await this.setState('READY', list);
  }

  /** Every given address goes CONNECTING, then TRANSIENT_FAILURE with `error`. */
  async fail(error: string, ...addresses: string[]): Promise<void> {
    const list = addresses.length ? addresses : [...this.helper.subchannels.keys()];
    await this.setState('CONNECTING', list);
    await this.setState('TRANSIENT_FAILURE', list, error);
  }

  /** The health service of `address` answers `status` (for `service`, or for every name), then settles. */
  async setHealth(
    address: string,
    status: ServingStatusName | number,
    service?: string,
  ): Promise<void> {
    this.health.server(address).setStatus(status, service);
    await settle();
  }

  settle(rounds?: number): Promise<void> {
    return settle(rounds);
  }

  get state(): ConnectivityState | undefined {
    return this.helper.last?.state;
  }

  /** The name of the last published state (`'READY'`, …), or `'none'` before any. */
  get stateName(): string {
    const state = this.state;
    return state === undefined ? 'none' : CS[state];
  }

  get picker(): experimental.Picker {
    const last = this.helper.last;
    if (!last) throw new Error('the balancer has published no picker yet');
    return last.picker;
  }

  /** The error message of the last published state. */
  get error(): string | null {
    return this.helper.last?.error ?? null;
  }

  pickArgs(options: CallOptions = {}): experimental.PickArgs {
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(options.metadata ?? {})) metadata.set(key, value);
    return {
      metadata,
      extraPickInfo: options.method === undefined ? {} : { [METHOD_PICK_KEY]: options.method },
    };
  }

  /** One pick with the current picker; a completed one has started its call (end it with `end()`). */
  call(options: CallOptions = {}): PickOutcome {
    const result = this.picker.pick(this.pickArgs(options));
    switch (result.pickResultType) {
      case PickResultType.COMPLETE: {
        const address = result.subchannel!.getAddress();
        const { onCallStarted, onCallEnded } = result;
        // The call starts at a known instant so that `end({ latencyMs })` measures exactly that.
        const startedAt = performance.now();
        if (onCallStarted) withClock(startedAt, onCallStarted);
        let ended = false;
        return {
          kind: 'complete',
          address,
          end: ({ code = Status.OK, latencyMs }: EndOptions = {}) => {
            if (ended) throw new Error(`call to ${address} ended twice`);
            ended = true;
            const finish = () => onCallEnded?.(code, '', new grpc.Metadata());
            if (latencyMs === undefined) finish();
            else withClock(startedAt + latencyMs, finish);
          },
        };
      }
      case PickResultType.QUEUE:
        return { kind: 'queue' };
      case PickResultType.DROP:
        return { kind: 'drop', code: result.status!.code, details: result.status!.details };
      default:
        return { kind: 'fail', code: result.status!.code, details: result.status!.details };
    }
  }

  /**
   * `n` calls, each picked with the current picker and ended at once with
   * `code` (and `latencyMs`, when given); returns where they went.
   */
  pickMany(n: number, options: CallOptions & EndOptions = {}): PickTally {
    const counts: Record<string, number> = {};
    const failed: string[] = [];
    const order: string[] = [];
    let queued = 0;
    for (let i = 0; i < n; i++) {
      const outcome = this.call(options);
      if (outcome.kind === 'complete') {
        counts[outcome.address] = (counts[outcome.address] ?? 0) + 1;
        order.push(outcome.address);
        outcome.end(options);
      } else if (outcome.kind === 'queue') {
        queued++;
      } else {
        failed.push(outcome.details);
      }
    }
    return { counts, queued, failed, order };
  }

  destroy(): void {
    this.lb.destroy();
  }

  /** Subchannels something still refs or listens to (after `destroy()`: none). */
  leakedSubchannels(): string[] {
    return [...this.helper.subchannels.values()]
      .filter((s) => s.refs !== 0 || s.listenerCount !== 0)
      .map((s) => `${s.address} (refs ${s.refs}, listeners ${s.listenerCount})`);
  }
}

interface TrackedTimer {
  readonly kind: 'timeout' | 'interval' | 'immediate';
  readonly caller: string;
  readonly handle: unknown;
  unrefed: boolean;
}

/**
 * Records the timers created while installed (by any code calling the
 * global `setTimeout`, `setInterval` or `setImmediate`) and which are still
 * pending, so a test can check that `destroy()` leaves none and that every
 * timer is unref'd. Install before creating the harness; `uninstall()`
 * after.
 */
export class TimerTracker {
  private readonly live = new Map<unknown, TrackedTimer>();
  private readonly saved = {
    setTimeout: globalThis.setTimeout,
    clearTimeout: globalThis.clearTimeout,
    setInterval: globalThis.setInterval,
    clearInterval: globalThis.clearInterval,
    setImmediate: globalThis.setImmediate,
    clearImmediate: globalThis.clearImmediate,
  };

  static install(): TimerTracker {
    const tracker = new TimerTracker();
    tracker.patch();
    return tracker;
  }

  /** Pending timers created by code outside grpc-js (grpc-js's own are not ours to judge). */
  pending(): TrackedTimer[] {
    return [...this.live.values()].filter((t) => !t.caller.includes('@grpc/grpc-js'));
  }

  /** Pending timeouts and intervals that would keep the process alive. */
  refed(): TrackedTimer[] {
    return this.pending().filter((t) => t.kind !== 'immediate' && !t.unrefed);
  }

  uninstall(): void {
    Object.assign(globalThis, this.saved);
  }

  private track(kind: TrackedTimer['kind'], handle: unknown): void {
    const caller = new Error().stack?.split('\n')[3]?.trim() ?? '';
    const entry: TrackedTimer = { kind, caller, handle, unrefed: false };
    this.live.set(handle, entry);
    if (kind !== 'immediate') {
      const timer = handle as NodeJS.Timeout;
      const unref = timer.unref.bind(timer);
      timer.unref = () => {
        entry.unrefed = true;
        return unref();
      };
    }
  }

  private patch(): void {
    const { saved, live } = this;
    const forget = (handle: unknown) => live.delete(handle);
    const patched = {
      setTimeout: ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
        const handle: NodeJS.Timeout = saved.setTimeout(
          (...a: unknown[]) => {
            forget(handle);
            fn(...a);
          },
          ms,
          ...args,
        );
        this.track('timeout', handle);
        return handle;
      }) as typeof setTimeout,
      clearTimeout: ((handle: NodeJS.Timeout | undefined) => {
        forget(handle);
        saved.clearTimeout(handle);
      }) as typeof clearTimeout,
      setInterval: ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
        const handle = saved.setInterval(fn, ms, ...args);
        this.track('interval', handle);
        return handle;
      }) as typeof setInterval,
      clearInterval: ((handle: NodeJS.Timeout | undefined) => {
        forget(handle);
        saved.clearInterval(handle);
      }) as typeof clearInterval,
      setImmediate: ((fn: (...args: unknown[]) => void, ...args: unknown[]) => {
        const handle: NodeJS.Immediate = saved.setImmediate(
          (...a: unknown[]) => {
            forget(handle);
            fn(...a);
          },
          ...args,
        );
        this.track('immediate', handle);
        return handle;
      }) as typeof setImmediate,
      clearImmediate: ((handle: NodeJS.Immediate | undefined) => {
        forget(handle);
        saved.clearImmediate(handle);
      }) as typeof clearImmediate,
    };
    Object.assign(globalThis, patched);
  }
}
