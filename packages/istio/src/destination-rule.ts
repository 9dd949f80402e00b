/**
 * DestinationRule → the subsets of a `grpc-lb.traffic_split` config, their
 * policies, and the shared resilience options (outlier detection, panic
 * threshold, slow start, limits).
 */
import { ConfigError, parseConsistentHashConfig } from '@grpc-lb/core';
import { durationNanos, grpcDuration } from './duration';
import { connectionPoolLimits } from './connection-pool';
import { At, isObject, otherFields, type Json } from './fields';

/** Subset policies of `grpc-lb.traffic_split`. */
export type SubsetPolicy = 'round_robin' | 'least_request' | 'random' | 'consistent_hash';

export interface TranslatedSubset {
  readonly name: string;
  readonly labels: Record<string, string>;
  /** Set when the subset's own `trafficPolicy.loadBalancer` names one. */
  readonly policy: SubsetPolicy | undefined;
  /** With policy `consistent_hash`: the options from the subset's own `consistentHash`. */
  readonly consistentHash?: Json;
}

export interface TranslatedRule {
  readonly subsets: TranslatedSubset[];
  /** From the top-level `trafficPolicy.loadBalancer` (`simple`, or `consistentHash`). */
  readonly subsetPolicy: SubsetPolicy | undefined;
  /** With subsetPolicy `consistent_hash`: the split's `consistentHash` options. */
  readonly consistentHash?: Json;
  /** `outlierDetection`, `panicThreshold`, `slowStart`: fields of the traffic split itself. */
  readonly resilience: Json;
}

/**
 * gRPC statuses that Envoy counts as a 5xx for outlier detection: it turns a
 * gRPC status into an HTTP one (UNKNOWN, INTERNAL, DATA_LOSS → 500,
 * UNIMPLEMENTED → 501, UNAVAILABLE → 503, DEADLINE_EXCEEDED → 504) and counts
 * the 5xx among them; a failed connection counts as 503 and an upstream
 * timeout as 504, which a gRPC client sees as UNAVAILABLE and
 * DEADLINE_EXCEEDED.
 */
export const FIVE_XX_STATUSES = [
  'UNKNOWN',
  'DEADLINE_EXCEEDED',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
] as const;

/** The gRPC statuses Envoy turns into a gateway error (502, 503, 504). */
export const GATEWAY_STATUSES = ['DEADLINE_EXCEEDED', 'UNAVAILABLE'] as const;

/** Envoy's consecutive_5xx default, which Istio leaves in place when consecutive5xxErrors is unset. */
const ENVOY_CONSECUTIVE_5XX = 5;

const SIMPLE: Readonly<Record<string, SubsetPolicy | undefined>> = {
  ROUND_ROBIN: 'round_robin',
  LEAST_REQUEST: 'least_request',
  LEAST_CONN: 'least_request',
  RANDOM: 'random',
  UNSPECIFIED: undefined,
};

const TRAFFIC_POLICY_NOTES: Readonly<Record<string, string>> = {
  tls: 'TLS settings are not applied: the channel credentials decide TLS',
  portLevelSettings:
    'per-port policies are not applied: the client does not know which Service port its target names',
  tunnel: 'tunnel settings are not applied by the client',
  proxyProtocol: 'the PROXY protocol is not sent by the client',
  retryBudget:
    'not translated: Istio’s budget counts retries in flight against requests in flight; ' +
    'grpc-lb’s retryBudget counts them over a window of time (set it in the policy’s config)',
};

function durationField(at: At, value: unknown): string {
  const text = at.string(value);
  const nanos = durationNanos(text);
  if (nanos === undefined) at.fail(`expected a duration like "10s" or "500ms", got "${text}"`);
  if (nanos < 1e6) at.fail(`must be at least 1ms, got "${text}"`);
  return grpcDuration(nanos);
}

/** What a `loadBalancer` gives: the subset policy, and the consistent-hash options with it. */
interface LoadBalancing {
  readonly policy: SubsetPolicy | undefined;
  readonly consistentHash?: Json;
}

const HASH_SOURCES_UNSUPPORTED: Readonly<Record<string, string>> = {
  httpCookie: 'gRPC calls carry no cookies',
  useSourceIp: 'every call of a client has the same source address',
  httpQueryParameterName: 'gRPC calls have no query string',
};

/**
 * `consistentHash` → the options of our `consistent_hash` (`ringHash` or the
 * deprecated `minimumRingSize` → ring hash; `maglev` → Maglev). Only
 * `httpHeaderName` gives a key here; the other sources are warned, and calls
 * are then keyed only by `setHashKey` (the others go to a random endpoint, as
 * Envoy sends a request with no hash value).
 */
