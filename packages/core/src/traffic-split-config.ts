/**
 * `grpc-lb.traffic_split` configuration, parsed from service config JSON by
 * pure functions into typed objects; every rejection names the field path.
 * Field names are read in camelCase or snake_case (`subsetPolicy` or
 * `subset_policy`), like every other option of our policies.
 *
 *     { "grpc-lb.traffic_split": {
 *         "subsets": [ { "name": "v1", "labels": { "version": "v1" } }, … ],
 *         "routes": [
 *           { "match": { "method": "/helloworld.Greeter/SayHello" },
 *             "split": [ { "subset": "v1", "weight": 30 }, { "subset": "v2", "weight": 60 }, … ] },
 *           { "match": { "prefix": "/helloworld.Greeter/", "headers": [ { "name": "x-canary", "exact": "1" } ] },
 *             "split": [ { "subset": "v3", "weight": 100 } ] },
 *           { "match": { "regex": "/helloworld\\.Greeter/Say(Hello|Goodbye)" },
 *             "split": [ { "subset": "v1", "weight": 100 } ] },
 *           { "split": [ { "subset": "v2", "weight": 100 } ] }
 *         ],
 *         "subsetPolicy": "round_robin",
 *         "onEmptySubset": "redistribute" } }
 */
import { parseConsistentHashConfig, type ConsistentHashConfig } from './consistent-hash-config';
import { MAX_WEIGHT } from './endpoint';
import { ConfigError, describe } from './errors';
import {
  array,
  Fields,
  integer,
  nonEmptyString,
  oneOf,
  STRICT,
  type ParseContext,
} from './json-fields';
import { RoutePattern } from './route-regex';

export const TRAFFIC_SPLIT_POLICY = 'grpc-lb.traffic_split';

/**
 * How endpoints inside a subset are picked: `round_robin` (equal shares),
 * `weighted_round_robin` (in proportion to the endpoints' weights),
 * `least_request` (the cheaper of two endpoints drawn at random, with the
 * load estimate of `grpc-lb.least_request`), `random` (uniformly at random),
 * `consistent_hash` (by the call's hash key, as `grpc-lb.consistent_hash`
 * with the subset's `consistentHash` options).
 */
export type SubsetPolicy =
  'round_robin' | 'weighted_round_robin' | 'least_request' | 'random' | 'consistent_hash';

export interface SubsetConfig {
  readonly name: string;
  /** An endpoint belongs to the subset when it has every one of these labels. `{}` = every endpoint. */
  readonly labels: Readonly<Record<string, string>>;
  readonly policy: SubsetPolicy;
  /** The `consistent_hash` options (the route-wide `consistentHash`, else the defaults). */
  readonly consistentHash?: ConsistentHashConfig;
}

export type HeaderMatch =
  | { readonly name: string; readonly exact: string }
  | { readonly name: string; readonly prefix: string }
  | { readonly name: string; readonly present: boolean }
  /** An RE2 pattern that must match the whole value. */
  | { readonly name: string; readonly regex: RoutePattern };

export interface RouteMatch {
  /** Exact full method name, `/pkg.Service/Method`. */
  readonly method?: string;
  /** Method name prefix, `/pkg.Service/` (like a VirtualService `uri.prefix`). */
  readonly prefix?: string;
  /**
   * An RE2 pattern the whole method name must match (like a VirtualService
   * `uri.regex`): `/helloworld\.Greeter/Say.*`.
   */
  readonly regex?: RoutePattern;
  /** Every header match must hold (names are lower-case). */
  readonly headers: readonly HeaderMatch[];
}

export interface SplitTarget {
  readonly subset: string;
  readonly weight: number;
}

export interface RouteConfig {
  readonly name: string;
  readonly match: RouteMatch;
  readonly split: readonly SplitTarget[];
}

