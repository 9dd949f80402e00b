/**
 * Options every grpc-lb policy accepts beside its own: passive outlier
 * detection, active health checks, the panic threshold and slow start.
 * Field names and defaults are the ones operators know from gRPC A50,
 * Envoy and Istio; both grpc-go's form (camelCase, "10s") and grpc-js's
 * (snake_case, {seconds, nanos}) parse.
 *
 *     "grpc-lb.round_robin": {
 *       "outlierDetection": { "interval": "10s", "consecutiveFailures": 5,
 *                             "failurePercentageEjection": { "threshold": 50, "minimumHosts": 3 } },
 *       "healthCheck": { "serviceName": "" },
 *       "panicThreshold": 50,
 *       "slowStart": { "window": "30s" } }
 */
import { ConfigError, describe } from './errors';

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
  /** Below this percentage of usable endpoints, health and ejection are ignored (Envoy: 50). 0 turns it off. */
  readonly panicThresholdPercent: number;
  readonly slowStart: SlowStartConfig | undefined;
}

/** The shared option names, in grpc-go's camelCase and grpc-js's snake_case. */
const RESILIENCE_PAIRS = [
  ['outlierDetection', 'outlier_detection'],
  ['healthCheck', 'health_check'],
  ['panicThreshold', 'panic_threshold'],
  ['slowStart', 'slow_start'],
] as const;

export const RESILIENCE_FIELDS: readonly string[] = RESILIENCE_PAIRS.flat();

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

type Json = Record<string, unknown>;

function object(value: unknown, field: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(field, `expected an object, got ${describe(value)}`);
  }
  return value as Json;
}

/** Reads `camel` or its snake_case twin; giving both is an error. */
function pick(obj: Json, field: string, camel: string, snake: string): unknown {
  if (camel in obj && snake in obj && camel !== snake) {
    throw new ConfigError(`${field}.${camel}`, `given twice (also as ${snake})`);
  }
  return camel in obj ? obj[camel] : obj[snake];
}

function which(obj: Json, camel: string, snake: string): string {
  return snake in obj ? snake : camel;
}

function only(obj: Json, field: string, pairs: readonly (readonly [string, string])[]): void {
  const allowed = new Set(pairs.flat());
  for (const key of Object.keys(obj)) {
    if (!allowed.has(key)) {
      throw new ConfigError(
        `${field}.${key}`,
        `unknown field (expected one of ${pairs.map((p) => p[0]).join(', ')})`,
      );
    }
  }
}

const DURATION = /^(\d+)(?:\.(\d{1,9}))?s$/;

/** "10s", "0.25s" (grpc-go / proto JSON) or {seconds, nanos} (grpc-js) → milliseconds. */
export function parseDurationMs(value: unknown, field: string): number {
  if (typeof value === 'string') {
    const match = DURATION.exec(value);
    if (!match)
      throw new ConfigError(field, `expected a duration like "10s" or "0.5s", got "${value}"`);
    return Number(match[1]) * 1000 + Number((match[2] ?? '').padEnd(9, '0')) / 1e6;
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const { seconds = 0, nanos = 0, ...rest } = value as { seconds?: unknown; nanos?: unknown };
    const extra = Object.keys(rest);
    if (extra.length > 0)
      throw new ConfigError(`${field}.${extra[0]}`, 'unknown field (expected seconds, nanos)');
    const s = typeof seconds === 'string' && /^\d+$/.test(seconds) ? Number(seconds) : seconds;
    if (typeof s !== 'number' || !Number.isInteger(s) || s < 0) {
      throw new ConfigError(
        `${field}.seconds`,
        `expected a non-negative integer, got ${describe(seconds)}`,
      );
    }
    if (typeof nanos !== 'number' || !Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) {
      throw new ConfigError(
        `${field}.nanos`,
        `expected an integer 0-999999999, got ${describe(nanos)}`,
      );
    }
    return s * 1000 + nanos / 1e6;
  }
  throw new ConfigError(
    field,
    `expected a duration ("10s" or {"seconds": 10}), got ${describe(value)}`,
  );
}

function integer(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(
      field,
      `expected an integer ${min}-${max}, got ${describe(value)}${typeof value === 'number' ? ` ${value}` : ''}`,
    );
  }
  return value;
}

function percentage(value: unknown, field: string): number {
  return integer(value, field, 0, 100);
}

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

