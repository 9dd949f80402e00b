/**
 * Zone-aware routing, the decision part (pure: no grpc-js, no clock, no
 * randomness). Envoy's zone-aware load balancing, for a client that knows its
 * own zone:
 *
 * - `up[z]`: zone z's share of the endpoints in rotation; `cl[z]`: the client
 *   fleet's share in zone z (given in the config, or by default assumed to be
 *   spread like the service's listed endpoints).
 * - If `up[local] >= cl[local]`, every call stays in the local zone: the
 *   local endpoints can carry the local clients' share of the load.
 * - Otherwise the local zone takes `up[local] / cl[local]` of the calls (what
 *   it can carry) and the rest spills to the other zones in proportion to
 *   their residual capacity `max(0, up[z] - cl[z])`.
 * - Off (calls spread over every zone as without it) when fewer than
 *   `minClusterSize` endpoints are in rotation, when no endpoint of the
 *   local zone is in rotation, and when the client fleet has no share in the
 *   local zone.
 *
 * When every zone's clients do this, each zone receives exactly its share
 * of the endpoints in rotation: the load per endpoint stays even.
 *
 * Endpoints without a zone are counted in a zone of their own,
 * `UNKNOWN_ZONE` (as Envoy puts them in a locality with no name): never
 * local, and — having no clients — all their capacity is residual.
 *
 *     "zoneAware": {
 *       "localZone": "eu-west-1a",   // default: env GRPC_LB_ZONE
 *       "minClusterSize": 6,         // Envoy's default
 *       "routingEnabled": 100,       // % of calls routed by zone (Envoy's routing_enabled)
 *       "clientShares": { "eu-west-1a": 3, "eu-west-1b": 1 },  // default: like the endpoints
 *       "kubernetesHints": true }    // honour EndpointSlice hints.forZones
 */
import { ConfigError, describe } from './errors';
import {
  Fields,
  integer,
  isJsonObject,
  percentage,
  type ParseContext,
  STRICT,
} from './json-fields';

/** The zone endpoints without one are counted in. */
export const UNKNOWN_ZONE = '';

/** Envoy's `min_cluster_size` default. */
export const DEFAULT_ZONE_MIN_CLUSTER_SIZE = 6;

/** The environment variable that names the client's zone when the config does not. */
export const ZONE_ENV = 'GRPC_LB_ZONE';

export interface ZoneAwareConfig {
  /** The client's zone; undefined: from `GRPC_LB_ZONE`. */
  readonly localZone: string | undefined;
  /** Below this many endpoints in rotation, calls go to every zone. */
  readonly minClusterSize: number;
  /** The percentage of calls routed by zone (the others go to every zone). */
  readonly routingEnabledPercent: number;
  /** The client fleet per zone (relative numbers); undefined: spread like the listed endpoints. */
  readonly clientShares: ReadonlyMap<string, number> | undefined;
  /** Honour Kubernetes `hints.forZones` when every listed endpoint has some. */
  readonly kubernetesHints: boolean;
}

export const ZONE_AWARE_FIELDS = [
  'localZone',
  'minClusterSize',
  'routingEnabled',
  'clientShares',
  'kubernetesHints',
] as const;

function zoneName(value: unknown, path: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 253) {
    throw new ConfigError(path, `expected a zone name (1-253 characters), got ${describe(value)}`);
  }
  return value;
}

function parseClientShares(value: unknown, path: string): ReadonlyMap<string, number> {
  if (!isJsonObject(value)) {
    throw new ConfigError(path, `expected an object of zone: share, got ${describe(value)}`);
  }
  const shares = new Map<string, number>();
  let total = 0;
  for (const [zone, share] of Object.entries(value)) {
    const at = `${path}.${zone}`;
    if (zone.length === 0) throw new ConfigError(at, 'a zone name cannot be empty');
    if (typeof share !== 'number' || !Number.isFinite(share) || share < 0) {
      throw new ConfigError(at, `expected a number 0 or above, got ${describe(share)}`);
    }
    if (share > 0) shares.set(zone, share);
    total += share;
  }
  if (total <= 0) throw new ConfigError(path, 'needs at least one zone with a share above 0');
  return shares;
}

export function parseZoneAware(
  value: unknown,
  field: string,
  ctx: ParseContext = STRICT,
): ZoneAwareConfig {
  const f = Fields.of(value, field, ctx);
  f.only(ZONE_AWARE_FIELDS);
  const kubernetesHints = f.read('kubernetesHints', (v, at) => {
    if (typeof v !== 'boolean')
      throw new ConfigError(at, `expected true or false, got ${describe(v)}`);
    return v;
  });
  return {
    localZone: f.read('localZone', zoneName),
    minClusterSize:
      f.read('minClusterSize', (v, at) => integer(v, at, 0, 1_000_000)) ??
      DEFAULT_ZONE_MIN_CLUSTER_SIZE,
    routingEnabledPercent: f.read('routingEnabled', percentage) ?? 100,
    clientShares: f.read('clientShares', parseClientShares),
    kubernetesHints: kubernetesHints ?? true,
  };
}

