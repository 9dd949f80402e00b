/**
 * OpenTelemetry metrics. `@opentelemetry/api` is an optional peer
 * dependency: it is loaded only when `register({ metrics })` switches metrics
 * on without a meter provider of its own, and nothing here runs otherwise
 * (the balancers and resolvers hold no metrics object, so a call costs
 * nothing extra).
 *
 * The instruments are described structurally, not through the API's types,
 * so that the published type declarations do not need the API installed.
 */
import { SOURCE_LABEL } from './composite-resolver';
import { COMPOSITE_SCHEME } from './composite-target';
import { RegistrationError } from './errors';
import type { Logger } from './logger';
import type { DetectionMethod } from './outlier-detection';

/** Attributes of one measurement (the OpenTelemetry `Attributes` shape we use). */
export type MetricAttributes = Readonly<Record<string, string>>;

interface InstrumentOptions {
  description?: string;
  unit?: string;
  advice?: { explicitBucketBoundaries?: number[] };
}

/** The part of an OpenTelemetry `Meter` used here. */
export interface MeterLike {
  createCounter(name: string, options?: InstrumentOptions): CounterLike;
  createUpDownCounter(name: string, options?: InstrumentOptions): CounterLike;
  createHistogram(name: string, options?: InstrumentOptions): HistogramLike;
  createObservableGauge(name: string, options?: InstrumentOptions): ObservableLike;
  createObservableCounter(name: string, options?: InstrumentOptions): ObservableLike;
}

interface ObservableLike {
  addCallback(
    callback: (result: { observe(value: number, attributes?: MetricAttributes): void }) => void,
  ): void;
}

/** The endpoint states `grpc_lb.endpoints` reports (`grpc_lb.endpoint.state`). */
export const ENDPOINT_STATES = [
  'ready',
  'connecting',
  'idle',
  'transient_failure',
  'ejected',
] as const;
export type EndpointStateName = (typeof ENDPOINT_STATES)[number];

/** What the endpoint gauges read of one endpoint's resolver data (its labels). */
export interface EndpointLabels {
  readonly labels: Readonly<Record<string, string>>;
}

