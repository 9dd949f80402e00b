import {
  register,
  type RegisterOptions,
  type Registration,
  type ResolverFactory,
} from '@grpc-lb/core';
import { resolveAgentSettings, type AgentOptions } from './consul-agent';
import { ConsulEndpointResolver, rateLimits, type ConsulResolverOptions } from './consul-resolver';
import { parseConsulTarget, type ConsulTarget } from './consul-target';

export type ConsulResolverFactory = ResolverFactory<ConsulTarget>;

export interface ConsulResolverFactoryOptions extends AgentOptions, ConsulResolverOptions {
  /** The scheme to serve (default `consul`). */
  readonly scheme?: string;
}

/**
 * A Consul resolver factory for `register({ resolvers: [...] })`. The agent address and token are
 * read when a channel is created (a malformed `address` or CONSUL_HTTP_ADDR is a `ConfigError`
 * from the client's constructor); nothing is contacted until the channel resolves.
 */
export function createConsulResolverFactory(
  options: ConsulResolverFactoryOptions = {},
): ConsulResolverFactory {
  const {
    scheme = 'consul',
    address,
    token,
    tokenFile,
    ca,
    cert,
    key,
    tlsServerName,
    insecureSkipVerify,
    ...resolverOptions
  } = options;
  // A bad rate limit is the caller's mistake: say so here, not at the first channel.
  rateLimits(resolverOptions);
  const given = { address, token, tokenFile, ca, cert, key, tlsServerName, insecureSkipVerify };
  const agentOptions = Object.fromEntries(
    Object.entries(given).filter(([, value]) => value !== undefined),
  ) as AgentOptions;
  return {
    scheme,
    parseTarget: parseConsulTarget,
    defaultAuthority(parsed) {
      return parsed.service;
    },
    create(parsed) {
      return new ConsulEndpointResolver(
        parsed,
        resolveAgentSettings(parsed.agent, agentOptions),
        resolverOptions,
      );
    },
  };
}

export type RegisterConsulOptions = RegisterOptions & ConsulResolverFactoryOptions;

/** `register()` with the Consul resolver on `consul:` (or `scheme`): `registerConsul({ grpc })`. */
export function registerConsul(options: RegisterConsulOptions = {}): Registration {
  const { grpc, resolvers, replaceBuiltinSchemes, logger, ...consul } = options;
  return register({
    ...(grpc !== undefined ? { grpc } : {}),
    ...(logger !== undefined ? { logger } : {}),
    ...(replaceBuiltinSchemes !== undefined ? { replaceBuiltinSchemes } : {}),
    resolvers: [...(resolvers ?? []), createConsulResolverFactory(consul)],
  });
}
