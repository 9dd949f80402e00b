/**
 * DestinationRule `trafficPolicy.connectionPool` → grpc-lb's `limits`:
 *
 * - `http.http2MaxRequests` (Envoy's `max_requests`: requests in flight to
 *   the host) → `maxRequests`;
 * - `http.http1MaxPendingRequests` (Envoy's `max_pending_requests`:
 *   requests waiting for a connection) → `maxPending`.
 *
 * Istio's 0 means "unset", and its default (2^32-1) "no limit": both leave
 * the limit off, as does any value beyond what grpc-lb accepts (10^9).
 * Every other field is named in one warning: `maxRequestsPerConnection` is
 * how many requests a connection carries in its life before it is closed,
 * not how many it carries at once, and the TCP settings, `maxRetries`,
 * `idleTimeout` and the others are about a proxy's connection pool, where a
 * channel keeps one HTTP/2 connection per endpoint.
 */
import { At, isObject, leafPaths, type Json } from './fields';

/** Istio's ConnectionPoolSettings.HTTPSettings fields that become a limit, and which. */
const HTTP_LIMITS: Readonly<Record<string, 'maxRequests' | 'maxPending'>> = {
  http2MaxRequests: 'maxRequests',
  http1MaxPendingRequests: 'maxPending',
};

/** The largest limit grpc-lb accepts; a larger one is no limit in practice. */
const MAX_LIMIT = 1_000_000_000;

/**
 * The `limits` a connection pool gives, if any; a warning names every field
 * not applied. With several subsets a warning also says that the limits count
 * over the whole host (Istio makes each subset a cluster with its own).
 */
export function connectionPoolLimits(
  at: At,
  value: unknown,
  subsetCount: number,
): Json | undefined {
  const pool = at.object(value);
  const limits: Json = {};
  const ignored: string[] = [];
  for (const [key, v] of Object.entries(pool)) {
    if (v === undefined) continue;
    if (key !== 'http' || !isObject(v)) {
      ignored.push(...leafPaths({ [key]: v }));
      continue;
    }
    for (const [field, setting] of Object.entries(v)) {
      if (setting === undefined) continue;
      const limit = HTTP_LIMITS[field];
      if (limit === undefined) {
        ignored.push(`http.${field}`);
        continue;
      }
      const n = at.key(`http.${field}`).integer(setting, 0, 2 ** 32 - 1);
      if (n > 0 && n <= MAX_LIMIT) limits[limit] = n;
    }
  }
  if (ignored.length > 0) {
    const perConnection = ignored.includes('http.maxRequestsPerConnection')
      ? ' (maxRequestsPerConnection is how many calls a connection carries in its life, not at once)'
      : '';
    at.note(
      `connection pool settings are not applied (${ignored.join(', ')}): ` +
        `a channel keeps one HTTP/2 connection per endpoint${perConnection}`,
    );
  }
  if (Object.keys(limits).length === 0) return undefined;
  if (subsetCount > 1) {
    at.note(
      'limits count the calls to every endpoint of the host together, where Istio counts per subset',
    );
  }
  return limits;
}
