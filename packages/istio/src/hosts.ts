/**
 * Host names as Istio reads them in VirtualService `hosts`, DestinationRule
 * `host` and route destinations, and as a client names a service.
 *
 * A Kubernetes Service can be written `hello2` (short: in the namespace of the
 * resource that writes it), `hello2.prod`, `hello2.prod.svc` or
 * `hello2.prod.svc.cluster.local` (any cluster domain); these all name the
 * same Service. Any other name (`api.example.com`) is compared as written,
 * case-insensitively. A VirtualService host may be a wildcard (`*`,
 * `*.prod.svc.cluster.local`).
 */

/** A name resolved in a namespace (which may be unknown). */
export type HostName =
  | {
      readonly kind: 'service';
      readonly service: string;
      /** Undefined when a short name was read with no namespace known. */
      readonly namespace: string | undefined;
    }
  | { readonly kind: 'external'; readonly name: string }
  | { readonly kind: 'wildcard'; readonly suffix: string };

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Reads a host name in `namespace` (the namespace of the resource or client that wrote it). */
export function parseHostName(text: string, namespace: string | undefined): HostName | undefined {
  const name = text.trim().toLowerCase().replace(/\.$/, '');
  if (name === '*') return { kind: 'wildcard', suffix: '' };
  if (name.startsWith('*.')) return { kind: 'wildcard', suffix: name.slice(1) };
  const labels = name.split('.');
  if (!labels.every((l) => LABEL.test(l))) return undefined;
  if (labels.length === 1) return { kind: 'service', service: labels[0]!, namespace };
  if (labels.length === 2 || labels[2] === 'svc') {
    return { kind: 'service', service: labels[0]!, namespace: labels[1]! };
  }
  return { kind: 'external', name };
}

/** The name shown in warnings: `hello2.prod.svc.cluster.local`, or as written. */
export function showHost(host: HostName): string {
  switch (host.kind) {
    case 'service':
      return host.namespace === undefined
        ? host.service
        : `${host.service}.${host.namespace}.svc.cluster.local`;
    case 'external':
      return host.name;
    case 'wildcard':
      return `*${host.suffix}`;
  }
}

/** Whether a resource's host (`pattern`) covers the client's host. */
export function hostCovers(pattern: HostName, host: HostName): boolean {
  if (pattern.kind === 'wildcard') {
    if (pattern.suffix === '') return true;
    if (host.kind === 'wildcard') return false;
    if (host.kind === 'external') return host.name.endsWith(pattern.suffix);
    // A Service whose namespace is unknown matches a suffix that could name its namespace.
    if (host.namespace === undefined) {
      return /^((\.[-a-z0-9]+)?\.svc\.cluster|\.cluster)?\.local$/.test(pattern.suffix);
    }
    return `${host.service}.${host.namespace}.svc.cluster.local`.endsWith(pattern.suffix);
  }
  if (pattern.kind === 'external' || host.kind !== pattern.kind) {
    return pattern.kind === 'external' && host.kind === 'external' && pattern.name === host.name;
  }
  if (host.kind !== 'service') return false;
  return (
    pattern.service === host.service &&
    (pattern.namespace === undefined ||
      host.namespace === undefined ||
      pattern.namespace === host.namespace)
  );
}
