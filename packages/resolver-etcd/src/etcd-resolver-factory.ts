import {
  register,
  type RegisterOptions,
  type Registration,
  type ResolverFactory,
} from '@grpc-lb/core';
import { resolveConnection, type EtcdConnectionOptions } from './etcd-options';
import {
  checkResolverEnvironment,
  EtcdEndpointResolver,
  type EtcdResolverEnvironment,
} from './etcd-resolver';
import { parseEtcdTarget, type EtcdTarget } from './etcd-target';

/** The factory of an etcd scheme, ready for core's `register({ resolvers })` and `validateTarget()`. */
export type EtcdResolverFactory = ResolverFactory<EtcdTarget>;

export const ETCD_SCHEME = 'etcd';

export interface EtcdResolverFactoryOptions extends EtcdConnectionOptions {
  /** The scheme to serve (default `etcd`). */
  readonly scheme?: string;
}

/**
 * An etcd resolver factory for `register({ resolvers: [...] })`. Its connection options apply to
 * every channel of the scheme; a target that names etcd members (`etcd://h1:2379,h2:2379/…`)
 * connects to those instead, with the same TLS and auth. Options are checked here (throws
 * `ConfigError`); `ETCD_ENDPOINTS` is read when each channel is created.
 */
export function createEtcdResolverFactory(
  options: EtcdResolverFactoryOptions = {},
  env: EtcdResolverEnvironment = {},
): EtcdResolverFactory {
  const { scheme = ETCD_SCHEME, ...connection } = options;
  const context = 'createEtcdResolverFactory';
  resolveConnection(connection, context);
  checkResolverEnvironment(env, context);
  return {
    scheme,
    parseTarget: parseEtcdTarget,
    defaultAuthority(parsed) {
      return parsed.authority;
    },
    create(parsed) {
      const settings = resolveConnection(connection, context, parsed.endpoints);
      return new EtcdEndpointResolver(parsed, settings, env);
    },
  };
}

/** Serves `etcd:` targets with etcd from `$ETCD_ENDPOINTS` (else 127.0.0.1:2379) or the target. */
export const etcdResolverFactory: EtcdResolverFactory = createEtcdResolverFactory();

export type RegisterEtcdOptions = RegisterOptions & EtcdResolverFactoryOptions;

/**
 * `register()` with the etcd resolver: `registerEtcd({ grpc, endpoints, tls, auth })`. Without
 * etcd options it installs the shared `etcdResolverFactory` (idempotent); with options, a factory
 * built from them (the latest registration serves new channels).
 */
export function registerEtcd(options: RegisterEtcdOptions = {}): Registration {
  const { grpc, resolvers, replaceBuiltinSchemes, logger, ...etcd } = options;
  const factory =
    Object.keys(etcd).length === 0 ? etcdResolverFactory : createEtcdResolverFactory(etcd);
  return register({
    ...(grpc !== undefined ? { grpc } : {}),
    ...(logger !== undefined ? { logger } : {}),
    ...(replaceBuiltinSchemes !== undefined ? { replaceBuiltinSchemes } : {}),
    resolvers: [...(resolvers ?? []), factory],
  });
}