/** The four numbers both A50 ejection kinds share; `volume` is the request volume default. */
function parseEjectionCommon(obj: Json, field: string, volume: number) {
  const get = (camel: string, snake: string) => pick(obj, field, camel, snake);
  const at = (camel: string, snake: string) => `${field}.${which(obj, camel, snake)}`;
  const enforcement = get('enforcementPercentage', 'enforcement_percentage');
  const hosts = get('minimumHosts', 'minimum_hosts');
  const requestVolume = get('requestVolume', 'request_volume');
  return {
    enforcementPercentage:
      enforcement === undefined
        ? 100
        : percentage(enforcement, at('enforcementPercentage', 'enforcement_percentage')),
    minimumHosts:
      hosts === undefined ? 5 : integer(hosts, at('minimumHosts', 'minimum_hosts'), 1, 1_000_000),
    requestVolume:
      requestVolume === undefined
        ? volume
        : integer(requestVolume, at('requestVolume', 'request_volume'), 1, 1_000_000_000),
  };
}

const EJECTION_COMMON_FIELDS = [
  ['enforcementPercentage', 'enforcement_percentage'],
  ['minimumHosts', 'minimum_hosts'],
  ['requestVolume', 'request_volume'],
] as const;

function parseSuccessRate(value: unknown, field: string): SuccessRateEjection {
  const obj = object(value, field);
  only(obj, field, [['stdevFactor', 'stdev_factor'], ...EJECTION_COMMON_FIELDS]);
  const stdev = pick(obj, field, 'stdevFactor', 'stdev_factor');
  return {
    stdevFactor:
      stdev === undefined
        ? 1900
        : integer(stdev, `${field}.${which(obj, 'stdevFactor', 'stdev_factor')}`, 0, 1_000_000),
    ...parseEjectionCommon(obj, field, 100),
  };
}

function parseFailurePercentage(value: unknown, field: string): FailurePercentageEjection {
  const obj = object(value, field);
  only(obj, field, [['threshold', 'threshold'], ...EJECTION_COMMON_FIELDS]);
  const threshold = obj['threshold'];
  return {
    threshold: threshold === undefined ? 85 : percentage(threshold, `${field}.threshold`),
    ...parseEjectionCommon(obj, field, 50),
  };
}

export function parseOutlierDetection(value: unknown, field: string): OutlierDetectionConfig {
  const obj = object(value, field);
  const pairs = [
    ['interval', 'interval'],
    ['baseEjectionTime', 'base_ejection_time'],
    ['maxEjectionTime', 'max_ejection_time'],
    ['maxEjectionPercent', 'max_ejection_percent'],
    ['consecutiveFailures', 'consecutive_failures'],
    ['failureStatusCodes', 'failure_status_codes'],
    ['successRateEjection', 'success_rate_ejection'],
    ['failurePercentageEjection', 'failure_percentage_ejection'],
    ['childPolicy', 'child_policy'],
  ] as const;
  only(obj, field, pairs);
  const get = (camel: string, snake: string) => pick(obj, field, camel, snake);
  const at = (camel: string, snake: string) => `${field}.${which(obj, camel, snake)}`;
  if (get('childPolicy', 'child_policy') !== undefined) {
    throw new ConfigError(
      at('childPolicy', 'child_policy'),
      'not used here: outlier detection applies to the policy it is part of',
    );
  }
  const interval = get('interval', 'interval');
  const base = get('baseEjectionTime', 'base_ejection_time');
  const max = get('maxEjectionTime', 'max_ejection_time');
  const maxPercent = get('maxEjectionPercent', 'max_ejection_percent');
  const consecutive = get('consecutiveFailures', 'consecutive_failures');
  const codes = get('failureStatusCodes', 'failure_status_codes');
  const successRate = get('successRateEjection', 'success_rate_ejection');
  const failurePercentage = get('failurePercentageEjection', 'failure_percentage_ejection');
  const intervalMs =
    interval === undefined ? 10_000 : parseDurationMs(interval, `${field}.interval`);
  if (intervalMs < 1) throw new ConfigError(`${field}.interval`, 'must be at least 1ms');
  const baseEjectionTimeMs =
    base === undefined
      ? 30_000
      : parseDurationMs(base, at('baseEjectionTime', 'base_ejection_time'));
  let failureStatusCodes: Set<number> = new Set(DEFAULT_FAILURE_STATUS_CODES);
  if (codes !== undefined) {
    const list = codes;
    const codesField = at('failureStatusCodes', 'failure_status_codes');
    if (!Array.isArray(list))
      throw new ConfigError(codesField, `expected an array, got ${describe(list)}`);
    failureStatusCodes = new Set(list.map((c: unknown, i) => statusCode(c, `${codesField}[${i}]`)));
  }
  return {
    intervalMs,
    baseEjectionTimeMs,
    maxEjectionTimeMs: Math.max(
      baseEjectionTimeMs,
      max === undefined
        ? 300_000
        : parseDurationMs(max, at('maxEjectionTime', 'max_ejection_time')),
    ),
    maxEjectionPercent:
      maxPercent === undefined
        ? 10
        : percentage(maxPercent, at('maxEjectionPercent', 'max_ejection_percent')),
    consecutiveFailures:
      consecutive === undefined
        ? 5
        : integer(consecutive, at('consecutiveFailures', 'consecutive_failures'), 0, 1_000_000),
    failureStatusCodes,
    successRateEjection:
      successRate === undefined
        ? undefined
        : parseSuccessRate(successRate, at('successRateEjection', 'success_rate_ejection')),
    failurePercentageEjection:
      failurePercentage === undefined
        ? undefined
        : parseFailurePercentage(
            failurePercentage,
            at('failurePercentageEjection', 'failure_percentage_ejection'),
          ),
  };
}

