export {
  DNS_LB_SCHEME,
  createDnsResolverFactory,
  dnsLbResolverFactory,
  dnsResolverFactory,
  registerDns,
  type DnsResolverFactory,
  type DnsResolverFactoryOptions,
  type RegisterDnsOptions,
} from './dns-resolver-factory';
export { parseDnsTarget, DEFAULT_PORT, type DnsTarget, type DnsServerAddress } from './dns-target';
export {
  DEFAULT_DNS_OPTIONS,
  DNS_CHANNEL_OPTIONS,
  ABSOLUTE_MIN_INTERVAL_MS,
  type DnsOptions,
  type AddressFamily,
} from './dns-options';
export {
  parseResolvConf,
  searchCandidates,
  type ResolvConf,
  type ParsedResolvConf,
} from './resolv-conf';
export { DnsResolutionError } from './errors';
