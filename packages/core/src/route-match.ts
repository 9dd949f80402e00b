import type { HeaderMatch, RouteMatch } from './traffic-split-config';

/**
 * Reads a request header's values (grpc-js `Metadata.get`). Binary (`-bin`)
 * values never match text, but do make a header present.
 */
export type HeaderReader = (name: string) => readonly unknown[];

function headerMatches(match: HeaderMatch, read: HeaderReader): boolean {
  const all = read(match.name);
  if ('present' in match) return all.length > 0 === match.present;
  const values = all.filter((v): v is string => typeof v === 'string');
  if ('exact' in match) return values.includes(match.exact);
  if ('regex' in match) return values.some((v) => match.regex.matches(v));
  return values.some((v) => v.startsWith(match.prefix));
}

/** Whether a call to `method` (`/pkg.Service/Method`) with these headers matches the route. */
export function routeMatches(match: RouteMatch, method: string, read: HeaderReader): boolean {
  if (match.method !== undefined && match.method !== method) return false;
  if (match.prefix !== undefined && !method.startsWith(match.prefix)) return false;
  if (match.regex !== undefined && !match.regex.matches(method)) return false;
  for (const header of match.headers) {
    if (!headerMatches(header, read)) return false;
  }
  return true;
}
