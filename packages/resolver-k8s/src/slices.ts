import { isIPv4, isIPv6 } from 'node:net';
import type { ResolvedEndpoint } from '@grpc-lb/core';
import type { K8sPortSelector } from './k8s-target';

/** The EndpointSlice fields read here (a subset of discovery.k8s.io/v1 EndpointSlice). */
export interface SliceLike {
  readonly metadata?: {
    readonly name?: string;
    readonly resourceVersion?: string;
    readonly labels?: Readonly<Record<string, string>>;
  };
  readonly addressType?: string;
  readonly endpoints?: readonly {
    readonly addresses?: readonly string[];
    readonly conditions?: {
      readonly ready?: boolean | null;
      readonly serving?: boolean | null;
      readonly terminating?: boolean | null;
    };
    readonly zone?: string;
    readonly nodeName?: string;
    readonly targetRef?: { readonly kind?: string; readonly name?: string };
    /** Topology hints (topology-aware routing, `trafficDistribution`): the zones it should serve. */
    readonly hints?: { readonly forZones?: readonly { readonly name?: string }[] | null } | null;
  }[];
  readonly ports?: readonly {
    readonly name?: string;
    readonly port?: number;
    readonly protocol?: string;
  }[];
}

/** The Service fields read here: its ports, to map a Service port number to the pods' port. */
export interface ServiceLike {
  readonly spec?: {
    readonly ports?: readonly {
      readonly name?: string;
      readonly port?: number;
      readonly protocol?: string;
    }[];
  };
}

export interface SliceEndpoints {
  readonly endpoints: ResolvedEndpoint[];
  /** One line per skipped slice or address, for the sink's `warn`. */
  readonly warnings: string[];
  /** `3 ready endpoints from 2 EndpointSlices` — for error notes. */
  readonly note: string;
  /** True when only serving-but-terminating endpoints were left and are used. */
  readonly usingTerminating: boolean;
}

/**
 * The port name a selector means, given the Service (needed only for a numeric Service port):
 * EndpointSlice ports carry the Service port's name and the pods' port number.
 */
