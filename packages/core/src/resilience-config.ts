/**
 * Options every grpc-lb policy accepts beside its own: passive outlier
 * detection, active health checks, the panic threshold, slow start, the
 * startup grace, the removal hold-down and subsetting.
 * Field names and defaults are the ones operators know from gRPC A50,
 * Envoy and Istio; both grpc-go's form (camelCase, "10s") and grpc-js's
 * (snake_case, {seconds, nanos}) parse.
 *
 *     "grpc-lb.round_robin": {
 *       "outlierDetection": { "interval": "10s", "consecutiveFailures": 5,
 *                             "failurePercentageEjection": { "threshold": 50, "minimumHosts": 3 } },
 *       "healthCheck": { "serviceName": "" },
 *       "panicThreshold": 50,   // default 0: off
 *       "slowStart": { "window": "30s" },
 *       "startupGraceMs": 100,   // default 0: off
 *       "removalHoldDownMs": 2000,   // the default; 0: off
 *       "zoneAware": { "localZone": "eu-west-1a" },  // see zone-aware.ts
 *       "subsetting": { "subsetSize": 20, "mode": "random" } }  // default: off (subsetting.ts)
 */
import { ConfigError, describe } from './errors';
import {
  array,
  Fields,
  integer,
  parseDurationMs as parseDurationField,
  percentage,
  snakeCase,
  STRICT,
  type ParseContext,
} from './json-fields';
import { parseZoneAware, type ZoneAwareConfig } from './zone-aware';
import { parseSubsetting, type SubsettingConfig } from './subsetting';
import {
  parseCallLimits,
  parseRetryBudget,
  type CallLimitsConfig,
  type RetryBudgetConfig,
} from './call-limits-config';

/**
 * A duration in milliseconds from either form a service config uses:
 * grpc-go's `"10s"` / `"0.25s"` or grpc-js's `{ "seconds": 10, "nanos": 0 }`.
 * Throws `ConfigError` naming `path` when the value is neither.
 */
export function parseDurationMs(value: unknown, path: string): number {
  return parseDurationField(value, path, STRICT);
}

export interface SuccessRateEjection {
  /** Eject when success rate < mean − stdev × stdevFactor / 1000. */
  readonly stdevFactor: number;
  readonly enforcementPercentage: number;
  readonly minimumHosts: number;
  readonly requestVolume: number;
}

export interface FailurePercentageEjection {
  /** Eject when the failure percentage over the interval exceeds this. */
  readonly threshold: number;
  readonly enforcementPercentage: number;
  readonly minimumHosts: number;
  readonly requestVolume: number;
}

export interface OutlierDetectionConfig {
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionTimeMs: number;
  readonly maxEjectionPercent: number;
  /** Eject at once after this many failures in a row (Envoy's consecutive_5xx); 0 turns it off. */
  readonly consecutiveFailures: number;
  /** gRPC status codes that count as a failure of the backend. */
  readonly failureStatusCodes: ReadonlySet<number>;
  readonly successRateEjection: SuccessRateEjection | undefined;
  readonly failurePercentageEjection: FailurePercentageEjection | undefined;
}

export interface HealthCheckConfig {
  /** The service name sent to grpc.health.v1.Health ('' = the whole server). */
  readonly serviceName: string;
  /** Period of `Check` polling when the server does not implement `Watch`. */
  readonly checkIntervalMs: number;
}

export interface SlowStartConfig {
  readonly windowMs: number;
  /** Shape of the ramp: weight × (elapsed / window)^(1 / aggression); 1 is linear. */
  readonly aggression: number;
  /** The weight never starts below this percentage of the full weight. */
  readonly minWeightPercent: number;
}

export interface ResilienceConfig {
  readonly outlierDetection: OutlierDetectionConfig | undefined;
  readonly healthCheck: HealthCheckConfig | undefined;
  /**
   * Below this percentage of usable endpoints, health and ejection are
   * ignored. Default 0 (off): an endpoint that says NOT_SERVING gets no
   * calls, as in gRPC and Istio; Envoy's 50 must be asked for.
   */
  readonly panicThresholdPercent: number;
  readonly slowStart: SlowStartConfig | undefined;
  /**
   * How long a balancer with no endpoint in rotation yet (a new channel, or
   * after a full outage) holds its calls once the first endpoint is ready,
   * waiting for the others still connecting, so that the first calls spread
   * over more than one endpoint. 0 (the default) turns it off.
   */
  readonly startupGraceMs: number;
  /**
   * How long endpoints the resolver removed en masse while their connections
   * were READY stay in rotation (a registry that lost its leases re-adds them
   * moments later). 0 turns it off; see `removal-hold-down.ts`.
   */
  readonly removalHoldDownMs: number;
  /** Zone-aware routing (`zone-aware.ts`); absent: off. */
  readonly zoneAware?: ZoneAwareConfig;
  /** Connect to a subset of the endpoints (`subsetting.ts`); undefined: to every one. */
  readonly subsetting: SubsettingConfig | undefined;
  /** Circuit breaking: calls in flight and waiting (`call-limits-config.ts`). Default off. */
  readonly limits?: CallLimitsConfig | undefined;
  /** A cap on grpc-js's retries and hedges as a share of calls (`call-limits-config.ts`). Default off. */
  readonly retryBudget?: RetryBudgetConfig | undefined;
}