export interface TrafficSplitConfig {
  readonly subsets: readonly SubsetConfig[];
  /** First match wins; a call no route matches goes to all endpoints, round robin. */
  readonly routes: readonly RouteConfig[];
  readonly subsetPolicy: SubsetPolicy;
  /**
   * What a route does with the share of a subset that cannot take calls now. A subset is ready
   * when one of its endpoints is in rotation; waiting while none is but one is on its way
   * (connecting, or connected with its first health answer pending); empty when none is on its
   * way (no endpoint; all failing, not serving or ejected; or only endpoints of weight 0 ready).
   * `redistribute` (default): a waiting or empty subset's share goes to the route's ready subsets,
   * in proportion to their weights; calls queue only when no subset is ready and one is waiting,
   * and fail only when every subset is empty. `fail`: a waiting subset's share queues until it is
   * ready; an empty subset's share fails at once with UNAVAILABLE naming the subset.
   */
  readonly onEmptySubset: 'redistribute' | 'fail';
}

const SUBSET_POLICIES: readonly SubsetPolicy[] = [
  'round_robin',
  'weighted_round_robin',
  'least_request',
  'random',
  'consistent_hash',
];

function parseLabels(value: unknown, field: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [key, v] of Object.entries(Fields.of(value, field).json)) {
    if (key === '__proto__') throw new ConfigError(`${field}.${key}`, 'is not a usable label name');
    if (typeof v !== 'string')
      throw new ConfigError(`${field}.${key}`, `expected a string, got ${describe(v)}`);
    labels[key] = v;
  }
  return labels;
}

const METHOD = /^\/[^/\s]+\/[^/\s]+$/;
const PREFIX = /^\/\S*$/;

function parseHeader(value: unknown, field: string, ctx: ParseContext): HeaderMatch {
  const f = Fields.of(value, field, ctx);
  f.only(['name', 'exact', 'prefix', 'regex', 'present']);
  const name = nonEmptyString(f.get('name'), `${field}.name`);
  if (name !== name.toLowerCase())
    throw new ConfigError(`${field}.name`, `header names are lower-case ("${name.toLowerCase()}")`);
  const kinds = (['exact', 'prefix', 'regex', 'present'] as const).filter((k) => f.has(k));
  if (kinds.length !== 1) {
    throw new ConfigError(
      field,
      `expected exactly one of exact, prefix, regex, present; got ${kinds.length === 0 ? 'none' : kinds.join(', ')}`,
    );
  }
  const kind = kinds[0]!;
  const given = f.get(kind);
  if (kind === 'present') {
    if (typeof given !== 'boolean')
      throw new ConfigError(`${field}.present`, `expected true or false, got ${describe(given)}`);
    return { name, present: given };
  }
  if (typeof given !== 'string')
    throw new ConfigError(`${field}.${kind}`, `expected a string, got ${describe(given)}`);
  switch (kind) {
    case 'exact':
      return { name, exact: given };
    case 'prefix':
      return { name, prefix: given };
    case 'regex':
      return { name, regex: RoutePattern.compile(given, `${field}.regex`) };
  }
}

function parseMatch(value: unknown, field: string, ctx: ParseContext): RouteMatch {
  if (value === undefined) return { headers: [] };
  const f = Fields.of(value, field, ctx);
  f.only(['method', 'prefix', 'regex', 'headers']);
  const given = (['method', 'prefix', 'regex'] as const).filter((k) => f.has(k));
  if (given.length > 1)
    throw new ConfigError(field, `give one of method, prefix, regex, not ${given.join(' and ')}`);
  const method = f.read('method', (v, at) => {
    const text = nonEmptyString(v, at);
    if (!METHOD.test(text))
      throw new ConfigError(at, `expected "/package.Service/Method", got "${text}"`);
    return text;
  });
  const prefix = f.read('prefix', (v, at) => {
    const text = nonEmptyString(v, at);
    if (!PREFIX.test(text))
      throw new ConfigError(
        at,
        `expected a prefix starting with "/", e.g. "/package.Service/", got "${text}"`,
      );
    return text;
  });
  const regex = f.read('regex', (v, at) => RoutePattern.compile(nonEmptyString(v, at), at));
  const headers =
    f.read('headers', (list, at) =>
      array(list, at).map((h, i) => parseHeader(h, `${at}[${i}]`, ctx)),
    ) ?? [];
  return {
    ...(method === undefined ? {} : { method }),
    ...(prefix === undefined ? {} : { prefix }),
    ...(regex === undefined ? {} : { regex }),
    headers,
  };
}

