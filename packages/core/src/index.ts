export { register, type RegisterOptions, type Registration } from './register';
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
export {
  GrpcLbError,
  TargetError,
  ConfigError,
  EndpointError,
  UnsupportedGrpcJsError,
  RegistrationError,
  type GrpcLbErrorCode,
} from './errors';
export { parseTargetUri, parseHostPort, type HostPort } from './target-uri';
export { parseStaticTarget, staticResolverFactory, type StaticTarget } from './static-target';
export { ManualEndpoints, manualResolverFactory } from './manual-target';
export { normalizeEndpoint, formatHostPort, type NormalizedEndpoint } from './endpoint';
export {
  ROUND_ROBIN_POLICY,
  checkServiceConfig,
  parseServiceConfigText,
  withDefaultPolicy,
} from './service-config';
export { validateTarget } from './validate';
export {
  WEIGHTED_ROUND_ROBIN_POLICY,
  TRAFFIC_SPLIT_POLICY,
  parseTrafficSplitConfig,
  parseWeightedRoundRobinConfig,
  type TrafficSplitConfig,
  type SubsetConfig,
  type RouteConfig,
  type RouteMatch,
  type HeaderMatch,
  type SplitTarget,
  type SubsetPolicy,
} from './traffic-split-config';
export {
  roundRobin,
  weightedRoundRobin,
  leastRequest,
  type ResilienceOptions,
  trafficSplit,
  serviceConfig,
  TrafficSplitBuilder,
  type LoadBalancingConfigJson,
  type RouteMatchInput,
} from './config-builder';
export { Backoff, type BackoffOptions } from './backoff';
export type { Logger } from './logger';
export { SUPPORTED_GRPC_JS_RANGE } from './grpc-js/runtime';
export {
  OPTION_MIN_REFRESH_INTERVAL_MS,
  OPTION_MAX_REFRESH_BACKOFF_MS,
} from './grpc-js/resolver-adapter';
export { METHOD_PICK_KEY } from './grpc-js/config-selector';
export {
  LEAST_REQUEST_POLICY,
  parseLeastRequestConfig,
  type LeastRequestConfig,
} from './least-request-config';
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
export {
  LoadBalancerObserver,
  OBSERVER_OPTION,
  type EndpointSnapshot,
  type EndpointHealth,
  type EjectionEvent,
  type ReturnEvent,
  type HealthEvent,
  type PanicEvent,
  type LoadBalancerObserverEvents,
} from './observer';