/** A traffic-split subset, for `grpc_lb.subset.endpoints`: its name and the labels it selects by. */
export interface SubsetLabels {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** A balancer whose endpoints `grpc_lb.endpoints` counts while it lives. */
export interface EndpointSource {
  readonly target: string;
  /** Calls `count` once per endpoint with its state, health-check status and resolver data. */
  countEndpoints(
    count: (
      state: EndpointStateName,
      health: EndpointHealthName,
      info: EndpointLabels | undefined,
    ) => void,
  ): void;
  /** In panic mode now (every connected endpoint in rotation, whatever its health). */
  readonly inPanic: boolean;
  /** The subsets of a `grpc-lb.traffic_split` config; none for other policies. */
  readonly subsets: readonly SubsetLabels[];
  /** Endpoints in rotation and inside their slow-start window now. */
  readonly rampingEndpoints: number;
}

/** An endpoint's health-check status (`grpc_lb.endpoint.health`), as the observer reports it. */
export type EndpointHealthName =
  'unknown' | 'serving' | 'not_serving' | 'unimplemented' | 'not_checked';

/** An OpenTelemetry `MeterProvider` (an SDK `MeterProvider`, or `metrics.getMeterProvider()`). */
export interface MeterProviderLike {
  getMeter(name: string, version?: string): MeterLike;
}

interface CounterLike {
  add(value: number, attributes?: MetricAttributes): void;
}

interface HistogramLike {
  record(value: number, attributes?: MetricAttributes): void;
}

export interface MetricsOptions {
  /** Where the instruments come from. Default: the global provider of `@opentelemetry/api` (set it before `register()`). */
  readonly meterProvider?: MeterProviderLike;
}

/**
 * Channel option: `false` leaves this channel out of the metrics that
 * `register({ metrics })` switched on (its calls, connections, resolver and
 * endpoints are not measured).
 */
export const METRICS_OPTION = 'grpc-lb.metrics';

/** The meter name (instrumentation scope) of every instrument. */
export const METER_NAME = '@grpc-lb/core';

/** gRFC A66's bucket boundaries for latencies, in seconds. */
export const LATENCY_BUCKETS_S: readonly number[] = [
  0, 0.00001, 0.00005, 0.0001, 0.0003, 0.0006, 0.0008, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006,
  0.008, 0.01, 0.013, 0.016, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25,
  0.3, 0.4, 0.5, 0.65, 0.8, 1, 2, 5, 10, 20, 50, 100,
];

/** The method name used when a pick carries none, or past `MAX_METHODS` names per channel. */
export const OTHER_METHOD = 'other';
/** Distinct `grpc.method` values kept per channel; more become `other`. */
export const MAX_METHODS = 1000;

/** Composite targets, whose endpoints carry the `source` label naming their source. */
const COMPOSITE_PREFIX = `${COMPOSITE_SCHEME}:`;

/**
 * How `grpc-lb.least_request` chose, counted by its pickers as plain
 * numbers (no SDK call per pick) and reported by `grpc_lb.least_request.picks`.
 */
export class LeastRequestTally {
  /** The sampled endpoints' costs differed: the cheapest won. */
  cheaper = 0;
  /** The cheapest cost was shared: one of those endpoints was drawn at random. */
  tie = 0;
  /** One endpoint in rotation: nothing to choose. */
  only = 0;
}

/** How `grpc_lb.least_request.picks` names each field of a tally (`grpc_lb.least_request.choice`). */
const LEAST_REQUEST_CHOICES = ['cheaper', 'tie', 'only'] as const;

/** A running resolver of one channel, for `grpc_lb.resolver.staleness`. */
interface ResolverAge {
  readonly target: string;
  /** When the resolver (re)started (Date.now()). */
  startedAt: number;
  /** When it last delivered endpoints; 0 never. */
  lastGoodAt: number;
  /** An error came after the last success (or before the first). */
  failing: boolean;
}

type Observe = (value: number, attributes?: MetricAttributes) => void;

/** The instruments of one registration, shared by every channel. */
export class GrpcLbMetrics {
  readonly attemptDuration: HistogramLike;
  readonly connectionsSucceeded: CounterLike;
  readonly connectionsFailed: CounterLike;
  readonly disconnections: CounterLike;
  readonly openConnections: CounterLike;
  readonly ejectionsEnforced: CounterLike;
  readonly ejectionsUnenforced: CounterLike;
  readonly resolverUpdates: CounterLike;
  readonly resolverErrors: CounterLike;
  private warned = false;
  private readonly sources = new Set<EndpointSource>();
  private readonly resolvers = new Set<ResolverAge>();
  /** Per target, shared by its channels and kept after they close, so that the counts only grow. */
  private readonly leastRequest = new Map<string, LeastRequestTally>();
  /** Per composite target, the source names seen while one of its balancers lives (reported at 0 once empty). */
  private readonly sourceNames = new Map<string, Set<string>>();
  /**
   * `grpc.client.attempt.started` per target and method, shared by the target's channels and kept
   * after they close (the counts only grow; at most `MAX_METHODS` + 1 methods per target).
   */
  private readonly started = new Map<string, StartedCount>();

