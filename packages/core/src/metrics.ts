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

/** A balancer whose endpoints `grpc_lb.endpoints` counts while it lives. */
export interface EndpointSource {
  readonly target: string;
  /** Calls `count` once per endpoint with its state and health-check status. */
  countEndpoints(count: (state: EndpointStateName, health: EndpointHealthName) => void): void;
  /** In panic mode now (every connected endpoint in rotation, whatever its health). */
  readonly inPanic: boolean;
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

/** The instruments of one registration, shared by every channel. */
export class GrpcLbMetrics {
  readonly attemptStarted: CounterLike;
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

  /** `statusNames[code]` is the name of each gRPC status code (`OK`, `UNAVAILABLE`, …). */
  constructor(
    meter: MeterLike,
    readonly statusNames: readonly string[],
    private readonly logger: Logger,
  ) {
    this.attemptStarted = meter.createCounter('grpc.client.attempt.started', {
      description: 'Call attempts started on an endpoint chosen by a grpc-lb policy',
      unit: '{attempt}',
    });
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

/** The attributes of one method's attempts, looked up once per call. */
export interface MethodAttributes {
  readonly started: MetricAttributes;
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

  constructor(
    readonly metrics: GrpcLbMetrics,
    readonly target: string,
  ) {
    this.attributes = { 'grpc.target': target };
  }

  /** The attributes of calls to `name` (`other` when absent or past `MAX_METHODS`). */
  method(name: string | undefined): MethodAttributes {
    let method = name === undefined ? undefined : this.methods.get(name);
    if (method) return method;
    const known = name !== undefined && this.methods.size < MAX_METHODS ? name : OTHER_METHOD;
    method = this.methods.get(known);
    if (!method) {
      method = {
        started: Object.freeze({ 'grpc.method': known, 'grpc.target': this.target }),
        ended: [],
      };
      this.methods.set(known, method);
    }
    return method;
  }

  // The two per-call measurements catch inline: no closure per call.
  attemptStarted(method: MethodAttributes): void {
    try {
      this.metrics.attemptStarted.add(1, method.started);
    } catch (error) {
      this.metrics.failed(error);
    }
  }

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
    this.metrics.measure(() => this.metrics.resolverUpdates.add(1, this.attributes));
  }

  resolverError(): void {
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
