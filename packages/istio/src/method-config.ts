/**
 * Route timeouts and retries → `methodConfig`. A method config is chosen by
 * method name (service and method, then service, then the empty name), not by
 * route order or headers, so each route's settings are scoped to the names its
 * match blocks cover, taking route order into account: a name an earlier
 * route already covers (without header conditions) is that route's.
 */
import type { Json } from './fields';
import type { HttpRoute, RouteMatch } from './virtual-service';

/** The method-config name of a scope: `{}` (every method), `{service}`, `{service, method}`. */
interface Scope {
  readonly service?: string;
  readonly method?: string;
}

function covers(outer: Scope, inner: Scope): boolean {
  if (outer.service === undefined) return true;
  if (outer.service !== inner.service) return false;
  return outer.method === undefined || outer.method === inner.method;
}

/** The scope of a match block, or why it has none. */
function scopeOf(match: RouteMatch | undefined): { scope: Scope } | { why: string } {
  if (match?.headers && match.headers.length > 0) {
    return { why: 'it matches on headers, and a method config is chosen by method name only' };
  }
  if (match?.regex !== undefined) {
    return { why: 'it matches a uri regex, and a method config names services and methods only' };
  }
  const path = match?.method ?? match?.prefix;
  if (path === undefined) return { scope: {} };
  const parts = path.slice(1).split('/');
  const [service = '', method] = parts;
  if (parts.length === 2 && service !== '' && !/[*]/.test(service)) {
    if (match?.method !== undefined) return { scope: { service, method: method! } };
    return { scope: method === '' ? { service } : { service, method: method! } };
  }
  return {
    why: `its uri prefix "${path}" is not a whole service ("/package.Service/") or method`,
  };
}

/** A method config for each route with a timeout or retries, scoped as closely as names allow. */
export function methodConfigs(routes: readonly HttpRoute[]): Json[] {
  const claimed: Scope[] = [];
  const entries: { scope: Scope; route: HttpRoute }[] = [];
  for (const route of routes) {
    route.routes.forEach((traffic, j) => {
      const where = route.sources[j] ?? route.at;
      const found = scopeOf(traffic.match);
      if ('why' in found) {
        if (route.policy) {
          where.note(
            `the route's ${settingsOf(route)} cannot be limited to the calls this match block selects (${found.why}): ` +
              "not applied to them (a later route's settings for their method, if any, apply instead)",
          );
        }
        return;
      }
      const { scope } = found;
      if (claimed.some((c) => covers(c, scope))) return;
      const prefix = traffic.match?.prefix;
      if (route.policy && prefix !== undefined && scope.method !== undefined) {
        where.note(
          `the route's ${settingsOf(route)} apply to method ${prefix} only, not to other methods whose names start with it`,
        );
      }
      claimed.push(scope);
      entries.push({ scope, route });
    });
  }
  // A route without settings keeps only the names that a later route's settings would otherwise take.
  const kept = entries.filter(
    ({ scope, route }, i) =>
      route.policy !== undefined ||
      entries.slice(i + 1).some((later) => later.route.policy && covers(later.scope, scope)),
  );
  const configs: { route: HttpRoute; names: Scope[] }[] = [];
  for (const { scope, route } of kept) {
    const existing = configs.find((c) => c.route === route);
    if (existing) existing.names.push(scope);
    else configs.push({ route, names: [scope] });
  }
  return configs.map(({ route, names }) => ({
    name: names.map((n) => (n.service === undefined ? {} : { ...n })),
    ...(route.policy ?? {}),
  }));
}

function settingsOf(route: HttpRoute): string {
  const parts: string[] = [];
  if (route.policy?.timeout !== undefined) parts.push('timeout');
  if (route.policy?.retryPolicy !== undefined) parts.push('retries');
  return parts.join(' and ');
}