  /** `statusNames[code]` is the name of each gRPC status code (`OK`, `UNAVAILABLE`, …). */
  constructor(
    meter: MeterLike,
    readonly statusNames: readonly string[],
    private readonly logger: Logger,
  ) {
    // Counted in plain numbers and read at collection: the SDK's synchronous `Counter.add` costs
    // more per call (it hashes the attribute set each time) than the rest of grpc-lb's share.
    meter
      .createObservableCounter('grpc.client.attempt.started', {
        description: 'Call attempts started on an endpoint chosen by a grpc-lb policy',
        unit: '{attempt}',
      })
      .addCallback((result) =>
        this.measure(() => this.observeStarted(result.observe.bind(result))),
      );
    this.attemptDuration = meter.createHistogram('grpc.client.attempt.duration', {
      description: 'Time from the start to the end of a call attempt on its endpoint',
      unit: 's',
      advice: { explicitBucketBoundaries: [...LATENCY_BUCKETS_S] },
    });
    this.connectionsSucceeded = meter.createCounter(
      'grpc.subchannel.connection_attempts_succeeded',
      { description: 'Connection attempts that reached READY', unit: '{attempt}' },
    );
    this.connectionsFailed = meter.createCounter('grpc.subchannel.connection_attempts_failed', {
      description: 'Connection attempts that failed',
      unit: '{attempt}',
    });
    this.disconnections = meter.createCounter('grpc.subchannel.disconnections', {
      description: 'Connections that were READY and were lost',
      unit: '{disconnection}',
    });
    this.openConnections = meter.createUpDownCounter('grpc.subchannel.open_connections', {
      description: 'Connections READY now',
      unit: '{connection}',
    });
    this.ejectionsEnforced = meter.createCounter('grpc.lb.outlier_detection.ejections_enforced', {
      description: 'Endpoints ejected by outlier detection',
      unit: '{ejection}',
    });
    this.ejectionsUnenforced = meter.createCounter(
      'grpc.lb.outlier_detection.ejections_unenforced',
      {
        description:
          'Outliers not ejected because of enforcement_percentage or max_ejection_percent',
        unit: '{ejection}',
      },
    );
    this.resolverUpdates = meter.createCounter('grpc_lb.resolver.updates', {
      description: 'Endpoint lists received from a resolver',
      unit: '{update}',
    });
    this.resolverErrors = meter.createCounter('grpc_lb.resolver.errors', {
      description: 'Errors reported by a resolver (with or without endpoints kept)',
      unit: '{error}',
    });
    meter
      .createObservableGauge('grpc_lb.endpoints', {
        description: 'Endpoints of each target by state',
        unit: '{endpoint}',
      })
      .addCallback((result) => this.measure(() => this.observeEndpoints(result)));
    meter
      .createObservableGauge('grpc_lb.endpoints.health', {
        description: 'Endpoints of each target by health-check status',
        unit: '{endpoint}',
      })
      .addCallback((result) => this.measure(() => this.observeHealth(result)));
    meter
      .createObservableGauge('grpc_lb.panic', {
        description: 'Channels of each target in panic mode (every connected endpoint in rotation)',
        unit: '{channel}',
      })
      .addCallback((result) => this.measure(() => this.observePanic(result)));
    meter
      .createObservableGauge('grpc_lb.source.endpoints', {
        description: 'Endpoints of each source of a composite target, by state',
        unit: '{endpoint}',
      })
      .addCallback((result) =>
        this.measure(() => this.observeSources(result.observe.bind(result))),
      );
    meter
      .createObservableGauge('grpc_lb.subset.endpoints', {
        description: 'Endpoints of each grpc-lb.traffic_split subset, by state',
        unit: '{endpoint}',
      })
      .addCallback((result) =>
        this.measure(() => this.observeSubsets(result.observe.bind(result))),
      );
    meter
      .createObservableGauge('grpc_lb.slow_start.endpoints', {
        description: 'Endpoints in rotation whose share is still ramping up (slow start)',
        unit: '{endpoint}',
      })
      .addCallback((result) =>
        this.measure(() => this.observeRamping(result.observe.bind(result))),
      );
    meter
      .createObservableGauge('grpc_lb.resolver.staleness', {
        description:
          'Seconds since the last successful resolution, while the resolver fails or has not answered yet; 0 otherwise',
        unit: 's',
      })
      .addCallback((result) =>
        this.measure(() => this.observeStaleness(result.observe.bind(result))),
      );
    meter
      .createObservableCounter('grpc_lb.least_request.picks', {
        description: 'Picks of grpc-lb.least_request, by how the endpoint was chosen',
        unit: '{pick}',
      })
      .addCallback((result) =>
        this.measure(() => this.observeLeastRequest(result.observe.bind(result))),
      );
  }

  /** The count of attempts started on `target` for `method` (made on first use). */
  startedCount(target: string, method: string): StartedCount {
    const key = `${method}\n${target}`;
    let count = this.started.get(key);
    if (!count) {
      count = {
        attributes: Object.freeze({ 'grpc.method': method, 'grpc.target': target }),
        value: 0,
      };
      this.started.set(key, count);
    }
    return count;
  }

  private observeStarted(observe: Observe): void {
    for (const count of this.started.values()) observe(count.value, count.attributes);
  }

  /** The tally the `grpc-lb.least_request` pickers of `target` count into. */
  leastRequestTally(target: string): LeastRequestTally {
    let tally = this.leastRequest.get(target);
    if (!tally) {
      tally = new LeastRequestTally();
      this.leastRequest.set(target, tally);
    }
    return tally;
  }

