import { isIP } from 'node:net';
import { EndpointError } from './errors';
import type { ResolvedEndpoint } from './resolver-contract';

/** An endpoint after validation: weight defaulted, labels copied and frozen. */
export interface NormalizedEndpoint {
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly zone: string | undefined;
  /** Kubernetes `hints.forZones`: the zones this endpoint should serve; absent when not hinted. */
  readonly forZones?: readonly string[];
  /** `host:port`, with IPv6 in brackets: the identity used for diffing. */
  readonly key: string;
}

export const MAX_WEIGHT = 1_000_000;

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;

export function isValidHost(host: string): boolean {
  return isIP(host) !== 0 || HOSTNAME.test(host);
}

export function isValidPort(port: unknown): port is number {
  return typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;
}

export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `formatHostPort` for a host already validated: only an IPv6 address has a colon. */
function formatValidHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The labels of an endpoint listed without any. */
export const EMPTY_LABELS: Readonly<Record<string, string>> = Object.freeze({});

/** Validates one endpoint a resolver pushed; throws `EndpointError` naming the problem. */
export function normalizeEndpoint(input: unknown): NormalizedEndpoint {
  if (typeof input !== 'object' || input === null) {
    throw new EndpointError(
      `endpoint must be an object, got ${input === null ? 'null' : typeof input}`,
    );
  }
  const endpoint = input as ResolvedEndpoint;
  let host: unknown = endpoint.host;
  if (typeof host === 'string' && host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1);
  }
  if (typeof host !== 'string' || !isValidHost(host)) {
    throw new EndpointError(
      `endpoint host ${JSON.stringify(endpoint.host)} is not an IP address or host name`,
    );
  }
  if (!isValidPort(endpoint.port)) {
    throw new EndpointError(
      `endpoint ${host} has port ${JSON.stringify(endpoint.port)}: expected an integer 1-65535`,
    );
  }
  const key = formatValidHostPort(host, endpoint.port);
  let weight = 1;
  if (endpoint.weight !== undefined) {
    if (
      typeof endpoint.weight !== 'number' ||
      !Number.isFinite(endpoint.weight) ||
      endpoint.weight < 0 ||
      endpoint.weight > MAX_WEIGHT
    ) {
      throw new EndpointError(
        `endpoint ${key} has weight ${JSON.stringify(endpoint.weight)}: expected a number 0-${MAX_WEIGHT}`,
      );
    }
    weight = endpoint.weight;
  }
  let labels = EMPTY_LABELS;
  if (endpoint.labels !== undefined) {
    if (typeof endpoint.labels !== 'object' || endpoint.labels === null) {
      throw new EndpointError(`endpoint ${key} has labels that are not an object`);
    }
    const copy: Record<string, string> = {};
    for (const name of Object.keys(endpoint.labels).sort()) {
      if (name === '__proto__')
        throw new EndpointError(`endpoint ${key} has a label named "__proto__"`);
      const value = endpoint.labels[name];
      if (typeof value !== 'string') {
        throw new EndpointError(`endpoint ${key} has label "${name}" that is not a string`);
      }
      copy[name] = value;
    }
    labels = Object.freeze(copy);
  }
  if (endpoint.zone !== undefined && typeof endpoint.zone !== 'string') {
    throw new EndpointError(`endpoint ${key} has a zone that is not a string`);
  }
  let forZones: readonly string[] | undefined;
  if (endpoint.forZones !== undefined) {
    if (
      !Array.isArray(endpoint.forZones) ||
      !endpoint.forZones.every((z) => typeof z === 'string' && z.length > 0)
    ) {
      throw new EndpointError(`endpoint ${key} has forZones that is not an array of zone names`);
    }
    forZones = Object.freeze([...(endpoint.forZones as readonly string[])]);
  }
  return Object.freeze({
    host,
    port: endpoint.port,
    weight,
    labels,
    zone: endpoint.zone,
    ...(forZones ? { forZones } : {}),
    key,
  });
}

function sameLabels(
  a: Readonly<Record<string, string>>,
  b: Readonly<Record<string, string>>,
): boolean {
  if (a === b) return true;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(b, key) || a[key] !== b[key]) return false;
  }
  return true;
}

function sameZones(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  return a.every((zone, i) => zone === b[i]);
}

/** Whether two endpoints with the same key carry the same weight, zone, labels and zone hints. */
export function sameEndpoint(a: NormalizedEndpoint, b: NormalizedEndpoint): boolean {
  return (
    a === b ||
    (a.weight === b.weight &&
      a.zone === b.zone &&
      sameLabels(a.labels, b.labels) &&
      sameZones(a.forZones, b.forZones))
  );
}

/**
 * Whether two endpoint sets are the same (order ignored): the same keys, each with the same
 * weight, zone, labels and zone hints. Keys are unique within a set (the adapter drops repeats). O(n), no
 * strings built: a 10,000-endpoint update that changed nothing costs a map lookup per endpoint.
 */
export function sameEndpointSet(
  a: readonly NormalizedEndpoint[],
  b: readonly NormalizedEndpoint[],
): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  const byKey = new Map<string, NormalizedEndpoint>();
  for (const endpoint of a) byKey.set(endpoint.key, endpoint);
  for (const endpoint of b) {
    const other = byKey.get(endpoint.key);
    if (other === undefined || !sameEndpoint(other, endpoint)) return false;
  }
  return true;
}
