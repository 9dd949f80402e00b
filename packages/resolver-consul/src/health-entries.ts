import type { ResolvedEndpoint } from '@grpc-lb/core';

/** The parts of a `/v1/health/service/<name>` entry the resolver reads. */
export interface HealthEntry {
  readonly Node?: { readonly Node?: unknown; readonly Address?: unknown } | null;
  readonly Service?: {
    readonly ID?: unknown;
    readonly Address?: unknown;
    readonly Port?: unknown;
    readonly Tags?: unknown;
    readonly Meta?: unknown;
    readonly Weights?: { readonly Passing?: unknown; readonly Warning?: unknown } | null;
  } | null;
  readonly Checks?: readonly { readonly Status?: unknown }[] | null;
}

/** The label a tag becomes: tag `v2` → label `tag:v2` = `true` (Consul meta keys cannot hold ":"). */
export const TAG_LABEL_PREFIX = 'tag:';
/** Labels the resolver adds: the instance's service ID and its node. */
export const SERVICE_ID_LABEL = 'consul.id';
export const NODE_LABEL = 'consul.node';
/** The meta key read as the endpoint's zone. */
export const ZONE_META = 'zone';

export interface ConvertedEntries {
  readonly endpoints: ResolvedEndpoint[];
  /** One line per skipped entry or ignored field. */
  readonly warnings: string[];
  /** Entries that could not be used at all. */
  readonly skipped: number;
}

/** `critical` if any check is critical (or in maintenance), else `warning` if any warns, else `passing`. */
export function aggregateStatus(checks: unknown): 'passing' | 'warning' | 'critical' {
  let status: 'passing' | 'warning' | 'critical' = 'passing';
  if (!Array.isArray(checks)) return status;
  for (const check of checks as { Status?: unknown }[]) {
    const s = check?.Status;
    if (s === 'critical' || s === 'maintenance') return 'critical';
    if (s === 'warning') status = 'warning';
  }
  return status;
}

function validWeight(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 1_000_000;
}

/**
 * A health listing → endpoints. Address is `Service.Address`, else `Node.Address`; the port is
 * `Service.Port`; the weight is `Service.Weights.Passing` (`.Warning` for an instance whose checks
 * warn or fail — only listed with `healthy=false`); labels are `Service.Meta`, one `tag:<tag>` =
 * `true` per tag, `consul.id` and `consul.node`; the zone is meta `zone`. An entry without a
 * usable address or port is skipped with a warning; a bad weight or meta value is ignored with one.
 */
export function endpointsFromHealth(entries: readonly unknown[]): ConvertedEntries {
  const endpoints: ResolvedEndpoint[] = [];
  const warnings: string[] = [];
  let skipped = 0;
  entries.forEach((raw, i) => {
    const entry = (typeof raw === 'object' && raw !== null ? raw : {}) as HealthEntry;
    const service = entry.Service;
    const id = typeof service?.ID === 'string' && service.ID !== '' ? service.ID : `entry #${i}`;
    if (typeof service !== 'object' || service === null) {
      warnings.push(`${id}: no Service object; skipped`);
      skipped++;
      return;
    }
    const nodeAddress = entry.Node?.Address;
    const host =
      typeof service.Address === 'string' && service.Address !== ''
        ? service.Address
        : typeof nodeAddress === 'string'
          ? nodeAddress
          : '';
    if (host === '') {
      warnings.push(`${id}: neither Service.Address nor Node.Address; skipped`);
      skipped++;
      return;
    }
    const port = service.Port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      warnings.push(
        `${id} (${host}): port ${JSON.stringify(port) ?? 'missing'} is not 1-65535; skipped`,
      );
      skipped++;
      return;
    }
    const status = aggregateStatus(entry.Checks);
    const weights = service.Weights;
    let weight: number | undefined;
    if (weights !== undefined && weights !== null) {
      const chosen = status === 'passing' ? weights.Passing : weights.Warning;
      if (validWeight(chosen)) weight = chosen;
      else if (chosen !== undefined) {
        warnings.push(
          `${id}: Weights.${status === 'passing' ? 'Passing' : 'Warning'} ${JSON.stringify(chosen)} is not an integer 0-1000000; using 1`,
        );
      }
    }
    const labels: Record<string, string> = {};
    let zone: string | undefined;
    if (service.Meta !== undefined && service.Meta !== null) {
      if (typeof service.Meta !== 'object' || Array.isArray(service.Meta)) {
        warnings.push(`${id}: Service.Meta is not an object; ignored`);
      } else {
        for (const [key, value] of Object.entries(service.Meta as Record<string, unknown>)) {
          if (typeof value !== 'string' || key === '__proto__') {
            warnings.push(`${id}: meta ${JSON.stringify(key)} is not a string; ignored`);
            continue;
          }
          labels[key] = value;
          if (key === ZONE_META && value !== '') zone = value;
        }
      }
    }
    if (Array.isArray(service.Tags)) {
      for (const tag of service.Tags as unknown[]) {
        if (typeof tag === 'string' && tag !== '') labels[`${TAG_LABEL_PREFIX}${tag}`] = 'true';
      }
    }
    if (typeof service.ID === 'string' && service.ID !== '') labels[SERVICE_ID_LABEL] = service.ID;
    const nodeName = entry.Node?.Node;
    if (typeof nodeName === 'string' && nodeName !== '') labels[NODE_LABEL] = nodeName;
    endpoints.push({
      host,
      port,
      ...(weight !== undefined ? { weight } : {}),
      labels,
      ...(zone !== undefined ? { zone } : {}),
    });
  });
  return { endpoints, warnings, skipped };
}

/**
 * The index for the next blocking query, from the one sent and the `X-Consul-Index` answered
 * (Consul's rules): an index that is missing, not a number, below 1, or lower than the previous
 * one (the agent restarted or the raft log was restored) resets to 0 — a non-blocking query.
 */
export function nextIndex(previous: number, header: unknown): number {
  const text = Array.isArray(header) ? (header[0] as unknown) : header;
  if (typeof text !== 'string' || !/^\d+$/.test(text)) return 0;
  const index = Number(text);
  if (!Number.isSafeInteger(index) || index < 1) return 0;
  if (index < previous) return 0;
  return index;
}

/** The query string of a health query; `index` is left out unless it is at least 1. */
export function healthQuery(
  target: {
    readonly passingOnly: boolean;
    readonly tags: readonly string[];
    readonly dc: string | undefined;
    readonly near: string | undefined;
    readonly filter: string | undefined;
    readonly stale: boolean;
    readonly consistent: boolean;
  },
  index: number,
  wait: string,
): string {
  const params = new URLSearchParams();
  if (target.passingOnly) params.set('passing', 'true');
  for (const tag of target.tags) params.append('tag', tag);
  if (target.dc !== undefined) params.set('dc', target.dc);
  if (target.near !== undefined) params.set('near', target.near);
  if (target.filter !== undefined) params.set('filter', target.filter);
  if (target.stale) params.set('stale', '');
  if (target.consistent) params.set('consistent', '');
  if (index >= 1) {
    params.set('index', String(index));
    params.set('wait', wait);
  }
  return params.toString();
}
