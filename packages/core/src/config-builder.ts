/**
 * Typed builders for the service config JSON our policies read. What they
 * produce is plain gRPC service config: it can equally be written by hand,
 * stored in a registry, or passed as the `grpc.service_config` option.
 *
 *     const config = serviceConfig(
 *       trafficSplit()
 *         .subset('v1', { version: 'v1' }).subset('v2', { version: 'v2' }).subset('v3', { version: 'v3' })
 *         .route({ method: '/helloworld.Greeter/SayHello' }, { v1: 30, v2: 60, v3: 10 })
 *         .defaultRoute({ v2: 100 }),
 *       { methodConfig: [{ name: [{ service: 'helloworld.Greeter' }], timeout: '2s' }] },
 *     );
 *     new GreeterClient(target, creds, { 'grpc.service_config': JSON.stringify(config) });
 */
import { CONSISTENT_HASH_POLICY } from './consistent-hash-config';
import { LEAST_REQUEST_POLICY } from './least-request-config';
import { ROUND_ROBIN_POLICY } from './round-robin-config';
import { checkServiceConfig, parseOurPolicy } from './service-config';
import { TRAFFIC_SPLIT_POLICY, type SubsetPolicy } from './traffic-split-config';
import { WEIGHTED_ROUND_ROBIN_POLICY } from './weighted-round-robin-config';

/** One `loadBalancingConfig` entry: `{ "<policy>": { … } }`. */
export type LoadBalancingConfigJson = Readonly<Record<string, unknown>>;

/** A header match as written in the config: `regex` is an RE2 pattern the whole value must match. */
export type HeaderMatchInput =
  | { readonly name: string; readonly exact: string }
  | { readonly name: string; readonly prefix: string }
  | { readonly name: string; readonly regex: string }
  | { readonly name: string; readonly present: boolean };

/** One of `method`, `prefix`, `regex` (or none: every method), and the headers. */
export interface RouteMatchInput {
  /** Exact full method name, `/pkg.Service/Method`. */
  readonly method?: string;
  /** Method name prefix, `/pkg.Service/`. */
  readonly prefix?: string;
  /** An RE2 pattern the whole method name must match, `/pkg\\.Service/Get.*`. */
  readonly regex?: string;
  readonly headers?: readonly HeaderMatchInput[];
}

/**
 * The options every policy takes (resilience-config.ts), as JSON: durations
 * as "10s" strings, names as in gRPC A50 / Envoy.
 */
export interface ResilienceOptions {
  readonly outlierDetection?: {
    readonly interval?: string;
    readonly baseEjectionTime?: string;
    readonly maxEjectionTime?: string;
    readonly maxEjectionPercent?: number;
    readonly consecutiveFailures?: number;
    readonly failureStatusCodes?: readonly (string | number)[];
    readonly successRateEjection?: {
      readonly stdevFactor?: number;
      readonly enforcementPercentage?: number;
      readonly minimumHosts?: number;
      readonly requestVolume?: number;
    };
    readonly failurePercentageEjection?: {
      readonly threshold?: number;
      readonly enforcementPercentage?: number;
      readonly minimumHosts?: number;
      readonly requestVolume?: number;
    };
  };
  readonly healthCheck?: { readonly serviceName?: string; readonly checkInterval?: string };
  /** Percentage of healthy endpoints under which health and ejection are ignored; default 0 (off). */
  readonly panicThreshold?: number;
  readonly slowStart?: {
    readonly window: string;
    readonly aggression?: number;
    readonly minWeightPercent?: number;
  };
  /** Ms a new channel holds its first calls for endpoints still connecting (0-10000); default 0 (off). */
  readonly startupGraceMs?: number;
  /** Ms endpoints removed en masse while connected stay in rotation (0-60000); default 2000, 0 = off. */
  readonly removalHoldDownMs?: number;
  /** Zone-aware routing (Envoy's): see the core README. */
  readonly zoneAware?: {
    readonly localZone?: string;
    readonly minClusterSize?: number;
    readonly routingEnabled?: number;
    readonly clientShares?: Readonly<Record<string, number>>;
    readonly kubernetesHints?: boolean;
  };
  /** Connect to `subsetSize` of the endpoints (default 20), chosen at random (gRFC A68) or by client id. */
  readonly subsetting?: {
    readonly subsetSize?: number;
    readonly mode?: 'random' | 'deterministic';
    readonly clientId?: number;
  };
  /** Circuit breaking (each limit off unless set); see the README's "Call limits". */
  readonly limits?: {
    readonly maxRequests?: number;
    readonly maxRequestsPerEndpoint?: number;
    readonly maxPending?: number;
    readonly onLimit?: 'fail' | 'queue';
  };
  /** A cap on grpc-js's retries and hedges; `{}` is Linkerd's 0.2, 10/s, "10s". */
  readonly retryBudget?: {
    readonly ratio?: number;
    readonly minRetriesPerSecond?: number;
    readonly ttl?: string;
  };
}

function policy(name: string, body: object): LoadBalancingConfigJson {
  const json = JSON.parse(JSON.stringify(body)) as unknown;
  parseOurPolicy(name, json);
  return { [name]: json };
}

export function roundRobin(options: ResilienceOptions = {}): LoadBalancingConfigJson {
  return policy(ROUND_ROBIN_POLICY, options);
}

