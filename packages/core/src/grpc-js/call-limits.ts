/**
 * Circuit breaking and the retry budget, applied to every picker a balancer
 * publishes (`CallGate.publish` wraps it; with neither option configured
 * the picker goes out as it is).
 *
 * Limits. A call is counted from its pick until its end: at the pick
 * (grpc-js picks many calls before any of them starts, so counting at the
 * start would let a burst through) as a reservation that its start turns
 * into an in-flight call; a reservation whose call never starts (the
 * subchannel dropped in between, the call was cancelled) lapses at the end
 * of the event-loop turn. A call over `maxRequests`, or one whose picks
 * only found endpoints at `maxRequestsPerEndpoint`, fails fast with
 * UNAVAILABLE naming the limit, or with `onLimit: "queue"` waits (the pick
 * queues and is tried again when a call ends). Failures are DROP results:
 * grpc-js neither retries them (its retry policy would multiply the very
 * load the limit sheds) nor holds a wait-for-ready call on them forever.
 * `maxPending` bounds the calls waiting for a pick: the queued picks since
 * the balancer last published (every publish makes grpc-js try each queued
 * call again, so the count starts over and the calls still waiting count
 * themselves again).
 *
 * Retry budget. grpc-js marks every attempt after the first of a call
 * (retry or hedge) with `grpc-previous-rpc-attempts` in the metadata the
 * pick sees (gRFC A6); transparent retries of an attempt that never
 * reached the server carry the mark of the attempt they replace. First
 * attempts deposit, marked ones withdraw, over a sliding window of `ttl`:
 * a retry may go while the retries in the window stay within
 * `ratio` × first attempts + `minRetriesPerSecond` × ttl. A retry over
 * budget is a DROP carrying the call's own last failure (its code and
 * details, with a note), so grpc-js stops retrying and returns that
 * failure. A hedge over budget (a method with a hedging policy, known
 * from the ConfigSelector of grpc-lb's resolvers) is queued instead: a
 * dropped hedge would end the whole call while its first attempt may still
 * succeed; a queued one is cancelled when the call ends.
 */
import type {
  connectivityState as ConnectivityStateEnum,
  experimental,
  Metadata,
  status as Status,
} from '@grpc/grpc-js';
import type { CallLimitsConfig, RetryBudgetConfig } from '../call-limits-config';
import type { LimitEvent, LoadBalancerObserver } from '../observer';
import type { ResilienceConfig } from '../resilience-config';
import { HEDGED_PICK_KEY } from './config-selector';
import type { Runtime } from './runtime';

type ConnectivityState = ConnectivityStateEnum;

/** Set by grpc-js on every attempt of a call after its first (gRFC A6). */
export const PREVIOUS_ATTEMPTS_KEY = 'grpc-previous-rpc-attempts';

/**
 * A pick asks the policy this many times for an endpoint below
 * `maxRequestsPerEndpoint`, then takes the next one in rotation that is.
 */
export const POLICY_TRIES = 4;

/** Buckets of the retry budget's sliding window. */
const BUCKETS = 10;

/** Codes grpc-js does not accept from a picker (it turns them into INTERNAL). */
const NOT_FROM_PICKER: ReadonlySet<number> = new Set([0, 3, 5, 6, 9, 10, 11, 15]);

/** What the gate asks of its balancer. */
export interface GateHost {
  readonly target: string;
  readonly observer: LoadBalancerObserver | undefined;
  /** The balancer's endpoints: a pick falls back to one in rotation and below its limit. */
  readonly children: readonly GatedEndpoint[];
}

/** What the gate reads of an endpoint. */
export interface GatedEndpoint {
  /** READY when in rotation. */
  readonly state: ConnectivityState;
  readonly subchannel: experimental.SubchannelInterface | undefined;
  readonly picker: experimental.Picker;
}

interface EndpointCount {
  inFlight: number;
  reserved: number;
}

interface Failure {
  readonly code: number;
  readonly details: string;
}

/** Calls and retries over a sliding window of `ttlMs` (ten buckets). */
export class RetryBudget {
  private readonly calls = new Float64Array(BUCKETS);
  private readonly retries = new Float64Array(BUCKETS);
  private readonly slots = new Float64Array(BUCKETS).fill(-Infinity);
  private readonly bucketMs: number;
  private readonly allowance: number;

