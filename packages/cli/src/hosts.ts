import { hostCovers, parseHostName, showHost, type HostName } from '@grpc-lb/istio';
import { UsageError } from './errors';

/**
 * Choosing the host to translate for when the operator gives none. Host names are compared the
 * way Istio reads them: a Kubernetes Service may be written `hello2` (in the namespace of the
 * resource that writes it), `hello2.prod`, `hello2.prod.svc` or `hello2.prod.svc.cluster.local`;
 * any other name is compared as written, ignoring case. Wildcard hosts (`*.example.com`) are never
 * chosen.
 */

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field(value: unknown, key: string): unknown {
  return isObject(value) ? value[key] : undefined;
}

/** A host as written by one resource, and what it names (Istio's reading, from `@grpc-lb/istio`). */
interface WrittenHost {
  readonly written: string;
  readonly host: HostName;
}

/** Wildcards and names Istio would not read are never candidates. */
function readHost(written: string, namespace: string | undefined): WrittenHost | undefined {
  const host = parseHostName(written, namespace);
  return host === undefined || host.kind === 'wildcard' ? undefined : { written, host };
}

function sameHost(a: WrittenHost, b: WrittenHost): boolean {
  return hostCovers(a.host, b.host);
}

/** What `defaultHost` reads: the resources found in the files. */
export interface HostedResources {
  readonly virtualServices: readonly object[];
  readonly destinationRules: readonly object[];
}

/** The hosts of each resource that names any: VirtualService `spec.hosts`, DestinationRule `spec.host`. */
function hostsPerResource(
  resources: HostedResources,
  namespace: string | undefined,
): WrittenHost[][] {
  const read = (resource: object, names: unknown[]) => {
    const ns = field(field(resource, 'metadata'), 'namespace');
    const resourceNamespace = typeof ns === 'string' ? ns : namespace;
    return names
      .filter((h): h is string => typeof h === 'string')
      .map((h) => readHost(h, resourceNamespace))
      .filter((h): h is WrittenHost => h !== undefined);
  };
  return [
    ...resources.virtualServices.map((vs) => {
      const hosts = field(field(vs, 'spec'), 'hosts');
      return read(vs, Array.isArray(hosts) ? hosts : []);
    }),
    ...resources.destinationRules.map((dr) => read(dr, [field(field(dr, 'spec'), 'host')])),
  ].filter((hosts) => hosts.length > 0);
}

/** Every host the resources name, as written, each once, in the order they first appear (VirtualServices first). */
export function namedHosts(resources: HostedResources): string[] {
  const all: unknown[] = [
    ...resources.virtualServices.flatMap((vs): unknown[] => {
      const hosts = field(field(vs, 'spec'), 'hosts');
      return Array.isArray(hosts) ? (hosts as unknown[]) : [];
    }),
    ...resources.destinationRules.map((dr) => field(field(dr, 'spec'), 'host')),
  ];
  return [...new Set(all.filter((h): h is string => typeof h === 'string'))];
}

/**
 * The host to translate for when `--host` is not given: the one host every resource that names
 * hosts has in common (a VirtualService for `hello2` and `hello2.example.com` with a
 * DestinationRule for `hello2.prod.svc.cluster.local`, both in `prod`, give `hello2` in `prod`).
 * It is returned as written when every resource writes it alike, else in full
 * (`hello2.prod.svc.cluster.local`). None or several in common is a UsageError of `command`
 * listing the hosts named, so the operator can pick one with `--host`. `namespace` is the
 * namespace of resources that name none.
 */
export function defaultHost(
  resources: HostedResources,
  command: string,
  namespace?: string,
): string {
  const perResource = hostsPerResource(resources, namespace);
  const named = namedHosts(resources);
  if (perResource.length === 0) {
    throw new UsageError(
      'the resources name no host (VirtualService spec.hosts, DestinationRule spec.host): give one with --host',
      command,
    );
  }
  const shared = perResource[0]!.filter((candidate) =>
    perResource.every((hosts) => hosts.some((h) => sameHost(h, candidate))),
  );
  const matches = perResource.flatMap((hosts) =>
    hosts.filter((h) => shared.some((s) => sameHost(h, s))),
  );
  if (shared.length === 0 || !matches.every((a) => matches.every((b) => sameHost(a, b)))) {
    throw new UsageError(
      `the resources name several hosts (${named.join(', ')}): choose one with --host`,
      command,
    );
  }
  if (matches.every((h) => h.written === matches[0]!.written)) return matches[0]!.written;
  const withNamespace = matches.find(
    (h) => h.host.kind === 'service' && h.host.namespace !== undefined,
  );
  return showHost((withNamespace ?? matches[0]!).host);
}
