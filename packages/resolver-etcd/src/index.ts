export {
  ETCD_SCHEME,
  createEtcdResolverFactory,
  etcdResolverFactory,
  registerEtcd,
  type EtcdResolverFactory,
  type EtcdResolverFactoryOptions,
  type RegisterEtcdOptions,
} from './etcd-resolver-factory';
export { parseEtcdTarget, keyPrefixOf, DEFAULT_ETCD_PORT, type EtcdTarget } from './etcd-target';
export {
  DEFAULT_ETCD_ENDPOINT,
  DEFAULT_TIMEOUT_MS,
  ETCD_ENDPOINTS_ENV,
  type EtcdConnectionOptions,
  type EtcdTlsOptions,
  type EtcdAuthOptions,
  type EtcdConnectionSettings,
} from './etcd-options';
export {
  EtcdEndpointResolver,
  LIST_PAGE_SIZE,
  DEFAULT_WATCH_PROGRESS_INTERVAL_MS,
  SILENT_PROGRESS_INTERVALS,
  type EtcdResolverState,
  type EtcdResolverEnvironment,
} from './etcd-resolver';
export {
  parseEndpointValue,
  formatEndpointValue,
  metadataToEndpointFields,
  type ParsedValue,
  type MetadataFields,
  type EndpointMetadata,
} from './endpoint-value';
export {
  registerEndpoint,
  EtcdRegistration,
  DEFAULT_TTL_SECONDS,
  POD_IP_ENV,
  type EtcdRegistrationOptions,
  type EtcdRegistrationEvents,
} from './etcd-registration';
export { EtcdResolutionError, EtcdRegistrationError } from './errors';
