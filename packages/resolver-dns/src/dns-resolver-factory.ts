import {
  register,
  type RegisterOptions,
  type Registration,
  type ResolverFactory,
} from '@grpc-lb/core';
import { checkOptions, mergeSettings, optionsFromChannel, type DnsOptions } from './dns-options';
import { DnsEndpointResolver } from './dns-resolver';
import { parseDnsTarget, type DnsTarget } from './dns-target';
import { DEFAULT_HOSTS_PATH } from './hosts-file';
import { DEFAULT_RESOLV_CONF_PATH } from './resolv-conf';

/** The factory of a DNS scheme, ready for core's `register({ resolvers })` and `validateTarget()`. */
export type DnsResolverFactory = ResolverFactory<DnsTarget>;

/** Our own scheme, registered by default: grpc-js's `dns:` stays grpc-js's. */
export const DNS_LB_SCHEME = 'dns+lb';

export interface DnsResolverFactoryOptions extends DnsOptions {
  /** The scheme to serve (default `dns+lb`). `dns` replaces grpc-js's resolver: see `registerDns`. */
  readonly scheme?: string;
  /** Where nameservers, search domains and ndots come from (default `/etc/resolv.conf`). */
  readonly resolvConfPath?: string;
  /** hosts(5) file consulted before DNS (default `/etc/hosts`); `false` to skip it. */
  readonly hostsPath?: string | false;
}

/**
 * A DNS resolver factory for `register({ resolvers: [...] })`. Options given here are the
 * defaults of every channel using the scheme; channel options (`grpc-lb.dns.*`) and the target's
 * query parameters override them.
 */
export function createDnsResolverFactory(
  options: DnsResolverFactoryOptions = {},
): DnsResolverFactory {
  const { scheme = DNS_LB_SCHEME, resolvConfPath, hostsPath, ...rest } = options;
  const defaults = checkOptions(rest, 'createDnsResolverFactory');
  const env = {
    resolvConfPath: resolvConfPath ?? DEFAULT_RESOLV_CONF_PATH,
    hostsPath: hostsPath === false ? undefined : (hostsPath ?? DEFAULT_HOSTS_PATH),
  };
  const factory: ResolverFactory<DnsTarget> = {
    scheme,
    parseTarget: parseDnsTarget,
    defaultAuthority(parsed) {
      return parsed.authority;
    },
    create(parsed, context) {
      const settings = mergeSettings(
        defaults,
        optionsFromChannel(context.channelOptions),
        parsed.options,
      );
      return new DnsEndpointResolver(parsed, settings, env);
    },
  };
  return factory;
}

/** Serves `dns+lb:` targets; registered by `registerDns()`. */
export const dnsLbResolverFactory: DnsResolverFactory = createDnsResolverFactory();

/**
 * Serves `dns:` targets in place of grpc-js's own resolver, for every channel in the process.
 * Only with `register({ resolvers: [dnsResolverFactory], replaceBuiltinSchemes: ['dns'] })` or
 * `registerDns({ replaceBuiltinDns: true })`.
 */
export const dnsResolverFactory: DnsResolverFactory = createDnsResolverFactory({
  scheme: 'dns',
});

export interface RegisterDnsOptions extends RegisterOptions {
  /**
   * Also take over grpc-js's `dns:` scheme (and so targets with no scheme) for every channel in
   * the process (default false).
   */
  readonly replaceBuiltinDns?: boolean;
}

/**
 * `register()` with the DNS resolver: `dns+lb:` always, `dns:` too with `replaceBuiltinDns`.
 * Idempotent, like `register()`.
 */
export function registerDns(options: RegisterDnsOptions = {}): Registration {
  const { replaceBuiltinDns = false, ...rest } = options;
  const ours = replaceBuiltinDns
    ? [dnsLbResolverFactory, dnsResolverFactory]
    : [dnsLbResolverFactory];
  return register({
    ...rest,
    resolvers: [...(rest.resolvers ?? []), ...ours],
    replaceBuiltinSchemes: [
      ...(rest.replaceBuiltinSchemes ?? []),
      ...(replaceBuiltinDns ? ['dns'] : []),
    ],
  });
}