/** The longest startup grace: calls of a new channel never wait longer than this for it. */
export const MAX_STARTUP_GRACE_MS = 10_000;

/**
 * The removal hold-down by default: about ten times what a registration
 * helper takes to write its key again after a registry that hung expired
 * every lease (70–160 ms measured with etcd), and short enough that a
 * deliberate removal of every endpoint (a Service deleted, a registry
 * emptied) fails calls within 2 s, and a replaced set stops getting calls
 * as soon.
 */
export const DEFAULT_REMOVAL_HOLD_DOWN_MS = 2_000;
/** The longest removal hold-down. */
export const MAX_REMOVAL_HOLD_DOWN_MS = 60_000;

/** The shared option names (each also read in snake_case). */
export const RESILIENCE_OPTIONS = [
  'outlierDetection',
  'healthCheck',
  'panicThreshold',
  'slowStart',
  'startupGraceMs',
  'removalHoldDownMs',
  'zoneAware',
  'subsetting',
  'limits',
  'retryBudget',
] as const;

/** The shared option names in both spellings: every policy accepts these beside its own fields. */
export const RESILIENCE_FIELDS: readonly string[] = RESILIENCE_OPTIONS.flatMap((name) => [
  name,
  snakeCase(name),
]);

/**
 * Codes that mean "this backend is broken" rather than "this request is
 * wrong": the connection or server failed (UNAVAILABLE), the server crashed
 * handling it (INTERNAL, UNKNOWN), or it did not answer in time
 * (DEADLINE_EXCEEDED). Application errors (NOT_FOUND, INVALID_ARGUMENT, …)
 * say nothing about the backend's health.
 */
export const DEFAULT_FAILURE_STATUS_CODES: readonly number[] = [14, 13, 2, 4];

const STATUS_NAMES: Readonly<Record<string, number>> = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

function statusCode(value: unknown, field: string): number {
  // OK is never a failure; names are looked up as own keys only ("constructor" is not a status).
  if (typeof value === 'string' && value !== 'OK' && Object.hasOwn(STATUS_NAMES, value))
    return STATUS_NAMES[value]!;
  if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 16)
    return value;
  throw new ConfigError(
    field,
    `expected a gRPC status name like "UNAVAILABLE" or a code 1-16, got ${describe(value)}`,
  );
}

const EJECTION_COMMON_FIELDS = ['enforcementPercentage', 'minimumHosts', 'requestVolume'] as const;

/** The three numbers both A50 ejection kinds share; `volume` is the request volume default. */
function parseEjectionCommon(f: Fields, volume: number) {
  return {
    enforcementPercentage: f.read('enforcementPercentage', percentage) ?? 100,
    minimumHosts: f.read('minimumHosts', (v, at) => integer(v, at, 1, 1_000_000)) ?? 5,
    requestVolume: f.read('requestVolume', (v, at) => integer(v, at, 1, 1_000_000_000)) ?? volume,
  };
}

function parseSuccessRate(value: unknown, field: string, ctx: ParseContext): SuccessRateEjection {
  const f = Fields.of(value, field, ctx);
  f.only(['stdevFactor', ...EJECTION_COMMON_FIELDS]);
  return {
    stdevFactor: f.read('stdevFactor', (v, at) => integer(v, at, 0, 1_000_000)) ?? 1900,
    ...parseEjectionCommon(f, 100),
  };
}

function parseFailurePercentage(
  value: unknown,
  field: string,
  ctx: ParseContext,
): FailurePercentageEjection {
  const f = Fields.of(value, field, ctx);
  f.only(['threshold', ...EJECTION_COMMON_FIELDS]);
  return {
    threshold: f.read('threshold', percentage) ?? 85,
    ...parseEjectionCommon(f, 50),
  };
}

export function parseOutlierDetection(
  value: unknown,
  field: string,
  ctx: ParseContext = STRICT,
): OutlierDetectionConfig {
  const f = Fields.of(value, field, ctx);
  f.only([
    'interval',
    'baseEjectionTime',
    'maxEjectionTime',
    'maxEjectionPercent',
    'consecutiveFailures',
    'failureStatusCodes',
    'successRateEjection',
    'failurePercentageEjection',
    'childPolicy',
  ]);
  if (f.get('childPolicy') !== undefined) {
    throw new ConfigError(
      f.at('childPolicy'),
      'not used here: outlier detection applies to the policy it is part of',
    );
  }
  const duration = (v: unknown, at: string) => parseDurationField(v, at, ctx);
  const intervalMs = f.read('interval', duration) ?? 10_000;
  if (intervalMs < 1) throw new ConfigError(f.at('interval'), 'must be at least 1ms');
  const baseEjectionTimeMs = f.read('baseEjectionTime', duration) ?? 30_000;
  const failureStatusCodes =
    f.read(
      'failureStatusCodes',
      (list, at) => new Set(array(list, at).map((c, i) => statusCode(c, `${at}[${i}]`))),
    ) ?? new Set(DEFAULT_FAILURE_STATUS_CODES);
  return {
    intervalMs,
    baseEjectionTimeMs,
    maxEjectionTimeMs: Math.max(baseEjectionTimeMs, f.read('maxEjectionTime', duration) ?? 300_000),
    maxEjectionPercent: f.read('maxEjectionPercent', percentage) ?? 10,
    consecutiveFailures:
      f.read('consecutiveFailures', (v, at) => integer(v, at, 0, 1_000_000)) ?? 5,
    failureStatusCodes,
    successRateEjection: f.read('successRateEjection', (v, at) => parseSuccessRate(v, at, ctx)),
    failurePercentageEjection: f.read('failurePercentageEjection', (v, at) =>
      parseFailurePercentage(v, at, ctx),
    ),
  };
}