  private observeLeastRequest(observe: Observe): void {
    for (const [target, tally] of this.leastRequest) {
      for (const choice of LEAST_REQUEST_CHOICES) {
        observe(tally[choice], {
          'grpc.target': target,
          'grpc_lb.least_request.choice': choice,
        });
      }
    }
  }

  /** Counts per target, then per `key` of each endpoint (undefined: not counted), by state. */
  private countBy(
    sources: Iterable<EndpointSource>,
    keysOf: (
      source: EndpointSource,
      info: EndpointLabels | undefined,
      add: (key: string) => void,
    ) => void,
    seed: (source: EndpointSource, add: (key: string) => void) => void,
  ): Map<string, Map<string, Map<EndpointStateName, number>>> {
    const totals = new Map<string, Map<string, Map<EndpointStateName, number>>>();
    for (const source of sources) {
      let byKey = totals.get(source.target);
      if (!byKey) {
        byKey = new Map();
        totals.set(source.target, byKey);
      }
      const keys = byKey;
      const row = (key: string): Map<EndpointStateName, number> => {
        let byState = keys.get(key);
        if (!byState) {
          byState = new Map(ENDPOINT_STATES.map((state) => [state, 0]));
          keys.set(key, byState);
        }
        return byState;
      };
      seed(source, row);
      source.countEndpoints((state, _health, info) =>
        keysOf(source, info, (key) => {
          const byState = row(key);
          byState.set(state, (byState.get(state) ?? 0) + 1);
        }),
      );
    }
    return totals;
  }

  private observeByState(
    observe: Observe,
    totals: Map<string, Map<string, Map<EndpointStateName, number>>>,
    attribute: string,
  ): void {
    for (const [target, byKey] of totals) {
      for (const [key, byState] of byKey) {
        for (const [state, value] of byState) {
          observe(value, {
            'grpc.target': target,
            [attribute]: key,
            'grpc_lb.endpoint.state': state,
          });
        }
      }
    }
  }

  /**
   * Only composite targets: their `source` label is one of at most 16 names
   * from the target itself (any other resolver's labels are the registry's,
   * unbounded).
   */
  private observeSources(observe: Observe): void {
    const composite = [...this.sources].filter((s) => s.target.startsWith(COMPOSITE_PREFIX));
    const live = new Set(composite.map((s) => s.target));
    for (const target of this.sourceNames.keys()) {
      if (!live.has(target)) this.sourceNames.delete(target);
    }
    const totals = this.countBy(
      composite,
      (source, info, add) => {
        const name = info?.labels[SOURCE_LABEL];
        if (name === undefined) return;
        let names = this.sourceNames.get(source.target);
        if (!names) {
          names = new Set();
          this.sourceNames.set(source.target, names);
        }
        names.add(name);
        add(name);
      },
      (source, add) => {
        for (const name of this.sourceNames.get(source.target) ?? []) add(name);
      },
    );
    this.observeByState(observe, totals, 'grpc_lb.source');
  }

  /** Every subset of the config, empty ones at 0; an endpoint counts in each subset it belongs to. */
  private observeSubsets(observe: Observe): void {
    const split = [...this.sources].filter((s) => s.subsets.length > 0);
    const totals = this.countBy(
      split,
      (source, info, add) => {
        const labels = info?.labels ?? {};
        for (const subset of source.subsets) {
          if (hasLabels(labels, subset.labels)) add(subset.name);
        }
      },
      (source, add) => {
        for (const subset of source.subsets) add(subset.name);
      },
    );
    this.observeByState(observe, totals, 'grpc_lb.subset');
  }

  private observeRamping(observe: Observe): void {
    const totals = new Map<string, number>();
    for (const source of this.sources) {
      totals.set(source.target, (totals.get(source.target) ?? 0) + source.rampingEndpoints);
    }
    for (const [target, value] of totals) observe(value, { 'grpc.target': target });
  }

  /** The stalest of the target's running resolvers. */
  private observeStaleness(observe: Observe): void {
    const now = Date.now();
    const totals = new Map<string, number>();
    for (const age of this.resolvers) {
      const seconds =
        age.failing || age.lastGoodAt === 0
          ? Math.max(0, now - (age.lastGoodAt || age.startedAt)) / 1000
          : 0;
      totals.set(age.target, Math.max(totals.get(age.target) ?? 0, seconds));
    }
    for (const [target, value] of totals) observe(value, { 'grpc.target': target });
  }

