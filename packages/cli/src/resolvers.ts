import {
  createCompositeResolverFactory,
  staticResolverFactory,
  type ResolverFactory,
  type SchemeLookup,
} from '@grpc-lb/core';
import { createConsulResolverFactory } from '@grpc-lb/resolver-consul';
import { createDnsResolverFactory } from '@grpc-lb/resolver-dns';
import { createEtcdResolverFactory } from '@grpc-lb/resolver-etcd';
import { createK8sResolverFactory } from '@grpc-lb/resolver-k8s';

import { consulOptions, type ConsulFlags } from './consul-settings';
import { etcdConnectionOptions, type EtcdFlags } from './etcd-settings';

/**
 * Where the registries are, as the command line gives them. Anything left out falls back to what
 * the resolver packages read themselves, as in an application: `KUBECONFIG` (else in-cluster, else
 * `~/.kube/config`), `CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN(_FILE)` and the `CONSUL_*` TLS
 * variables, `ETCD_ENDPOINTS`; the etcd settings also fall back to the variables etcdctl reads
 * (`ETCDCTL_ENDPOINTS`, `ETCDCTL_CACERT`, `ETCDCTL_CERT`, `ETCDCTL_KEY`, `ETCDCTL_USER`,
 * `ETCDCTL_PASSWORD`; see `etcdConnectionOptions`).
 */
export interface RegistryOptions extends EtcdFlags, ConsulFlags {
  readonly kubeconfig?: string;
  readonly kubeContext?: string;
}

/**
 * The schemes an application gets from `register()` of core and the four resolver packages
 * (`static:`, `composite:`, `dns+lb:`, `k8s:`/`kubernetes:`, `etcd:`, `consul:`), plus `dns:`
 * served by the DNS resolver package (as with `replaceBuiltinDns`). Each factory is built the
 * first time its scheme is asked for, so a target that names no Kubernetes never loads its client
 * (and a certificate or password file is only read for a target that reads its registry).
 */
export function createSchemeLookup(
  options: RegistryOptions,
  env: NodeJS.ProcessEnv = process.env,
): SchemeLookup {
  const builders: Record<string, () => ResolverFactory> = {
    static: () => staticResolverFactory,
    'dns+lb': () => createDnsResolverFactory(),
    dns: () => createDnsResolverFactory({ scheme: 'dns' }),
    k8s: () => createK8sResolverFactory({ scheme: 'k8s', ...k8sOptions(options) }),
    kubernetes: () => createK8sResolverFactory({ scheme: 'kubernetes', ...k8sOptions(options) }),
    etcd: () => createEtcdResolverFactory(etcdConnectionOptions(options, env)),
    consul: () => createConsulResolverFactory(consulOptions(options)),
  };
  const built = new Map<string, ResolverFactory>();
  const lookup: SchemeLookup = {
    get(scheme) {
      const cached = built.get(scheme);
      if (cached !== undefined) return cached;
      const build = scheme === 'composite' ? () => composite : builders[scheme];
      if (build === undefined) return undefined;
      const factory = build();
      built.set(scheme, factory);
      return factory;
    },
    schemes: () => ['composite', ...Object.keys(builders)],
  };
  const composite = createCompositeResolverFactory(lookup);
  return lookup;
}

function k8sOptions(options: RegistryOptions): { kubeconfig?: string; context?: string } {
  return {
    ...(options.kubeconfig === undefined ? {} : { kubeconfig: options.kubeconfig }),
    ...(options.kubeContext === undefined ? {} : { context: options.kubeContext }),
  };
}
