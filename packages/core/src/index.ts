// ---------------------------------------------------------------------------
// For applications: registering, choosing and configuring policies, errors.
// ---------------------------------------------------------------------------
export { register, type RegisterOptions, type Registration } from './register';
export {
  METER_NAME,
  METRICS_OPTION,
  type MeterLike,
  type MeterProviderLike,
  type MetricsOptions,
} from './metrics';
export { SUPPORTED_GRPC_JS_RANGE } from './grpc-js/runtime';
export type { Logger } from './logger';
export { ManualEndpoints } from './manual-target';
export { validateTarget } from './validate';
export {
  GrpcLbError,
  TargetError,
  ConfigError,
  EndpointError,
  UnsupportedGrpcJsError,
  RegistrationError,
  type GrpcLbErrorCode,
} from './errors';
export {
  OPTION_MIN_REFRESH_INTERVAL_MS,
  OPTION_MAX_REFRESH_BACKOFF_MS,
  OPTION_MAX_OUTAGE_REFRESH_BACKOFF_MS,
} from './grpc-js/resolver-adapter';

// Policies: names, builders, and the parsers the clients run (to check a config ahead of time).
export {
  ROUND_ROBIN_POLICY,
  parseRoundRobinConfig,
  type RoundRobinConfig,
} from './round-robin-config';
export {
  WEIGHTED_ROUND_ROBIN_POLICY,
  parseWeightedRoundRobinConfig,
  type WeightedRoundRobinConfig,
} from './weighted-round-robin-config';
export {
  TRAFFIC_SPLIT_POLICY,
  parseTrafficSplitConfig,
  type TrafficSplitConfig,
  type SubsetConfig,
  type RouteConfig,
  type RouteMatch,
  type HeaderMatch,
  type SplitTarget,
  type SubsetPolicy,
} from './traffic-split-config';
export { RoutePattern } from './route-regex';
/** Whether a call (method and headers) matches a traffic-split route, as the balancer decides it. */
export { routeMatches, type HeaderReader } from './route-match';
export {
  LEAST_REQUEST_POLICY,
  parseLeastRequestConfig,
  type LeastRequestConfig,
} from './least-request-config';
export {
  CONSISTENT_HASH_POLICY,
  HASH_KEY_HEADER,
  parseConsistentHashConfig,
  setHashKey,
  type ConsistentHashConfig,
  type HashAlgorithm,
  type HashFallback,
} from './consistent-hash-config';
/** The consistent-hash tables, pure (for tools and benchmarks that measure them). */
export { HashRing, MaglevTable, type HashTable, type HashEndpoint } from './hash-ring';
/** XXH64 of a key's UTF-8 bytes (seed 0): what a table's `slotOf` takes. */
export { xxh64String, type Hash64 } from './xxhash64';
export {
  parseOutlierDetection,
  parseHealthCheck,
  parseSlowStart,
  parseDurationMs,
  DEFAULT_FAILURE_STATUS_CODES,
  type ResilienceConfig,
  type OutlierDetectionConfig,
  type SuccessRateEjection,
  type FailurePercentageEjection,
  type HealthCheckConfig,
  type SlowStartConfig,
} from './resilience-config';
/** Zone-aware routing's decision, pure (a fleet simulation can use it as the balancer does). */
export {
  zoneShares,
  hintedForZone,
  parseZoneAware,
  UNKNOWN_ZONE,
  ZONE_ENV,
  DEFAULT_ZONE_MIN_CLUSTER_SIZE,
  type ZoneAwareConfig,
  type ZoneShares,
  type ZoneSharesInput,
  type ZoneRoutingMode,
} from './zone-aware';
export { parseSubsetting, type SubsettingConfig, type SubsettingMode } from './subsetting';
export {
  roundRobin,
  weightedRoundRobin,
  leastRequest,
  consistentHash,
  type ConsistentHashOptions,
  type ResilienceOptions,
  trafficSplit,
  serviceConfig,
  TrafficSplitBuilder,
  type LoadBalancingConfigJson,
  type RouteMatchInput,
  type HeaderMatchInput,
} from './config-builder';
export { checkServiceConfig, parseServiceConfigText, withDefaultPolicy } from './service-config';

// Observing the balancers.
export {
  LoadBalancerObserver,
  OBSERVER_OPTION,
  type EndpointSnapshot,
  type EndpointHealth,
  type EjectionEvent,
  type ReturnEvent,
  type HealthEvent,
  type PanicEvent,
  type ConfigEvent,
  type LimitEvent,
  type ServiceConfigState,
  type LoadBalancerObserverEvents,
} from './observer';

// ---------------------------------------------------------------------------
// For resolver authors (`@grpc-lb/resolver-*`): the grpc-free resolver
// contract, target parsing, endpoint normalisation, and retry backoff.
// ---------------------------------------------------------------------------
export type {
  EndpointResolver,
  Resolution,
  ResolutionSink,
  ResolvedEndpoint,
  ResolverContext,
  ResolverFactory,
  ServiceConfigJson,
  TargetUri,
} from './resolver-contract';
export { parseTargetUri, parseHostPort, type HostPort } from './target-uri';
export { parseStaticTarget, staticResolverFactory, type StaticTarget } from './static-target';
export { manualResolverFactory } from './manual-target';
export {
  COMPOSITE_SCHEME,
  parseCompositeTarget,
  compositeTarget,
  createCompositeResolverFactory,
  type CompositeTarget,
  type CompositeSource,
  type SchemeLookup,
} from './composite-target';
export { SOURCE_LABEL, FIRST_RESOLUTION_WAIT_MS } from './composite-resolver';
export {
  normalizeEndpoint,
  formatHostPort,
  sameEndpointSet,
  type NormalizedEndpoint,
} from './endpoint';
export { Backoff, type BackoffOptions } from './backoff';
export { redactSecrets, isSecretName, SECRET_WORDS } from './redact';
/** Reads a service config as the client reads one a resolver delivers (unknown fields dropped). */
export {
  readServiceConfig,
  type ServiceConfigCheck,
  type ServiceConfigOrigin,
} from './service-config';
/** The pick-info key under which our ConfigSelector hands the call's method to pickers. */
export { METHOD_PICK_KEY } from './grpc-js/config-selector';
/** grpc.health.v1 HealthCheckRequest/Response, encoded by hand (core has no protobuf dependency). */
export { encodeHealthRequest, decodeHealthResponse } from './grpc-js/health-watcher';
export { DEFAULT_MAX_CONNECTING } from './grpc-js/connection-pacer';
/** What the resolver adapter does with each list a resolver pushes (for benchmarks and tools). */
export { EndpointLists, type EndpointList } from './grpc-js/endpoint-list';
