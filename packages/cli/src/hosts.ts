import { UsageError } from './errors';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function specOf(resource: object): Record<string, unknown> {
  const spec = (resource as Record<string, unknown>)['spec'];
  return isObject(spec) ? spec : {};
}

/** The hosts a VirtualService names (`spec.hosts`). */
function virtualServiceHosts(resource: object): string[] {
  const hosts = specOf(resource)['hosts'];
  return Array.isArray(hosts) ? hosts.filter((h): h is string => typeof h === 'string') : [];
}

/** The host a DestinationRule is for (`spec.host`), as a list of zero or one. */
function destinationRuleHosts(resource: object): string[] {
  const host = specOf(resource)['host'];
  return typeof host === 'string' ? [host] : [];
}

/** What `defaultHost` reads: the resources found in the files. */
export interface HostedResources {
  readonly virtualServices: readonly object[];
  readonly destinationRules: readonly object[];
}

/** Every host the resources name, each once, in the order they first appear (VirtualServices first). */
export function namedHosts(resources: HostedResources): string[] {
  const all = [
    ...resources.virtualServices.flatMap(virtualServiceHosts),
    ...resources.destinationRules.flatMap(destinationRuleHosts),
  ];
  return [...new Set(all)];
}

/**
 * The host to translate for when `--host` is not given: the one host every resource that names
 * hosts has in common (a VirtualService for `hello2` and `hello2.example.com` with a
 * DestinationRule for `hello2` gives `hello2`). None or several in common is a UsageError of
 * `command` listing the hosts named, so the operator can pick one with `--host`.
 */
export function defaultHost(resources: HostedResources, command: string): string {
  const perResource = [
    ...resources.virtualServices.map(virtualServiceHosts),
    ...resources.destinationRules.map(destinationRuleHosts),
  ].filter((hosts) => hosts.length > 0);
  const named = namedHosts(resources);
  if (named.length === 0) {
    throw new UsageError(
      'the resources name no host (VirtualService spec.hosts, DestinationRule spec.host): give one with --host',
      command,
    );
  }
  const shared = named.filter((host) => perResource.every((hosts) => hosts.includes(host)));
  if (shared.length === 1) return shared[0]!;
  throw new UsageError(
    `the resources name several hosts (${named.join(', ')}): choose one with --host`,
    command,
  );
}
