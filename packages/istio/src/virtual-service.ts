/** VirtualService `http` routes → `grpc-lb.traffic_split` routes and their method configs. */
import { durationNanos, grpcDuration } from './duration';
import { At, otherFields, type Json } from './fields';
import { translateRetries } from './retries';

export type HeaderMatch =
  | { name: string; exact: string }
  | { name: string; prefix: string }
  | { name: string; regex: string }
  | { name: string; present: boolean };

export interface RouteMatch {
  method?: string;
  prefix?: string;
  regex?: string;
  headers?: HeaderMatch[];
}

export interface SplitTarget {
  subset: string;
  weight: number;
}

export interface TrafficRoute {
  name: string;
  match?: RouteMatch;
  split: SplitTarget[];
}

/** A route's call settings, for `methodConfig`. */
export interface RoutePolicy {
  timeout?: string;
  retryPolicy?: Json;
}

/** One VirtualService http route: a traffic-split route per match block, and its call settings. */
export interface HttpRoute {
  readonly at: At;
  readonly routes: TrafficRoute[];
  /** Where each of `routes` comes from: its match block, or the route when it has none. */
  readonly sources: At[];
  readonly policy: RoutePolicy | undefined;
}

export interface RouteContext {
  /** Whether a destination host names the client's host (read in the VirtualService's namespace). */
  isHost(host: string): boolean;
  /** Whether a DestinationRule for the host defines this subset. */
  hasSubset(name: string): boolean;
  /** The name of the subset of every endpoint (a destination without a subset). */
  everyEndpoint(): string;
}

/** A full gRPC method path, as a VirtualService `uri` names one. */
const METHOD_PATH = /^\/[^/\s]+\/[^/\s]+$/;

const HTTP_ROUTE_NOTES: Readonly<Record<string, string>> = {
  fault: 'fault injection is not applied by the client',
  mirror: 'traffic mirroring is not applied by the client',
  mirrors: 'traffic mirroring is not applied by the client',
  mirrorPercent: 'traffic mirroring is not applied by the client',
  mirrorPercentage: 'traffic mirroring is not applied by the client',
  rewrite: 'rewrites are not applied: calls keep their method path and authority',
  headers: 'header manipulation is not applied: calls keep their metadata',
  corsPolicy: 'CORS does not apply to gRPC calls from a client',
};

const MATCH_NOTES: Readonly<Record<string, string>> = {
  sourceLabels:
    'the route applies only to the workloads with these labels in Istio; here it applies to every client given this config',
  sourceNamespace:
    'the route applies only to clients of that namespace in Istio; here it applies to every client given this config',
  gateways: 'gateway-specific matches are not applied: this config is for mesh clients',
  method: 'every gRPC call is an HTTP POST: the HTTP method is not checked',
  authority: 'the authority is not checked: the channel target decides the host',
  scheme: 'the scheme is not checked',
  port: 'the port is not checked: the channel target decides it',
  queryParams: 'gRPC calls have no query parameters: not checked',
  ignoreUriCase: 'method paths are matched case-sensitively: ignoreUriCase is not applied',
  withoutHeaders:
    'negative header matches are not applied: the route matches whatever those headers hold',
  statPrefix: 'not applied by the client',
};

function stringMatch(
  at: At,
  value: unknown,
): { kind: 'exact' | 'prefix' | 'regex'; value: string } | undefined {
  const m = at.object(value);
  const kinds = (['exact', 'prefix', 'regex'] as const).filter((k) => m[k] !== undefined);
  for (const key of otherFields(m, ['exact', 'prefix', 'regex'])) {
    at.key(key).note('not applied by the client');
  }
  if (kinds.length === 0) return undefined;
  if (kinds.length > 1) at.fail(`expected one of exact, prefix, regex; got ${kinds.join(', ')}`);
  const kind = kinds[0]!;
  return { kind, value: at.key(kind).string(m[kind]) };
}