export function servicePortName(
  selector: K8sPortSelector,
  service: ServiceLike | undefined,
): { name: string } | { error: string } | undefined {
  if (selector.kind === 'name') return { name: selector.value };
  const ports = (service?.spec?.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP');
  if (selector.kind === 'only') {
    if (service === undefined) return undefined;
    if (ports.length === 1) return { name: ports[0]!.name ?? '' };
    return {
      error:
        ports.length === 0
          ? 'the Service has no TCP port'
          : `the Service has ${ports.length} TCP ports (${ports.map((p) => p.name ?? p.port).join(', ')}): name one in the target`,
    };
  }
  if (service === undefined) return undefined;
  const match = ports.find((p) => p.port === selector.value);
  if (!match) {
    return {
      error: `the Service has no TCP port ${selector.value} (it has ${ports.map((p) => `${p.name ?? '(unnamed)'}=${p.port}`).join(', ') || 'none'})`,
    };
  }
  return { name: match.name ?? '' };
}

function hostOf(address: string, addressType: string): string | undefined {
  if (addressType === 'IPv4') return isIPv4(address) ? address : undefined;
  if (addressType === 'IPv6') return isIPv6(address) ? address : undefined;
  return undefined;
}

/**
 * Label prefixes Kubernetes itself writes on EndpointSlices and Endpoints
 * (`kubernetes.io/service-name`, `endpointslice.kubernetes.io/managed-by`,
 * `service.kubernetes.io/headless`, …): not copied to the endpoints.
 */
const RESERVED_LABEL_PREFIXES = [
  'kubernetes.io/',
  'k8s.io/',
  'endpointslice.kubernetes.io/',
  'endpoints.kubernetes.io/',
  'service.kubernetes.io/',
];

/** A slice's own labels, as its endpoints carry them (the ones Kubernetes reserves left out). */
export function endpointLabelsOf(
  labels: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  const copied: Record<string, string> = {};
  for (const [key, value] of Object.entries(labels ?? {})) {
    if (typeof value !== 'string') continue;
    if (RESERVED_LABEL_PREFIXES.some((prefix) => key.startsWith(prefix))) continue;
    if (key === 'node' || key === 'pod') continue;
    copied[key] = value;
  }
  return copied;
}

/** The zone names of an endpoint's `hints.forZones` (entries without a name skipped). */
function hintedZones(
  hints: { readonly forZones?: readonly { readonly name?: string }[] | null } | null | undefined,
): string[] {
  const zones: string[] = [];
  for (const zone of hints?.forZones ?? []) {
    if (typeof zone?.name === 'string' && zone.name.length > 0) zones.push(zone.name);
  }
  return zones;
}

/** What the slices are called in warnings and notes. */
const SLICE_NOUN = { one: 'EndpointSlice', many: 'EndpointSlices' } as const;

/**
 * The endpoints of every slice, merged: one endpoint per address:port (the same address can sit
 * in two slices while they churn). Ready endpoints (a missing `ready` counts as ready, as the API
 * says); when none is ready, the serving-but-terminating ones (as kube-proxy does), so a rollout
 * that drains every old pod before the new ones are ready still has somewhere to send calls.
 *
 * `portName` is the port's name when known; `undefined` (a numeric or "only" port without the
 * Service) falls back to the slice's only TCP port, or a port whose number equals the selector's.
 *
 * Each endpoint is labelled with the slice's own labels (but those Kubernetes reserves, see
 * `endpointLabelsOf`), its `node` (nodeName) and its `pod` (targetRef), and carries its `zone` and
 * its `hints.forZones` (as `forZones`, for zone-aware routing).
 */
export function endpointsFromSlices(
  slices: Iterable<SliceLike>,
  selector: K8sPortSelector,
  portName: string | undefined,
  noun: { readonly one: string; readonly many: string } = SLICE_NOUN,
): SliceEndpoints {
  const ready = new Map<string, ResolvedEndpoint>();
  const terminating = new Map<string, ResolvedEndpoint>();
  const warnings: string[] = [];
  let sliceCount = 0;
  for (const slice of slices) {
    sliceCount++;
    const name = slice.metadata?.name ?? '(unnamed)';
    const addressType = slice.addressType ?? '';
    if (addressType !== 'IPv4' && addressType !== 'IPv6') {
      warnings.push(
        `${noun.one} ${name}: addressType ${addressType || '(none)'} is not IPv4 or IPv6; skipped`,
      );
      continue;
    }
    const tcpPorts = (slice.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP');
    const sliceLabels = endpointLabelsOf(slice.metadata?.labels);
    let port: number | undefined;
    if (portName !== undefined) {
      port = tcpPorts.find((p) => (p.name ?? '') === portName)?.port;
    } else if (selector.kind === 'number') {
      port = tcpPorts.find((p) => p.port === selector.value)?.port;
    } else if (tcpPorts.length === 1) {
      port = tcpPorts[0]!.port;
    }
    if (port === undefined) {
      // A slice with no ports at all is a Service without endpoints yet: not worth a warning.
      if (tcpPorts.length > 0 && (slice.endpoints?.length ?? 0) > 0) {
        const wanted =
          portName !== undefined
            ? `port "${portName}"`
            : selector.kind === 'number'
              ? `port ${selector.value}`
              : 'single TCP port';
        warnings.push(
          `${noun.one} ${name}: no ${wanted} among ${tcpPorts.map((p) => `${p.name || '(unnamed)'}=${p.port}`).join(', ')}; skipped`,
        );
      }
      continue;
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      warnings.push(`${noun.one} ${name}: port ${String(port)} is out of range; skipped`);
      continue;
    }
    for (const endpoint of slice.endpoints ?? []) {
      const conditions = endpoint.conditions ?? {};
      const isReady = conditions.ready !== false;
      const isServing = conditions.serving ?? isReady;
      const target = isReady ? ready : isServing ? terminating : undefined;
      if (!target) continue;
      for (const address of endpoint.addresses ?? []) {
        const host = hostOf(address, addressType);
        if (host === undefined) {
          warnings.push(
            `${noun.one} ${name}: "${address}" is not an ${addressType} address; skipped`,
          );
          continue;
        }
        const labels: Record<string, string> = { ...sliceLabels };
        const forZones = hintedZones(endpoint.hints);
        if (endpoint.nodeName) labels['node'] = endpoint.nodeName;
        if (endpoint.targetRef?.kind === 'Pod' && endpoint.targetRef.name) {
          labels['pod'] = endpoint.targetRef.name;
        }
        target.set(`${host}|${port}`, {
          host,
          port,
          ...(endpoint.zone ? { zone: endpoint.zone } : {}),
          ...(forZones.length > 0 ? { forZones } : {}),
          ...(Object.keys(labels).length > 0 ? { labels } : {}),
        });
      }
    }
  }
  const usingTerminating = ready.size === 0 && terminating.size > 0;
  const chosen = usingTerminating ? terminating : ready;
  const endpoints = [...chosen.values()].sort((a, b) =>
    a.host === b.host ? a.port - b.port : a.host < b.host ? -1 : 1,
  );
  const kind = usingTerminating ? 'serving (terminating)' : 'ready';
  return {
    endpoints,
    warnings,
    usingTerminating,
    note: `${endpoints.length} ${kind} endpoint${endpoints.length === 1 ? '' : 's'} from ${sliceCount} ${sliceCount === 1 ? noun.one : noun.many}`,
  };
}