  constructor(readonly config: RetryBudgetConfig) {
    this.bucketMs = config.ttlMs / BUCKETS;
    this.allowance = (config.minRetriesPerSecond * config.ttlMs) / 1000;
  }

  called(now: number): void {
    this.calls[this.bucket(now)]!++;
  }

  retried(now: number): void {
    this.retries[this.bucket(now)]!++;
  }

  canRetry(now: number): boolean {
    const slot = Math.floor(now / this.bucketMs);
    let calls = 0;
    let retries = 0;
    for (let i = 0; i < BUCKETS; i++) {
      if (this.slots[i]! > slot - BUCKETS) {
        calls += this.calls[i]!;
        retries += this.retries[i]!;
      }
    }
    return retries + 1 <= this.config.ratio * calls + this.allowance + 1e-9;
  }

  private bucket(now: number): number {
    const slot = Math.floor(now / this.bucketMs);
    const i = ((slot % BUCKETS) + BUCKETS) % BUCKETS;
    if (this.slots[i] !== slot) {
      this.slots[i] = slot;
      this.calls[i] = 0;
      this.retries[i] = 0;
    }
    return i;
  }
}

class GatedPicker implements experimental.Picker {
  constructor(
    private readonly gate: CallGate,
    private readonly inner: experimental.Picker,
  ) {}
  pick(args: experimental.PickArgs): experimental.PickResult {
    return this.gate.pick(this.inner, args);
  }
}

export class CallGate {
  private limits: CallLimitsConfig | undefined;
  private budget: RetryBudget | undefined;
  private inFlight = 0;
  private reserved = 0;
  private pending = 0;
  /** Counts per endpoint (by subchannel), while it has calls. */
  private readonly endpoints = new Map<experimental.SubchannelInterface, EndpointCount>();
  /** Reservations of this turn of the event loop; they lapse when it ends. */
  private generation = 0;
  private touched: EndpointCount[] = [];
  private sweepImmediate: NodeJS.Immediate | undefined;
  private wakeImmediate: NodeJS.Immediate | undefined;
  /** The last failure of a call's attempt, by the metadata options every attempt of the call shares. */
  private failures = new WeakMap<object, Failure>();
  private last: [ConnectivityState, experimental.Picker, string | null] | undefined;
  private readonly PickResultType: typeof experimental.PickResultType;
  private readonly UNAVAILABLE: number;
  private readonly OK: Status;
  private readonly Metadata: typeof Metadata;
  private readonly READY: ConnectivityState;
  /** Where the next fallback scan starts. */
  private scanFrom = 0;

  constructor(
    rt: Runtime,
    private readonly helper: Pick<experimental.ChannelControlHelper, 'updateState'>,
    private readonly host: GateHost,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.PickResultType = rt.grpc.experimental.PickResultType;
    this.UNAVAILABLE = rt.grpc.status.UNAVAILABLE;
    this.OK = rt.grpc.status.OK;
    this.Metadata = rt.grpc.Metadata;
    this.READY = rt.grpc.connectivityState.READY;
  }

  get active(): boolean {
    return this.limits !== undefined || this.budget !== undefined;
  }

  /** Follows the balancer's config (counts of calls in flight carry over). */
  configure(resilience: ResilienceConfig): void {
    this.limits = resilience.limits;
    const budget = resilience.retryBudget;
    if (!budget) {
      this.budget = undefined;
    } else if (JSON.stringify(budget) !== JSON.stringify(this.budget?.config)) {
      this.budget = new RetryBudget(budget);
    }
  }

  /** Publishes `picker` through the helper, gated when limits or a budget are configured. */
  publish(state: ConnectivityState, picker: experimental.Picker, error: string | null): void {
    const gated = this.active ? new GatedPicker(this, picker) : picker;
    this.last = [state, gated, error];
    this.pending = 0;
    this.helper.updateState(state, gated, error);
  }

  destroy(): void {
    if (this.sweepImmediate) clearImmediate(this.sweepImmediate);
    if (this.wakeImmediate) clearImmediate(this.wakeImmediate);
    this.sweepImmediate = undefined;
    this.wakeImmediate = undefined;
    this.last = undefined;
    this.endpoints.clear();
    this.failures = new WeakMap();
  }

