import {
  ConfigError,
  register,
  type RegisterOptions,
  type Registration,
  type ResolverFactory,
} from '@grpc-lb/core';
import {
  createK8sApi,
  preloadClientNode,
  type K8sApi,
  type K8sConnectionOptions,
} from './k8s-client';
import { K8sEndpointResolver } from './k8s-resolver';
import { parseK8sTarget, type K8sEndpointSource, type K8sTarget } from './k8s-target';

export type K8sResolverFactory = ResolverFactory<K8sTarget>;

/** `k8s:` (ours, go-zero's) and `kubernetes:` (kuberesolver's) are both served by default. */
export const K8S_SCHEMES = ['k8s', 'kubernetes'] as const;

export interface K8sResolverFactoryOptions extends K8sConnectionOptions {
  /** The scheme to serve (default `k8s`; `registerK8s()` also installs `kubernetes`). */
  readonly scheme?: string;
  /**
   * Where endpoints are read from (default `auto`): `endpointslices`; `endpoints` (core/v1
   * Endpoints); `auto`, EndpointSlices, falling back to Endpoints when listing EndpointSlices
   * answers 404 (not served) or 403 (not allowed) while the Endpoints can be listed.
   */
  readonly source?: K8sEndpointSource;
  /** For tests: how the API client is made (default: `@kubernetes/client-node`). */
  readonly createApi?: (options: K8sConnectionOptions) => Promise<K8sApi>;
}

/**
 * A Kubernetes resolver factory for `register({ resolvers: [...] })`. The connection (kubeconfig,
 * in-cluster service account) is loaded when a channel first resolves, so a client can be created
 * before the cluster is reachable; a missing configuration is reported then as a `ConfigError`.
 * `@kubernetes/client-node` (an ES module, slow to import) starts loading here, so that the first
 * resolution does not wait for it.
 */
export function createK8sResolverFactory(
  options: K8sResolverFactoryOptions = {},
): K8sResolverFactory {
  const { scheme = 'k8s', createApi = createK8sApi, source = 'auto', ...connection } = options;
  if (!['auto', 'endpointslices', 'endpoints'].includes(source)) {
    throw new ConfigError(
      'source',
      `source must be 'auto', 'endpointslices' or 'endpoints', not ${JSON.stringify(source)}`,
      'k8s resolver',
    );
  }
  if (createApi === createK8sApi) preloadClientNode();
  return {
    scheme,
    parseTarget: parseK8sTarget,
    defaultAuthority(parsed) {
      return parsed.authority;
    },
    create(parsed) {
      return new K8sEndpointResolver(parsed, connection, createApi, source);
    },
  };
}

export type RegisterK8sOptions = RegisterOptions & Omit<K8sResolverFactoryOptions, 'scheme'>;

/**
 * `register()` with the Kubernetes resolver on `k8s:` and `kubernetes:`:
 * `registerK8s({ grpc })` in a pod, `registerK8s({ grpc, kubeconfig })` outside one.
 */
export function registerK8s(options: RegisterK8sOptions = {}): Registration {
  const { grpc, resolvers, replaceBuiltinSchemes, logger, zone, ...k8s } = options;
  return register({
    ...(grpc !== undefined ? { grpc } : {}),
    ...(logger !== undefined ? { logger } : {}),
    ...(zone !== undefined ? { zone } : {}),
    ...(replaceBuiltinSchemes !== undefined ? { replaceBuiltinSchemes } : {}),
    resolvers: [
      ...(resolvers ?? []),
      ...K8S_SCHEMES.map((scheme) => createK8sResolverFactory({ ...k8s, scheme })),
    ],
  });
}