export function weightedRoundRobin(options: ResilienceOptions = {}): LoadBalancingConfigJson {
  return policy(WEIGHTED_ROUND_ROBIN_POLICY, options);
}

/** Least outstanding requests over random choices, weighted by peak-EWMA latency (Linkerd). */
export function leastRequest(
  options: ResilienceOptions & {
    readonly choiceCount?: number;
    readonly defaultLatency?: string;
  } = {},
): LoadBalancingConfigJson {
  return policy(LEAST_REQUEST_POLICY, options);
}

/** The options of `grpc-lb.consistent_hash` (also of a traffic-split subset's `consistentHash`). */
export interface ConsistentHashOptions {
  readonly algorithm?: 'ring_hash' | 'maglev';
  readonly hashHeader?: string;
  readonly minRingSize?: number;
  readonly maxRingSize?: number;
  readonly tableSize?: number;
  readonly fallback?: 'random' | 'round_robin';
}

/** Sticky routing by each call's key: ring hash (gRFC A42) or Maglev (Envoy); see the README. */
export function consistentHash(
  options: ResilienceOptions & ConsistentHashOptions = {},
): LoadBalancingConfigJson {
  return policy(CONSISTENT_HASH_POLICY, options);
}

export class TrafficSplitBuilder {
  private readonly subsets: {
    name: string;
    labels: Record<string, string>;
    policy?: SubsetPolicy;
    consistentHash?: ConsistentHashOptions;
  }[] = [];
  private readonly routes: {
    name?: string;
    match?: RouteMatchInput;
    split: { subset: string; weight: number }[];
  }[] = [];
  private subsetPolicy: SubsetPolicy | undefined;
  private emptySubset: 'redistribute' | 'fail' | undefined;
  private resilienceOptions: ResilienceOptions = {};

  /** Outlier detection, health checks, panic threshold, slow start, startup grace over all the endpoints. */
  resilience(options: ResilienceOptions): this {
    this.resilienceOptions = options;
    return this;
  }

  /**
   * A named group of endpoints: those carrying every one of `labels`. With policy
   * `consistent_hash`, `consistentHash` gives its options (`{ hashHeader: 'x-user-id' }`).
   */
  subset(
    name: string,
    labels: Record<string, string>,
    options: { policy?: SubsetPolicy; consistentHash?: ConsistentHashOptions } = {},
  ): this {
    this.subsets.push({
      name,
      labels: { ...labels },
      ...(options.policy ? { policy: options.policy } : {}),
      ...(options.consistentHash ? { consistentHash: { ...options.consistentHash } } : {}),
    });
    return this;
  }

  /** Calls matching `match` go to the subsets in proportion to `weights` (`{ v1: 30, v2: 60, v3: 10 }`). */
  route(
    match: RouteMatchInput,
    weights: Readonly<Record<string, number>>,
    options: { name?: string } = {},
  ): this {
    this.routes.push({
      ...(options.name ? { name: options.name } : {}),
      match: { ...match },
      split: Object.entries(weights).map(([subset, weight]) => ({ subset, weight })),
    });
    return this;
  }

  /** The route for calls no earlier route matched (otherwise they go to every endpoint, round robin). */
  defaultRoute(weights: Readonly<Record<string, number>>, options: { name?: string } = {}): this {
    this.routes.push({
      ...(options.name ? { name: options.name } : {}),
      split: Object.entries(weights).map(([subset, weight]) => ({ subset, weight })),
    });
    return this;
  }

  /** How endpoints are picked inside a subset (default round robin). */
  withinSubsets(policy: SubsetPolicy): this {
    this.subsetPolicy = policy;
    return this;
  }

  /**
   * A subset that cannot take calls now: `redistribute` (default) gives its share to the route's
   * ready subsets; `fail` queues it while the subset is waiting (connecting, or awaiting its first
   * health answer) and fails it while the subset is empty (no endpoint in rotation or on its
   * way).
   */
  onEmptySubset(mode: 'redistribute' | 'fail'): this {
    this.emptySubset = mode;
    return this;
  }

  /** The `loadBalancingConfig` entry; throws `ConfigError` naming the field if it is invalid. */
  build(): LoadBalancingConfigJson {
    const body = {
      ...this.resilienceOptions,
      subsets: this.subsets,
      routes: this.routes,
      ...(this.subsetPolicy ? { subsetPolicy: this.subsetPolicy } : {}),
      ...(this.emptySubset ? { onEmptySubset: this.emptySubset } : {}),
    };
    return policy(TRAFFIC_SPLIT_POLICY, body);
  }
}

export function trafficSplit(): TrafficSplitBuilder {
  return new TrafficSplitBuilder();
}

/**
 * A whole service config from a policy (or builder) and optional method
 * configs; checked like the client would check it.
 */
export function serviceConfig(
  policy: LoadBalancingConfigJson | TrafficSplitBuilder,
  options: { methodConfig?: readonly Record<string, unknown>[] } = {},
): {
  loadBalancingConfig: LoadBalancingConfigJson[];
  methodConfig?: readonly Record<string, unknown>[];
} {
  const entry = policy instanceof TrafficSplitBuilder ? policy.build() : policy;
  const config = {
    loadBalancingConfig: [entry],
    ...(options.methodConfig ? { methodConfig: options.methodConfig } : {}),
  };
  checkServiceConfig(config, 'serviceConfig()');
  return config;
}
