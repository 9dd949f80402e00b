export {
  K8S_SCHEMES,
  createK8sResolverFactory,
  registerK8s,
  type K8sResolverFactory,
  type K8sResolverFactoryOptions,
  type RegisterK8sOptions,
} from './k8s-resolver-factory';
export {
  DEFAULT_CONFIG_KEY,
  MAX_POD_LABELS,
  parseK8sTarget,
  type K8sConfigMapRef,
  type K8sEndpointSource,
  type K8sTarget,
  type K8sPortSelector,
} from './k8s-target';
export {
  createK8sApi,
  SERVICE_ACCOUNT_DIR,
  SERVICE_NAME_LABEL,
  WATCH_TIMEOUT_SECONDS,
  type ConfigMapLike,
  type IstioKind,
  type IstioObjectLike,
  type IstioVersion,
  type K8sApi,
  type K8sConnectionOptions,
  type PodLike,
  type WatchEventType,
} from './k8s-client';
export {
  K8sEndpointResolver,
  WATCH_IDLE_TIMEOUT_MS,
  type K8sResource,
  describeFailure,
  type K8sResolverState,
} from './k8s-resolver';
export {
  endpointsFromSlices,
  servicePortName,
  type SliceLike,
  type ServiceLike,
  type SliceEndpoints,
} from './slices';
export { slicesFromEndpoints, type EndpointsLike, type EndpointAddressLike } from './endpoints';
export { K8sResolutionError } from './errors';
export { k8sNodeZone, NODE_NAME_ENV, ZONE_LABEL, type NodeZoneOptions } from './node-zone';
export { describeConfigMapFailure } from './config-map';
export { describePodFailure } from './pod-labels';
export { describeIstioFailure } from './istio';