  /** A resolver of `age.target` runs: it counts in `grpc_lb.resolver.staleness` until `resolverStopped`. */
  resolverStarted(age: ResolverAge): void {
    this.resolvers.add(age);
  }

  resolverStopped(age: ResolverAge): void {
    this.resolvers.delete(age);
  }

  private observeHealth(result: {
    observe(value: number, attributes?: MetricAttributes): void;
  }): void {
    const totals = new Map<string, Map<EndpointHealthName, number>>();
    for (const source of this.sources) {
      let byHealth = totals.get(source.target);
      if (!byHealth) {
        byHealth = new Map();
        totals.set(source.target, byHealth);
      }
      const counts = byHealth;
      source.countEndpoints((_state, health) => counts.set(health, (counts.get(health) ?? 0) + 1));
    }
    for (const [target, byHealth] of totals) {
      for (const [health, value] of byHealth) {
        result.observe(value, { 'grpc.target': target, 'grpc_lb.endpoint.health': health });
      }
    }
  }

  private observePanic(result: {
    observe(value: number, attributes?: MetricAttributes): void;
  }): void {
    const totals = new Map<string, number>();
    for (const source of this.sources) {
      totals.set(source.target, (totals.get(source.target) ?? 0) + (source.inPanic ? 1 : 0));
    }
    for (const [target, value] of totals) result.observe(value, { 'grpc.target': target });
  }

  /** `source` is counted in `grpc_lb.endpoints` until `unwatch`. */
  watch(source: EndpointSource): void {
    this.sources.add(source);
  }

  unwatch(source: EndpointSource): void {
    this.sources.delete(source);
  }

  /** Sums per target (several channels may share one), every state reported (0 included). */
  private observeEndpoints(result: {
    observe(value: number, attributes?: MetricAttributes): void;
  }): void {
    const totals = new Map<string, Map<EndpointStateName, number>>();
    for (const source of this.sources) {
      let byState = totals.get(source.target);
      if (!byState) {
        byState = new Map(ENDPOINT_STATES.map((state) => [state, 0]));
        totals.set(source.target, byState);
      }
      const counts = byState;
      source.countEndpoints((state) => counts.set(state, (counts.get(state) ?? 0) + 1));
    }
    for (const [target, byState] of totals) {
      for (const [state, value] of byState) {
        result.observe(value, { 'grpc.target': target, 'grpc_lb.endpoint.state': state });
      }
    }
  }

  /** Measurements for one channel target, as the user wrote it (redacted). */
  forTarget(target: string): TargetMetrics {
    return new TargetMetrics(this, target);
  }

  /** Runs one measurement; an SDK that throws is reported once and never reaches grpc-js. */
  measure(record: () => void): void {
    try {
      record();
    } catch (error) {
      this.failed(error);
    }
  }

  /** Reports the first measurement that threw. */
  failed(error: unknown): void {
    if (this.warned) return;
    this.warned = true;
    try {
      this.logger.warn(
        `metrics: the OpenTelemetry SDK threw while recording (reported once): ${
          error instanceof Error ? error.message : String(error)
        }`,
      );
    } catch {
      // A logger that throws too: nothing more to do.
    }
  }
}

function hasLabels(
  labels: Readonly<Record<string, string>>,
  wanted: Readonly<Record<string, string>>,
): boolean {
  for (const key in wanted) {
    if (labels[key] !== wanted[key]) return false;
  }
  return true;
}

/** Attempts started on one target for one method, and the attributes they are reported with. */
export interface StartedCount {
  readonly attributes: MetricAttributes;
  value: number;
}

/** The attributes of one method's attempts, looked up once per call. */
export interface MethodAttributes {
  readonly started: MetricAttributes;
  /** `grpc.client.attempt.started` for this method and target, shared by the target's channels. */
  readonly count: StartedCount;
  /** By status code. */
  readonly ended: MetricAttributes[];
}

/**
 * The measurements of one channel. Attribute objects are made once per
 * method and status, so a measured call allocates nothing for them.
 */
export class TargetMetrics {
  readonly attributes: MetricAttributes;
  private readonly methods = new Map<string, MethodAttributes>();
  /** This channel's resolver, for `grpc_lb.resolver.staleness`. */
  private readonly age: ResolverAge;

  constructor(
    readonly metrics: GrpcLbMetrics,
    readonly target: string,
  ) {
    this.attributes = { 'grpc.target': target };
    this.age = { target, startedAt: 0, lastGoodAt: 0, failing: false };
  }