function consistentHash(at: At, value: unknown): Json {
  const ch = at.object(value);
  const known = ['httpHeaderName', 'ringHash', 'maglev', 'minimumRingSize'];
  for (const key of otherFields(ch, known)) {
    const why = HASH_SOURCES_UNSUPPORTED[key];
    at.key(key).note(
      why === undefined
        ? 'not applied by the client'
        : `hashing on ${key} is not applied (${why}): calls are hashed by the key the application sets (setHashKey), and calls without one go to a random endpoint`,
    );
  }
  const result: Json = {};
  if (ch['httpHeaderName'] !== undefined) {
    result['hashHeader'] = at.key('httpHeaderName').string(ch['httpHeaderName']).toLowerCase();
  }
  if (ch['ringHash'] !== undefined && ch['maglev'] !== undefined) {
    at.fail('give one of ringHash, maglev, not both');
  }
  if (ch['maglev'] !== undefined) {
    const maglev = at.key('maglev').object(ch['maglev']);
    result['algorithm'] = 'maglev';
    if (maglev['tableSize'] !== undefined) {
      result['tableSize'] = at.key('maglev.tableSize').integer(maglev['tableSize'], 2, 5_000_011);
    }
    if (ch['minimumRingSize'] !== undefined) {
      at.key('minimumRingSize').note('not applied: it sizes a ring, and maglev is chosen');
    }
  } else {
    let size: unknown;
    let sizeAt = at.key('minimumRingSize');
    if (ch['ringHash'] !== undefined) {
      const ring = at.key('ringHash').object(ch['ringHash']);
      if (ring['minimumRingSize'] !== undefined) {
        size = ring['minimumRingSize'];
        sizeAt = at.key('ringHash.minimumRingSize');
      }
      if (ch['minimumRingSize'] !== undefined) {
        at.key('minimumRingSize').note('not applied: ringHash.minimumRingSize is used');
      }
    } else size = ch['minimumRingSize'];
    result['algorithm'] = 'ring_hash';
    // Istio writes 0 for "unset": the default applies.
    const min = size === undefined ? 0 : sizeAt.integer(size, 0, 8_388_608);
    if (min > 0) result['minRingSize'] = min;
  }
  try {
    parseConsistentHashConfig(result, 'consistentHash');
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    at.fail(`cannot be applied: ${error.problem}`);
  }
  return result;
}

function loadBalancer(at: At, value: unknown): LoadBalancing {
  const lb = at.object(value);
  for (const key of otherFields(lb, ['simple', 'consistentHash', 'warmupDurationSecs', 'warmup'])) {
    const field = at.key(key);
    if (key === 'localityLbSetting') {
      field.note('locality-aware load balancing is not applied: every endpoint is used alike');
    } else field.note('not applied by the client');
  }
  if (lb['consistentHash'] !== undefined) {
    if (lb['simple'] !== undefined) at.fail('give one of simple, consistentHash, not both');
    return {
      policy: 'consistent_hash',
      consistentHash: consistentHash(at.key('consistentHash'), lb['consistentHash']),
    };
  }
  if (lb['simple'] === undefined) return { policy: undefined };
  const simple = at.key('simple').string(lb['simple']);
  if (simple === 'PASSTHROUGH') {
    at.key('simple').note(
      'PASSTHROUGH (use the address the caller chose) has no client-side equivalent: round robin is used',
    );
    return { policy: 'round_robin' };
  }
  if (!Object.hasOwn(SIMPLE, simple)) {
    at.key('simple').fail(
      `expected ROUND_ROBIN, LEAST_REQUEST, RANDOM, PASSTHROUGH or UNSPECIFIED, got "${simple}"`,
    );
  }
  return { policy: SIMPLE[simple] };
}

/** `warmupDurationSecs` (or `warmup.duration`) → our slow start, whose ramp is Envoy's. */
function slowStart(at: At, lb: Json): Json | undefined {
  if (lb['warmup'] !== undefined) {
    const warm = at.key('warmup').object(lb['warmup']);
    for (const key of otherFields(warm, ['duration', 'minimumPercent', 'aggression'])) {
      at.key('warmup').key(key).note('not applied by the client');
    }
    if (warm['duration'] === undefined) return undefined;
    const result: Json = { window: durationField(at.key('warmup.duration'), warm['duration']) };
    if (warm['aggression'] !== undefined) {
      result['aggression'] = at.key('warmup.aggression').number(warm['aggression'], 0.01, 1e6);
    }
    if (warm['minimumPercent'] !== undefined) {
      const min = at.key('warmup.minimumPercent').number(warm['minimumPercent'], 0, 100);
      result['minWeightPercent'] = Math.min(100, Math.max(1, Math.round(min)));
    }
    return result;
  }
  if (lb['warmupDurationSecs'] !== undefined) {
    return { window: durationField(at.key('warmupDurationSecs'), lb['warmupDurationSecs']) };
  }
  return undefined;
}

