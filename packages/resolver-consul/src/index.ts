export {
  createConsulResolverFactory,
  registerConsul,
  type ConsulResolverFactory,
  type ConsulResolverFactoryOptions,
  type RegisterConsulOptions,
} from './consul-resolver-factory';
export {
  parseConsulTarget,
  redactTarget,
  DEFAULT_WAIT_MS,
  MAX_WAIT_MS,
  type ConsulTarget,
} from './consul-target';
export {
  ADDRESS_ENV,
  CACERT_ENV,
  CAPATH_ENV,
  CLIENT_CERT_ENV,
  CLIENT_KEY_ENV,
  DEFAULT_AGENT,
  SSL_ENV,
  SSL_VERIFY_ENV,
  TLS_SERVER_NAME_ENV,
  TOKEN_ENV,
  TOKEN_FILE_ENV,
  parseAgentAddress,
  resolveAgentSettings,
  type AgentAddress,
  type AgentOptions,
  type AgentSettings,
  type AgentTls,
  type AgentResponse,
  type TokenSource,
} from './consul-agent';
export {
  ConsulEndpointResolver,
  DEFAULT_MAX_CHURN_BACKOFF_MS,
  DEFAULT_QUERY_BURST,
  DEFAULT_QUERY_REFILL_MS,
  keyReadRules,
  readKvEntry,
  type ConsulResolverOptions,
  type ConsulTransport,
  type ConsulResolverState,
} from './consul-resolver';
export {
  NODE_LABEL,
  SERVICE_ID_LABEL,
  TAG_LABEL_PREFIX,
  ZONE_META,
  aggregateStatus,
  endpointsFromHealth,
  healthQuery,
  nextIndex,
  type ConvertedEntries,
  type HealthEntry,
} from './health-entries';
export {
  ConsulRegistration,
  DEFAULT_ANTI_ENTROPY_INTERVAL_MS,
  POD_IP_ENV,
  registerService,
  registrationBody,
  type AgentCall,
  type ConsulCheck,
  type ConsulRegistrationEvents,
  type ConsulRegistrationOptions,
  type Duration,
} from './consul-registration';
export { type BlockingQueryState } from './blocking-query';
export { parseGoDuration } from './duration';
export { ConsulRegistrationError, ConsulResolutionError } from './errors';