/** One match block, or undefined when no gRPC call can match it (with a warning saying why). */
function matchBlock(at: At, value: unknown): RouteMatch | undefined {
  const m = at.object(value);
  for (const key of otherFields(m, ['name', 'uri', 'headers'])) {
    at.key(key).note(MATCH_NOTES[key] ?? 'not applied by the client');
  }
  const match: RouteMatch = {};
  if (m['uri'] !== undefined) {
    const uri = stringMatch(at.key('uri'), m['uri']);
    if (uri?.kind === 'exact') {
      if (!METHOD_PATH.test(uri.value)) {
        at.key('uri.exact').note(
          `"${uri.value}" is not a gRPC method path (/package.Service/Method): no call matches it; this match block is left out`,
        );
        return undefined;
      }
      match.method = uri.value;
    } else if (uri?.kind === 'prefix') {
      if (!uri.value.startsWith('/') || /\s/.test(uri.value)) {
        at.key('uri.prefix').note(
          `"${uri.value}" cannot begin a gRPC method path (/package.Service/Method): no call matches it; this match block is left out`,
        );
        return undefined;
      }
      if (uri.value !== '/') match.prefix = uri.value;
    } else if (uri?.kind === 'regex') {
      match.regex = uri.value;
    }
  }
  if (m['headers'] !== undefined) {
    const headers: HeaderMatch[] = [];
    for (const [rawName, spec] of Object.entries(at.key('headers').object(m['headers']))) {
      const hat = at.key('headers').key(rawName);
      const name = rawName.toLowerCase();
      if (name.startsWith(':')) {
        hat.note(
          'pseudo-headers are not visible to the balancer: this header condition is not applied',
        );
        continue;
      }
      const sm = stringMatch(hat, spec);
      if (sm === undefined) headers.push({ name, present: true });
      else if (sm.kind === 'exact') headers.push({ name, exact: sm.value });
      else if (sm.kind === 'prefix') headers.push({ name, prefix: sm.value });
      else headers.push({ name, regex: sm.value });
    }
    if (headers.length > 0) match.headers = headers;
  }
  return match;
}

function splitOf(at: At, value: unknown, ctx: RouteContext): SplitTarget[] {
  const list = at.list(value);
  const weights = new Map<string, number>();
  const dropped: string[] = [];
  list.forEach((raw, i) => {
    const dat = at.index(i);
    const d = dat.object(raw);
    for (const key of otherFields(d, ['destination', 'weight'])) {
      dat.key(key).note(HTTP_ROUTE_NOTES[key] ?? 'not applied by the client');
    }
    const weight =
      d['weight'] === undefined
        ? list.length === 1
          ? 100
          : 0
        : dat.key('weight').integer(d['weight'], 0, 1_000_000);
    const destAt = dat.key('destination');
    const dest = destAt.object(d['destination']);
    for (const key of otherFields(dest, ['host', 'subset', 'port'])) {
      destAt.key(key).note('not applied by the client');
    }
    if (dest['port'] !== undefined) {
      destAt.key('port').note('not applied: the channel target decides the port');
    }
    const host = destAt.key('host').string(dest['host']);
    if (!ctx.isHost(host)) {
      destAt
        .key('host')
        .note(
          `${host} is another host: a channel balances one service, so this destination (weight ${weight}) is left out` +
            (list.length > 1 ? ' and its share goes to the other destinations' : ''),
        );
      dropped.push(host);
      return;
    }
    let subset: string;
    if (dest['subset'] === undefined) subset = ctx.everyEndpoint();
    else {
      subset = destAt.key('subset').string(dest['subset']);
      if (!ctx.hasSubset(subset)) {
        destAt
          .key('subset')
          .note(
            `no DestinationRule for the host defines subset "${subset}": this destination (weight ${weight}) is left out` +
              (list.length > 1 ? ' and its share goes to the other destinations' : '') +
              ' (Istio fails those calls)',
          );
        return;
      }
    }
    weights.set(subset, (weights.get(subset) ?? 0) + weight);
  });
  return [...weights].map(([subset, weight]) => ({ subset, weight }));
}