function parseSubsets(
  value: unknown,
  field: string,
  defaultPolicy: SubsetPolicy,
  ctx: ParseContext,
  defaultHash: ConsistentHashConfig | undefined,
): SubsetConfig[] {
  const subsets: SubsetConfig[] = [];
  const list = array(value, field);
  if (list.length === 0) throw new ConfigError(field, 'needs at least one subset');
  list.forEach((raw, i) => {
    const s = Fields.of(raw, `${field}[${i}]`, ctx);
    s.only(['name', 'labels', 'policy', 'consistentHash']);
    const name = nonEmptyString(s.get('name'), s.at('name'));
    if (subsets.some((other) => other.name === name))
      throw new ConfigError(s.at('name'), `subset "${name}" is defined twice`);
    const labels = s.read('labels', parseLabels) ?? {};
    const policy = s.read('policy', (v, at) => oneOf(v, at, SUBSET_POLICIES)) ?? defaultPolicy;
    const hash = s.read('consistentHash', (v, at) => parseConsistentHashConfig(v, at, ctx));
    if (hash && policy !== 'consistent_hash')
      throw new ConfigError(
        s.at('consistentHash'),
        `applies to policy "consistent_hash", not "${policy}"`,
      );
    const consistentHash = policy === 'consistent_hash' ? (hash ?? defaultHash) : undefined;
    subsets.push({ name, labels, policy, ...(consistentHash ? { consistentHash } : {}) });
  });
  return subsets;
}

function parseSplit(
  value: unknown,
  field: string,
  subsets: readonly SubsetConfig[],
  ctx: ParseContext,
): SplitTarget[] {
  const list = array(value, field);
  if (list.length === 0) throw new ConfigError(field, 'needs at least one subset');
  const seen = new Set<string>();
  const split = list.map((raw, j): SplitTarget => {
    const t = Fields.of(raw, `${field}[${j}]`, ctx);
    t.only(['subset', 'weight']);
    const subset = nonEmptyString(t.get('subset'), t.at('subset'));
    if (!subsets.some((s) => s.name === subset)) {
      throw new ConfigError(
        t.at('subset'),
        `no subset named "${subset}" (defined: ${subsets.map((s) => s.name).join(', ')})`,
      );
    }
    if (seen.has(subset))
      throw new ConfigError(t.at('subset'), `subset "${subset}" appears twice in this split`);
    seen.add(subset);
    const weight = integer(t.get('weight'), t.at('weight'), 0, MAX_WEIGHT);
    return { subset, weight };
  });
  if (split.every((t) => t.weight === 0))
    throw new ConfigError(field, 'every weight is 0: the route could send no call');
  return split;
}

export function parseTrafficSplitConfig(
  json: unknown,
  field = TRAFFIC_SPLIT_POLICY,
  ctx: ParseContext = STRICT,
): TrafficSplitConfig {
  const f = Fields.of(json, field, ctx);
  f.only(['subsets', 'routes', 'subsetPolicy', 'onEmptySubset', 'consistentHash']);
  const subsetPolicy =
    f.read('subsetPolicy', (v, at) => oneOf(v, at, SUBSET_POLICIES)) ?? 'round_robin';
  const onEmptySubset =
    f.read('onEmptySubset', (v, at) => oneOf(v, at, ['redistribute', 'fail'] as const)) ??
    'redistribute';
  const consistentHash = f.read('consistentHash', (v, at) => parseConsistentHashConfig(v, at, ctx));
  const subsets = parseSubsets(
    f.get('subsets'),
    f.at('subsets'),
    subsetPolicy,
    ctx,
    consistentHash,
  );
  const routes = array(f.get('routes'), f.at('routes')).map((raw, i): RouteConfig => {
    const r = Fields.of(raw, `${f.at('routes')}[${i}]`, ctx);
    r.only(['name', 'match', 'split']);
    const name = r.read('name', nonEmptyString) ?? `routes[${i}]`;
    const match = parseMatch(r.get('match'), r.at('match'), ctx);
    const split = parseSplit(r.get('split'), r.at('split'), subsets, ctx);
    return { name, match, split };
  });
  return { subsets, routes, subsetPolicy, onEmptySubset };
}