export function parseHealthCheck(value: unknown, field: string): HealthCheckConfig {
  const obj = object(value, field);
  const pairs = [
    ['serviceName', 'service_name'],
    ['checkInterval', 'check_interval'],
  ] as const;
  only(obj, field, pairs);
  const name = pick(obj, field, 'serviceName', 'service_name');
  if (name !== undefined && typeof name !== 'string') {
    throw new ConfigError(
      `${field}.${which(obj, 'serviceName', 'service_name')}`,
      `expected a string, got ${describe(name)}`,
    );
  }
  const interval = pick(obj, field, 'checkInterval', 'check_interval');
  const checkIntervalMs =
    interval === undefined
      ? 5_000
      : parseDurationMs(interval, `${field}.${which(obj, 'checkInterval', 'check_interval')}`);
  if (checkIntervalMs < 10) {
    throw new ConfigError(
      `${field}.${which(obj, 'checkInterval', 'check_interval')}`,
      'must be at least 10ms',
    );
  }
  return { serviceName: name ?? '', checkIntervalMs };
}

export function parseSlowStart(value: unknown, field: string): SlowStartConfig {
  const obj = object(value, field);
  const pairs = [
    ['window', 'window'],
    ['aggression', 'aggression'],
    ['minWeightPercent', 'min_weight_percent'],
  ] as const;
  only(obj, field, pairs);
  const window = pick(obj, field, 'window', 'window');
  if (window === undefined) throw new ConfigError(`${field}.window`, 'is required (e.g. "30s")');
  const aggression = pick(obj, field, 'aggression', 'aggression');
  if (
    aggression !== undefined &&
    (typeof aggression !== 'number' || !(aggression > 0) || !Number.isFinite(aggression))
  ) {
    throw new ConfigError(
      `${field}.aggression`,
      `expected a number above 0, got ${describe(aggression)}`,
    );
  }
  const min = pick(obj, field, 'minWeightPercent', 'min_weight_percent');
  return {
    windowMs: parseDurationMs(window, `${field}.window`),
    aggression: aggression ?? 1,
    minWeightPercent:
      min === undefined
        ? 10
        : integer(min, `${field}.${which(obj, 'minWeightPercent', 'min_weight_percent')}`, 1, 100),
  };
}

/** Parses the shared options out of a policy's config object (other fields are the policy's own). */
export function parseResilience(
  obj: Readonly<Record<string, unknown>>,
  field: string,
): ResilienceConfig {
  const json = obj as Json;
  const get = (camel: string, snake: string) => pick(json, field, camel, snake);
  const at = (camel: string, snake: string) => `${field}.${which(json, camel, snake)}`;
  const outlier = get('outlierDetection', 'outlier_detection');
  const health = get('healthCheck', 'health_check');
  const panic = get('panicThreshold', 'panic_threshold');
  const slowStart = get('slowStart', 'slow_start');
  return {
    outlierDetection:
      outlier === undefined
        ? undefined
        : parseOutlierDetection(outlier, at('outlierDetection', 'outlier_detection')),
    healthCheck:
      health === undefined
        ? undefined
        : parseHealthCheck(health, at('healthCheck', 'health_check')),
    panicThresholdPercent:
      panic === undefined ? 50 : percentage(panic, at('panicThreshold', 'panic_threshold')),
    slowStart:
      slowStart === undefined
        ? undefined
        : parseSlowStart(slowStart, at('slowStart', 'slow_start')),
  };
}

export const NO_RESILIENCE: ResilienceConfig = {
  outlierDetection: undefined,
  healthCheck: undefined,
  panicThresholdPercent: 50,
  slowStart: undefined,
};

/** Splits a policy's JSON into its own fields and the shared resilience options (parsed). */
export function splitPolicyJson(
  json: unknown,
  field: string,
): { own: Record<string, unknown>; resilience: ResilienceConfig } {
  const obj: unknown = json ?? {};
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new ConfigError(field, `expected an object, got ${describe(obj)}`);
  }
  const own: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    if (!RESILIENCE_FIELDS.includes(key)) own[key] = value;
  }
  return { own, resilience: parseResilience(obj as Record<string, unknown>, field) };
}