function policyOf(at: At, http: Json): RoutePolicy | undefined {
  const policy: RoutePolicy = {};
  if (http['timeout'] !== undefined) {
    const timeoutAt: At = at.key('timeout');
    const text = timeoutAt.string(http['timeout']);
    const nanos = durationNanos(text);
    if (nanos === undefined) timeoutAt.fail(`expected a duration like "10s", got "${text}"`);
    // 0 turns the route timeout off in Istio.
    if (nanos > 0) policy.timeout = grpcDuration(Math.max(nanos, 1e6));
  }
  if (http['retries'] !== undefined) {
    const retryPolicy = translateRetries(at.key('retries'), http['retries']);
    if (retryPolicy) policy.retryPolicy = retryPolicy;
  }
  return policy.timeout === undefined && policy.retryPolicy === undefined ? undefined : policy;
}

/**
 * Translates the `http` routes of a VirtualService, in order. A route that
 * cannot send calls anywhere (a redirect, a direct response, a delegate, only
 * destinations on other hosts) is left out with a warning.
 */
export function translateHttpRoutes(at: At, value: unknown, ctx: RouteContext): HttpRoute[] {
  const result: HttpRoute[] = [];
  const names = new Set<string>();
  at.list(value).forEach((raw, i) => {
    const hat = at.index(i);
    const http = hat.object(raw);
    const known = ['name', 'match', 'route', 'timeout', 'retries'];
    for (const key of otherFields(http, known)) {
      if (key === 'redirect' || key === 'directResponse' || key === 'delegate') continue;
      hat.key(key).note(HTTP_ROUTE_NOTES[key] ?? 'not applied by the client');
    }
    for (const key of ['redirect', 'directResponse', 'delegate'] as const) {
      if (http[key] === undefined) continue;
      const what =
        key === 'delegate'
          ? 'delegation to another VirtualService is not followed'
          : `a route that answers by itself (${key}) has no client-side equivalent`;
      hat
        .key(key)
        .note(`${what}: this route is left out; the calls it matches go to the later routes`);
      return;
    }
    const base = http['name'] === undefined ? `http[${i}]` : hat.key('name').string(http['name']);
    if (http['route'] === undefined)
      hat.key('route').fail('is required (the destinations of the route)');
    const split = splitOf(hat.key('route'), http['route'], ctx);
    if (split.length === 0) {
      hat
        .key('route')
        .note(
          'no destination is left: this route is left out; the calls it matches go to the later routes',
        );
      return;
    }
    if (split.every((t) => t.weight === 0)) {
      hat.key('route').fail('every weight is 0: the route could send no call');
    }
    const policy = policyOf(hat, http);
    const routes: TrafficRoute[] = [];
    const sources: At[] = [];
    if (http['match'] === undefined) {
      routes.push({ name: unique(base, names), split });
      sources.push(hat);
    } else {
      const blocks = hat.key('match').list(http['match']);
      blocks.forEach((rawBlock, j) => {
        const mat = hat.key('match').index(j);
        const match = matchBlock(mat, rawBlock);
        if (!match) return;
        const blockName = mat.object(rawBlock)['name'];
        const name =
          blocks.length === 1
            ? base
            : `${base}.${typeof blockName === 'string' && blockName ? blockName : `match[${j}]`}`;
        const empty = Object.keys(match).length === 0;
        routes.push({ name: unique(name, names), ...(empty ? {} : { match }), split: [...split] });
        sources.push(mat);
      });
      if (routes.length === 0) {
        hat.key('match').note('no match block is left: this route is left out');
        return;
      }
    }
    result.push({ at: hat, routes, sources, policy });
  });
  return result;
}

function unique(name: string, taken: Set<string>): string {
  let candidate = name;
  for (let n = 2; taken.has(candidate); n++) candidate = `${name}#${n}`;
  taken.add(candidate);
  return candidate;
}