export interface ZoneSharesInput {
  readonly localZone: string;
  /** Endpoints in rotation per zone (`UNKNOWN_ZONE` for those without one). */
  readonly inRotation: ReadonlyMap<string, number>;
  /** The client fleet per zone, any scale (counts or shares). */
  readonly clients: ReadonlyMap<string, number>;
  readonly minClusterSize: number;
}

export type ZoneRoutingMode =
  /** Zone-aware routing does not apply: calls spread over every zone. */
  | 'all'
  /** Every call stays in the local zone. */
  | 'local'
  /** Part of the calls stays local, the rest spills by residual capacity. */
  | 'spill';

export interface ZoneShares {
  readonly mode: ZoneRoutingMode;
  /** Why `all` (for traces); '' otherwise. */
  readonly reason: string;
  /**
   * The probability of a call going to each zone (only zones above 0; they
   * sum to 1). For `all`, each zone's share of the endpoints in rotation.
   */
  readonly shares: ReadonlyMap<string, number>;
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

function proportional(counts: ReadonlyMap<string, number>, total: number): Map<string, number> {
  const shares = new Map<string, number>();
  if (total <= 0) return shares;
  for (const [zone, count] of counts) if (count > 0) shares.set(zone, count / total);
  return shares;
}

/** Where a client in `localZone` sends its calls, by Envoy's zone-aware algorithm (see above). */
export function zoneShares(input: ZoneSharesInput): ZoneShares {
  const { localZone, inRotation, clients, minClusterSize } = input;
  const total = sum(inRotation.values());
  const all = (reason: string): ZoneShares => ({
    mode: 'all',
    reason,
    shares: proportional(inRotation, total),
  });
  if (total < minClusterSize || total === 0) {
    return all(`${total} endpoints in rotation, fewer than minClusterSize ${minClusterSize}`);
  }
  const localCount = inRotation.get(localZone) ?? 0;
  if (localCount === 0) return all(`no endpoint of zone ${localZone} in rotation`);
  const clientTotal = sum(clients.values());
  const clientLocal = clients.get(localZone) ?? 0;
  if (clientTotal <= 0 || clientLocal <= 0) {
    return all(`the client fleet has no share in zone ${localZone}`);
  }
  const upLocal = localCount / total;
  const clLocal = clientLocal / clientTotal;
  if (upLocal >= clLocal) {
    return { mode: 'local', reason: '', shares: new Map([[localZone, 1]]) };
  }
  const localFraction = upLocal / clLocal;
  const residual = new Map<string, number>();
  for (const [zone, count] of inRotation) {
    if (zone === localZone || count <= 0) continue;
    const spare = count / total - (clients.get(zone) ?? 0) / clientTotal;
    if (spare > 0) residual.set(zone, spare);
  }
  let residualTotal = sum(residual.values());
  if (residualTotal <= 0) {
    // Only when the client shares are inconsistent with themselves; spread by capacity.
    for (const [zone, count] of inRotation)
      if (zone !== localZone && count > 0) residual.set(zone, count);
    residualTotal = sum(residual.values());
  }
  const shares = new Map<string, number>([[localZone, localFraction]]);
  for (const [zone, spare] of residual) {
    shares.set(zone, ((1 - localFraction) * spare) / residualTotal);
  }
  return { mode: 'spill', reason: '', shares };
}

/** What the hint check needs of an endpoint. */
export interface HintedEndpoint {
  readonly forZones?: readonly string[] | undefined;
}

/**
 * Kubernetes topology hints as kube-proxy reads them: usable only when every
 * listed endpoint has at least one; then the endpoints hinted for
 * `localZone`. Undefined when the hints are not usable or name no endpoint
 * for this zone (kube-proxy then uses every endpoint). `hintsOf` reads an
 * endpoint's hints (its `forZones` by default).
 */
export function hintedForZone<E>(
  listed: readonly E[],
  candidates: readonly E[],
  localZone: string,
  hintsOf: (endpoint: E) => readonly string[] | undefined = (e) => (e as HintedEndpoint).forZones,
): E[] | undefined {
  if (listed.length === 0) return undefined;
  for (const endpoint of listed) {
    const hints = hintsOf(endpoint);
    if (!hints || hints.length === 0) return undefined;
  }
  const hinted = candidates.filter((e) => hintsOf(e)?.includes(localZone) === true);
  return hinted.length > 0 ? hinted : undefined;
}
