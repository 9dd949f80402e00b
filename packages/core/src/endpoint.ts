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

const EMPTY_LABELS: Readonly<Record<string, string>> = Object.freeze({});

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
  const key = formatHostPort(host, endpoint.port);
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

/** A string that is equal for two endpoint sets exactly when they are the same set (order ignored). */
export function endpointSetFingerprint(endpoints: readonly NormalizedEndpoint[]): string {
  return endpoints
    .map((e) =>
      JSON.stringify([
        e.key,
        e.weight,
        e.zone ?? null,
        e.labels,
        ...(e.forZones ? [e.forZones] : []),
      ]),
    )
    .sort()
    .join('\n');
}