function count(at: At, value: unknown): number {
  // Istio writes these as UInt32Value: a plain number in YAML, or { value: n }.
  const n = isObject(value) ? value['value'] : value;
  return at.integer(n, 0, 1_000_000);
}

function outlierDetection(at: At, value: unknown, subsetCount: number): Json {
  const od = at.object(value);
  const known = [
    'consecutive5xxErrors',
    'consecutiveGatewayErrors',
    'consecutiveErrors',
    'interval',
    'baseEjectionTime',
    'maxEjectionPercent',
    'minHealthPercent',
  ];
  for (const key of otherFields(od, known)) {
    if (key === 'splitExternalLocalOriginErrors' || key === 'consecutiveLocalOriginFailures') {
      at.key(key).note(
        'local-origin failures are not counted apart: a failed connection is an UNAVAILABLE call like any other',
      );
    } else at.key(key).note('not applied by the client');
  }
  // Istio's deprecated consecutiveErrors counts gateway errors only, with 5xx ejection off.
  const legacy =
    od['consecutiveErrors'] === undefined
      ? undefined
      : count(at.key('consecutiveErrors'), od['consecutiveErrors']);
  const fiveXx =
    od['consecutive5xxErrors'] !== undefined
      ? count(at.key('consecutive5xxErrors'), od['consecutive5xxErrors'])
      : legacy !== undefined
        ? 0
        : ENVOY_CONSECUTIVE_5XX;
  const gateway =
    od['consecutiveGatewayErrors'] !== undefined
      ? count(at.key('consecutiveGatewayErrors'), od['consecutiveGatewayErrors'])
      : (legacy ?? 0);
  const result: Json = {};
  if (fiveXx > 0 && (gateway === 0 || gateway >= fiveXx)) {
    result['consecutiveFailures'] = fiveXx;
    result['failureStatusCodes'] = [...FIVE_XX_STATUSES];
  } else if (gateway > 0) {
    result['consecutiveFailures'] = gateway;
    result['failureStatusCodes'] = [...GATEWAY_STATUSES];
    if (fiveXx > 0) {
      at.key('consecutive5xxErrors').note(
        `ejection after ${fiveXx} 5xx-like failures in a row is not applied: one consecutive-failure rule ` +
          `is kept per policy, and the stricter consecutiveGatewayErrors (${gateway}: ${GATEWAY_STATUSES.join(', ')}) is used`,
      );
    }
  } else {
    result['consecutiveFailures'] = 0;
  }
  if (od['interval'] !== undefined) {
    result['interval'] = durationField(at.key('interval'), od['interval']);
  }
  if (od['baseEjectionTime'] !== undefined) {
    result['baseEjectionTime'] = durationField(at.key('baseEjectionTime'), od['baseEjectionTime']);
  }
  if (od['maxEjectionPercent'] !== undefined) {
    const percent = at.key('maxEjectionPercent').integer(od['maxEjectionPercent'], 0, 100);
    // Istio passes 0 as "unset": Envoy's default of 10 applies, as ours does.
    if (percent > 0) result['maxEjectionPercent'] = percent;
  }
  if (subsetCount > 1) {
    at.note(
      'ejection limits (maxEjectionPercent) count over all endpoints of the host, where Istio counts per subset',
    );
  }
  return result;
}

function subsetLabels(at: At, value: unknown): Record<string, string> {
  if (value === undefined) return {};
  const labels: Record<string, string> = {};
  for (const [key, v] of Object.entries(at.object(value))) {
    if (key === '__proto__') at.key(key).fail('is not a usable label name');
    labels[key] = at.key(key).string(v);
  }
  return labels;
}