  /** The tally this channel's `grpc-lb.least_request` pickers count into. */
  leastRequestTally(): LeastRequestTally {
    return this.metrics.leastRequestTally(this.target);
  }

  /** The channel's resolver started (again): its staleness is measured until `resolverStopped`. */
  resolverStarted(): void {
    this.age.startedAt = Date.now();
    this.metrics.resolverStarted(this.age);
  }

  resolverStopped(): void {
    this.metrics.resolverStopped(this.age);
  }

  /** The attributes of calls to `name` (`other` when absent or past `MAX_METHODS`). */
  method(name: string | undefined): MethodAttributes {
    let method = name === undefined ? undefined : this.methods.get(name);
    if (method) return method;
    const known = name !== undefined && this.methods.size < MAX_METHODS ? name : OTHER_METHOD;
    method = this.methods.get(known);
    if (!method) {
      const count = this.metrics.startedCount(this.target, known);
      method = { started: count.attributes, count, ended: [] };
      this.methods.set(known, method);
    }
    return method;
  }

  /** A plain increment, read when the metrics are collected. */
  attemptStarted(method: MethodAttributes): void {
    method.count.value += 1;
  }

  // The per-call histogram measurement catches inline: no closure per call.

  attemptEnded(method: MethodAttributes, code: number, seconds: number): void {
    let ended = method.ended[code];
    if (!ended) {
      // Keys in the order the SDK sorts them to hash the set on every measurement.
      ended = Object.freeze({
        'grpc.method': method.started['grpc.method']!,
        'grpc.status': this.metrics.statusNames[code] ?? String(code),
        'grpc.target': this.target,
      });
      method.ended[code] = ended;
    }
    try {
      this.metrics.attemptDuration.record(seconds, ended);
    } catch (error) {
      this.metrics.failed(error);
    }
  }

  connectionSucceeded(): void {
    this.metrics.measure(() => this.metrics.connectionsSucceeded.add(1, this.attributes));
  }

  connectionFailed(): void {
    this.metrics.measure(() => this.metrics.connectionsFailed.add(1, this.attributes));
  }

  /** A READY connection was lost (`grpc.disconnect_error` is not known to a grpc-js balancer). */
  disconnected(): void {
    this.metrics.measure(() =>
      this.metrics.disconnections.add(1, {
        ...this.attributes,
        'grpc.disconnect_error': 'unknown',
      }),
    );
  }

  openConnectionsChanged(delta: 1 | -1): void {
    this.metrics.measure(() => this.metrics.openConnections.add(delta, this.attributes));
  }

  ejection(enforced: boolean, method: DetectionMethod): void {
    const counter = enforced ? this.metrics.ejectionsEnforced : this.metrics.ejectionsUnenforced;
    this.metrics.measure(() =>
      counter.add(1, {
        ...this.attributes,
        'grpc.lb.outlier_detection.detection_method': method,
      }),
    );
  }

  resolverUpdate(): void {
    this.age.lastGoodAt = Date.now();
    this.age.failing = false;
    this.metrics.measure(() => this.metrics.resolverUpdates.add(1, this.attributes));
  }

  resolverError(): void {
    this.age.failing = true;
    this.metrics.measure(() => this.metrics.resolverErrors.add(1, this.attributes));
  }
}

interface OpenTelemetryApi {
  metrics: { getMeterProvider(): MeterProviderLike };
}

/** Loads `@opentelemetry/api` (only called when metrics are switched on without a provider). */
function loadApi(): OpenTelemetryApi {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@opentelemetry/api') as OpenTelemetryApi;
  } catch (error) {
    throw new RegistrationError(
      'metrics need the optional peer dependency @opentelemetry/api (npm install @opentelemetry/api), ' +
        `or a meterProvider in register({ metrics: { meterProvider } }): ${
          error instanceof Error ? error.message : String(error)
        }`,
    );
  }
}

/** The instruments for `register({ metrics })`. */
export function createMetrics(
  options: MetricsOptions,
  statusNames: readonly string[],
  logger: Logger,
): GrpcLbMetrics {
  const provider = options.meterProvider ?? loadApi().metrics.getMeterProvider();
  return new GrpcLbMetrics(provider.getMeter(METER_NAME), statusNames, logger);
}