  /** Calls in flight and reserved now (for tests and snapshots). */
  get counts(): { inFlight: number; reserved: number; pending: number } {
    return { inFlight: this.inFlight, reserved: this.reserved, pending: this.pending };
  }

  /** @internal The pick of a gated picker. */
  pick(inner: experimental.Picker, args: experimental.PickArgs): experimental.PickResult {
    const budget = this.budget;
    let retry = false;
    if (budget) {
      retry = args.metadata.get(PREVIOUS_ATTEMPTS_KEY).length > 0;
      if (retry && !budget.canRetry(this.now())) return this.overBudget(budget, args);
    }
    const limits = this.limits;
    const { COMPLETE, QUEUE } = this.PickResultType;
    let count: EndpointCount | undefined;
    let result: experimental.PickResult;
    if (limits) {
      if (limits.maxRequests !== undefined && this.inFlight + this.reserved >= limits.maxRequests) {
        return this.atLimit(limits, 'maxRequests', limits.maxRequests);
      }
      const perEndpoint = limits.maxRequestsPerEndpoint;
      const tries = perEndpoint === undefined ? 1 : POLICY_TRIES;
      let full: string | undefined;
      let found: experimental.PickResult | undefined;
      for (let i = 0; i < tries && !found; i++) {
        const r = inner.pick(args);
        if (r.pickResultType === QUEUE) return this.queue(limits, r);
        if (r.pickResultType !== COMPLETE || perEndpoint === undefined) {
          found = r;
          break;
        }
        const subchannel = r.subchannel!;
        const c = this.endpoints.get(subchannel);
        if (c && c.inFlight + c.reserved >= perEndpoint) {
          full = subchannel.getAddress();
          continue;
        }
        found = r;
        count = c ?? { inFlight: 0, reserved: 0 };
        if (!c) this.endpoints.set(subchannel, count);
      }
      found ??= this.fallback(args, perEndpoint!);
      if (!found) {
        return this.atLimit(limits, 'maxRequestsPerEndpoint', perEndpoint!, full);
      }
      result = found;
      if (result.pickResultType === COMPLETE && !count) {
        const subchannel = result.subchannel!;
        count = this.endpoints.get(subchannel);
        if (!count) this.endpoints.set(subchannel, (count = { inFlight: 0, reserved: 0 }));
      }
    } else {
      result = inner.pick(args);
    }
    if (result.pickResultType !== COMPLETE) return result;
    if (budget) {
      if (retry) budget.retried(this.now());
      else budget.called(this.now());
    }
    return this.admit(result, args, count, budget !== undefined);
  }

  /** The pick of the next endpoint in rotation below `perEndpoint`, if any. */
  private fallback(
    args: experimental.PickArgs,
    perEndpoint: number,
  ): experimental.PickResult | undefined {
    const children = this.host.children;
    const n = children.length;
    for (let k = 0; k < n; k++) {
      const i = (this.scanFrom + k) % n;
      const child = children[i]!;
      if (child.state !== this.READY || !child.subchannel) continue;
      const c = this.endpoints.get(child.subchannel);
      if (c && c.inFlight + c.reserved >= perEndpoint) continue;
      const r = child.picker.pick(args);
      if (r.pickResultType !== this.PickResultType.COMPLETE) continue;
      this.scanFrom = i + 1;
      return r;
    }
    return undefined;
  }

  /** Counts the call picked in `result` (when limited) and notes its failure (when budgeted). */
  private admit(
    result: experimental.PickResult,
    args: experimental.PickArgs,
    count: EndpointCount | undefined,
    budgeted: boolean,
  ): experimental.PickResult {
    const { onCallStarted, onCallEnded } = result;
    const generation = this.generation;
    if (count) {
      this.reserved++;
      count.reserved++;
      this.touched.push(count);
      this.sweepImmediate ??= setImmediate(() => this.sweep());
    }
    let started = false;
    result.onCallStarted = () => {
      if (count && !started) {
        started = true;
        if (generation === this.generation) {
          this.reserved--;
          count.reserved--;
        }
        this.inFlight++;
        count.inFlight++;
      }
      onCallStarted?.();
    };
    const options = budgeted ? args.metadata.getOptions() : undefined;
    result.onCallEnded = (code, details, trailers) => {
      if (count && started) {
        started = false;
        this.inFlight--;
        count.inFlight--;
        this.release(result.subchannel!, count);
        if (this.pending > 0) this.wake();
      }
      if (options && code !== this.OK) this.failures.set(options, { code, details });
      onCallEnded?.(code, details, trailers);
    };
    return result;
  }