/** What a trafficPolicy gives: the policy, and the resilience fields (top level only). */
function trafficPolicy(
  at: At,
  value: unknown,
  subsetCount: number,
): { policy: SubsetPolicy | undefined; consistentHash?: Json; resilience: Json } {
  const tp = at.object(value);
  const resilience: Json = {};
  let balancing: LoadBalancing = { policy: undefined };
  for (const key of otherFields(tp, ['loadBalancer', 'outlierDetection'])) {
    const field = at.key(key);
    if (key === 'connectionPool') {
      const limits = connectionPoolLimits(field, tp[key], subsetCount);
      if (limits) resilience['limits'] = limits;
    } else field.note(TRAFFIC_POLICY_NOTES[key] ?? 'not applied by the client');
  }
  if (tp['loadBalancer'] !== undefined) {
    balancing = loadBalancer(at.key('loadBalancer'), tp['loadBalancer']);
    const warm = slowStart(
      at.key('loadBalancer'),
      at.key('loadBalancer').object(tp['loadBalancer']),
    );
    if (warm) resilience['slowStart'] = warm;
  }
  if (tp['outlierDetection'] !== undefined) {
    const od = at.key('outlierDetection');
    resilience['outlierDetection'] = outlierDetection(od, tp['outlierDetection'], subsetCount);
    const objectOd = od.object(tp['outlierDetection']);
    if (objectOd['minHealthPercent'] !== undefined) {
      const min = od.key('minHealthPercent').number(objectOd['minHealthPercent'], 0, 100);
      if (min > 0) {
        resilience['panicThreshold'] = Math.round(min);
        if (subsetCount > 1) {
          od.key('minHealthPercent').note(
            'the panic threshold counts healthy endpoints over the whole host, where Istio counts per subset',
          );
        }
      }
    }
  }
  return { ...balancing, resilience };
}

/**
 * Translates the DestinationRules that apply to the host: the first one gives
 * the traffic policy; the subsets of all of them are kept (a later subset of
 * the same name is left out with a warning).
 */
export function translateDestinationRules(
  rules: readonly { at: At; spec: Json }[],
): TranslatedRule | undefined {
  if (rules.length === 0) return undefined;
  const subsets: TranslatedSubset[] = [];
  let subsetPolicy: SubsetPolicy | undefined;
  let splitHash: Json | undefined;
  let resilience: Json = {};
  let topLevel: Json | undefined;
  rules.forEach(({ at, spec }, r) => {
    for (const key of otherFields(spec, ['host', 'trafficPolicy', 'subsets', 'exportTo'])) {
      if (key === 'workloadSelector') {
        at.key(key).note(
          'the rule applies only to the selected workloads in Istio; here it applies to every client given this config',
        );
      } else at.key(key).note('not applied by the client');
    }
    const list = spec['subsets'] === undefined ? [] : at.key('subsets').list(spec['subsets']);
    if (spec['trafficPolicy'] !== undefined) {
      if (r === 0) {
        const tp = trafficPolicy(at.key('trafficPolicy'), spec['trafficPolicy'], list.length);
        subsetPolicy = tp.policy;
        splitHash = tp.consistentHash;
        resilience = tp.resilience;
        topLevel = at.key('trafficPolicy').object(spec['trafficPolicy']);
      } else {
        at.key('trafficPolicy').note(
          `not applied: the traffic policy of ${rules[0]!.at.resource}, the first DestinationRule for the host, is used`,
        );
      }
    }
    list.forEach((raw, i) => {
      const sat = at.key('subsets').index(i);
      const s = sat.object(raw);
      for (const key of otherFields(s, ['name', 'labels', 'trafficPolicy'])) {
        sat.key(key).note('not applied by the client');
      }
      const name = sat.key('name').string(s['name']);
      if (name === '') sat.key('name').fail('must not be empty');
      if (subsets.some((other) => other.name === name)) {
        sat.key('name').note(`subset "${name}" is defined earlier: this one is left out`);
        return;
      }
      const labels = subsetLabels(sat.key('labels'), s['labels']);
      let policy: SubsetPolicy | undefined;
      let hash: Json | undefined;
      if (s['trafficPolicy'] !== undefined) {
        const tpAt = sat.key('trafficPolicy');
        const tp = tpAt.object(s['trafficPolicy']);
        const own = trafficPolicy(tpAt, { ...tp, outlierDetection: undefined }, 1);
        policy = own.policy;
        hash = own.consistentHash;
        if (own.resilience['slowStart'] !== undefined) {
          tpAt
            .key('loadBalancer')
            .note('slow start applies to the whole host here; a per-subset warmup is not applied');
        }
        if (own.resilience['limits'] !== undefined) {
          tpAt
            .key('connectionPool')
            .note(
              'per-subset limits are not applied: the top-level connectionPool limits the whole channel',
            );
        }
        if (
          tp['outlierDetection'] !== undefined &&
          JSON.stringify(tp['outlierDetection']) !== JSON.stringify(topLevel?.['outlierDetection'])
        ) {
          tpAt
            .key('outlierDetection')
            .note(
              'per-subset outlier detection is not applied: the DestinationRule’s top-level outlierDetection applies to every subset',
            );
        }
      }
      subsets.push({ name, labels, policy, ...(hash ? { consistentHash: hash } : {}) });
    });
  });
  return {
    subsets,
    subsetPolicy,
    ...(splitHash ? { consistentHash: splitHash } : {}),
    resilience,
  };
}