export function parseHealthCheck(
  value: unknown,
  field: string,
  ctx: ParseContext = STRICT,
): HealthCheckConfig {
  const f = Fields.of(value, field, ctx);
  f.only(['serviceName', 'checkInterval']);
  const serviceName = f.read('serviceName', (name, at) => {
    if (typeof name !== 'string') {
      throw new ConfigError(at, `expected a string, got ${describe(name)}`);
    }
    return name;
  });
  const checkIntervalMs =
    f.read('checkInterval', (v, at) => parseDurationField(v, at, ctx)) ?? 5_000;
  if (checkIntervalMs < 10) {
    throw new ConfigError(f.at('checkInterval'), 'must be at least 10ms');
  }
  return { serviceName: serviceName ?? '', checkIntervalMs };
}

export function parseSlowStart(
  value: unknown,
  field: string,
  ctx: ParseContext = STRICT,
): SlowStartConfig {
  const f = Fields.of(value, field, ctx);
  f.only(['window', 'aggression', 'minWeightPercent']);
  const windowMs = f.read('window', (v, at) => parseDurationField(v, at, ctx));
  if (windowMs === undefined) throw new ConfigError(`${field}.window`, 'is required (e.g. "30s")');
  const aggression = f.read('aggression', (v, at) => {
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) {
      throw new ConfigError(at, `expected a number above 0, got ${describe(v)}`);
    }
    return v;
  });
  return {
    windowMs,
    aggression: aggression ?? 1,
    minWeightPercent: f.read('minWeightPercent', (v, at) => integer(v, at, 1, 100)) ?? 10,
  };
}

/** Parses the shared options out of a policy's config object (other fields are the policy's own). */
export function parseResilience(
  obj: Readonly<Record<string, unknown>>,
  field: string,
  ctx: ParseContext = STRICT,
): ResilienceConfig {
  const f = Fields.of(obj, field, ctx);
  const zoneAware = f.read('zoneAware', (v, at) => parseZoneAware(v, at, ctx));
  const limits = f.read('limits', (v, at) => parseCallLimits(v, at, ctx));
  const retryBudget = f.read('retryBudget', (v, at) => parseRetryBudget(v, at, ctx));
  return {
    outlierDetection: f.read('outlierDetection', (v, at) => parseOutlierDetection(v, at, ctx)),
    healthCheck: f.read('healthCheck', (v, at) => parseHealthCheck(v, at, ctx)),
    panicThresholdPercent: f.read('panicThreshold', percentage) ?? 0,
    slowStart: f.read('slowStart', (v, at) => parseSlowStart(v, at, ctx)),
    startupGraceMs:
      f.read('startupGraceMs', (v, at) => integer(v, at, 0, MAX_STARTUP_GRACE_MS)) ?? 0,
    removalHoldDownMs:
      f.read('removalHoldDownMs', (v, at) => integer(v, at, 0, MAX_REMOVAL_HOLD_DOWN_MS)) ??
      DEFAULT_REMOVAL_HOLD_DOWN_MS,
    ...(zoneAware ? { zoneAware } : {}),
    subsetting: f.read('subsetting', (v, at) => parseSubsetting(v, at, ctx)),
    ...(limits ? { limits } : {}),
    ...(retryBudget ? { retryBudget } : {}),
  };
}

export const NO_RESILIENCE: ResilienceConfig = {
  outlierDetection: undefined,
  healthCheck: undefined,
  panicThresholdPercent: 0,
  slowStart: undefined,
  startupGraceMs: 0,
  removalHoldDownMs: DEFAULT_REMOVAL_HOLD_DOWN_MS,
  subsetting: undefined,
};

/** Splits a policy's JSON into its own fields (for the policy's parser) and the shared options (parsed). */
export function splitPolicyJson(
  json: unknown,
  field: string,
  ctx: ParseContext = STRICT,
): { own: Record<string, unknown>; resilience: ResilienceConfig } {
  const body = Fields.of(json ?? {}, field, ctx).json;
  const own: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    if (!RESILIENCE_FIELDS.includes(key)) own[key] = value;
  }
  return { own, resilience: parseResilience(body, field, ctx) };
}