  private release(subchannel: experimental.SubchannelInterface, count: EndpointCount): void {
    if (count.inFlight <= 0 && count.reserved <= 0 && this.endpoints.get(subchannel) === count) {
      this.endpoints.delete(subchannel);
    }
  }

  /** The turn is over: reservations whose call did not start lapse. */
  private sweep(): void {
    this.sweepImmediate = undefined;
    this.generation++;
    this.reserved = 0;
    for (const count of this.touched) count.reserved = 0;
    this.touched = [];
    for (const [subchannel, count] of this.endpoints) this.release(subchannel, count);
    if (this.pending > 0) this.wake();
  }

  /** Queued picks try again (once per turn): grpc-js re-picks every queued call on a publish. */
  private wake(): void {
    this.wakeImmediate ??= setImmediate(() => {
      this.wakeImmediate = undefined;
      const last = this.last;
      if (!last || this.pending === 0) return;
      this.pending = 0;
      this.helper.updateState(last[0], last[1], last[2]);
    });
  }

  private queue(
    limits: CallLimitsConfig,
    result: experimental.PickResult,
  ): experimental.PickResult {
    if (limits.maxPending !== undefined && this.pending >= limits.maxPending) {
      return this.reject('maxPending', limits.maxPending, `${this.pending} calls waiting`);
    }
    this.pending++;
    return result;
  }

  private atLimit(
    limits: CallLimitsConfig,
    limit: 'maxRequests' | 'maxRequestsPerEndpoint',
    value: number,
    address?: string,
  ): experimental.PickResult {
    if (limits.onLimit === 'queue') {
      if (limits.maxPending !== undefined && this.pending >= limits.maxPending) {
        return this.reject('maxPending', limits.maxPending, `${this.pending} calls waiting`);
      }
      this.pending++;
      this.emit({ limit, value, action: 'queued', ...(address ? { address } : {}) });
      return this.queued();
    }
    const what =
      limit === 'maxRequests'
        ? `${this.inFlight + this.reserved} calls in flight`
        : `every endpoint in rotation has ${value} calls in flight`;
    return this.reject(limit, value, what, address);
  }

  private reject(
    limit: 'maxRequests' | 'maxRequestsPerEndpoint' | 'maxPending',
    value: number,
    what: string,
    address?: string,
  ): experimental.PickResult {
    this.emit({ limit, value, action: 'failed', ...(address ? { address } : {}) });
    return this.drop(
      this.UNAVAILABLE,
      `${this.host.target}: call limit ${limit} (${value}) reached: ${what}`,
    );
  }

  private overBudget(budget: RetryBudget, args: experimental.PickArgs): experimental.PickResult {
    const { ratio, minRetriesPerSecond, ttlMs } = budget.config;
    if (args.extraPickInfo[HEDGED_PICK_KEY] === '1') {
      this.emit({ limit: 'retryBudget', value: ratio, action: 'deferred' });
      return this.queued();
    }
    this.emit({ limit: 'retryBudget', value: ratio, action: 'failed' });
    const note = `not retried: retry budget of ${this.host.target} spent (ratio ${ratio}, minRetriesPerSecond ${minRetriesPerSecond}, ttl ${ttlMs / 1000}s)`;
    const failure = this.failures.get(args.metadata.getOptions());
    if (!failure) return this.drop(this.UNAVAILABLE, note);
    const code = NOT_FROM_PICKER.has(failure.code) ? this.UNAVAILABLE : failure.code;
    return this.drop(code, `${failure.details} (${note})`);
  }

  private queued(): experimental.PickResult {
    return {
      pickResultType: this.PickResultType.QUEUE,
      subchannel: null,
      status: null,
      onCallStarted: null,
      onCallEnded: null,
    };
  }

  private drop(code: number, details: string): experimental.PickResult {
    const metadata = new this.Metadata();
    return {
      pickResultType: this.PickResultType.DROP,
      subchannel: null,
      status: { code, details, metadata },
      onCallStarted: null,
      onCallEnded: null,
    };
  }

  private emit(event: Omit<LimitEvent, 'target'>): void {
    this.host.observer?.emit('limit', { target: this.host.target, ...event });
  }
}
