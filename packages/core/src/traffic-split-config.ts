/**
 * `grpc-lb.traffic_split` and `grpc-lb.weighted_round_robin` configuration:
 * parsed from service config JSON by pure functions into typed objects;
 * every rejection names the field path.
 *
 *     { "grpc-lb.traffic_split": {
 *         "subsets": [ { "name": "v1", "labels": { "version": "v1" } }, … ],
 *         "routes": [
 *           { "match": { "method": "/helloworld.Greeter/SayHello" },
 *             "split": [ { "subset": "v1", "weight": 30 }, { "subset": "v2", "weight": 60 }, … ] },
 *           { "match": { "prefix": "/helloworld.Greeter/", "headers": [ { "name": "x-canary", "exact": "1" } ] },
 *             "split": [ { "subset": "v3", "weight": 100 } ] },
 *           { "split": [ { "subset": "v2", "weight": 100 } ] }
 *         ],
 *         "subsetPolicy": "round_robin",
 *         "onEmptySubset": "redistribute" } }
 */
import { MAX_WEIGHT } from './endpoint';
import { ConfigError, describe } from './errors';

export const WEIGHTED_ROUND_ROBIN_POLICY = 'grpc-lb.weighted_round_robin';
export const TRAFFIC_SPLIT_POLICY = 'grpc-lb.traffic_split';

/** How endpoints inside a subset are picked. */
export type SubsetPolicy = 'round_robin' | 'weighted_round_robin';

export interface SubsetConfig {
  readonly name: string;
  /** An endpoint belongs to the subset when it has every one of these labels. `{}` = every endpoint. */
  readonly labels: Readonly<Record<string, string>>;
  readonly policy: SubsetPolicy;
}

export type HeaderMatch =
  | { readonly name: string; readonly exact: string }
  | { readonly name: string; readonly prefix: string }
  | { readonly name: string; readonly present: boolean };

export interface RouteMatch {
  /** Exact full method name, `/pkg.Service/Method`. */
  readonly method?: string;
  /** Method name prefix, `/pkg.Service/` (like a VirtualService `uri.prefix`). */
  readonly prefix?: string;
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
   * `redistribute` (default): a subset with no reachable endpoint gives its share to the route's
   * other subsets, in proportion to their weights. `fail`: its share of calls fails with
   * UNAVAILABLE naming the subset.
   */
  readonly onEmptySubset: 'redistribute' | 'fail';
}

const SUBSET_POLICIES: readonly SubsetPolicy[] = ['round_robin', 'weighted_round_robin'];

type Json = Record<string, unknown>;

function object(value: unknown, field: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(field, `expected an object, got ${describe(value)}`);
  }
  return value as Json;
}

function only(obj: Json, field: string, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key))
      throw new ConfigError(
        `${field}.${key}`,
        `unknown field (expected one of ${allowed.join(', ')})`,
      );
  }
}

function string(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ConfigError(field, `expected a non-empty string, got ${describe(value)}`);
  }
  return value;
}

function array(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value))
    throw new ConfigError(field, `expected an array, got ${describe(value)}`);
  return value;
}

function oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw new ConfigError(
      field,
      `expected one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${describe(value)}`,
    );
  }
  return value as T;
}

/** `grpc-lb.weighted_round_robin` takes no options yet. */
export function parseWeightedRoundRobinConfig(
  json: unknown,
  field = WEIGHTED_ROUND_ROBIN_POLICY,
): Record<string, never> {
  if (json === undefined || json === null) return {};
  only(object(json, field), field, []);
  return {};
}

function parseLabels(value: unknown, field: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [key, v] of Object.entries(object(value, field))) {
    if (key === '__proto__') throw new ConfigError(`${field}.${key}`, 'is not a usable label name');
    if (typeof v !== 'string')
      throw new ConfigError(`${field}.${key}`, `expected a string, got ${describe(v)}`);
    labels[key] = v;
  }
  return labels;
}

const METHOD = /^\/[^/\s]+\/[^/\s]+$/;
const PREFIX = /^\/\S*$/;

function parseHeader(value: unknown, field: string): HeaderMatch {
  const obj = object(value, field);
  only(obj, field, ['name', 'exact', 'prefix', 'present']);
  const name = string(obj['name'], `${field}.name`);
  if (name !== name.toLowerCase())
    throw new ConfigError(`${field}.name`, `header names are lower-case ("${name.toLowerCase()}")`);
  const kinds = ['exact', 'prefix', 'present'].filter((k) => k in obj);
  if (kinds.length !== 1) {
    throw new ConfigError(
      field,
      `expected exactly one of exact, prefix, present; got ${kinds.length === 0 ? 'none' : kinds.join(', ')}`,
    );
  }
  if ('present' in obj) {
    if (typeof obj['present'] !== 'boolean')
      throw new ConfigError(
        `${field}.present`,
        `expected true or false, got ${describe(obj['present'])}`,
      );
    return { name, present: obj['present'] };
  }
  const kind = kinds[0] as 'exact' | 'prefix';
  if (typeof obj[kind] !== 'string')
    throw new ConfigError(`${field}.${kind}`, `expected a string, got ${describe(obj[kind])}`);
  return kind === 'exact' ? { name, exact: obj[kind] } : { name, prefix: obj[kind] };
}

function parseMatch(value: unknown, field: string): RouteMatch {
  if (value === undefined) return { headers: [] };
  const obj = object(value, field);
  only(obj, field, ['method', 'prefix', 'headers']);
  if ('method' in obj && 'prefix' in obj)
    throw new ConfigError(field, 'give method or prefix, not both');
  let method: string | undefined;
  let prefix: string | undefined;
  if ('method' in obj) {
    method = string(obj['method'], `${field}.method`);
    if (!METHOD.test(method))
      throw new ConfigError(
        `${field}.method`,
        `expected "/package.Service/Method", got "${method}"`,
      );
  }
  if ('prefix' in obj) {
    prefix = string(obj['prefix'], `${field}.prefix`);
    if (!PREFIX.test(prefix))
      throw new ConfigError(
        `${field}.prefix`,
        `expected a prefix starting with "/", e.g. "/package.Service/", got "${prefix}"`,
      );
  }
  const headers =
    obj['headers'] === undefined
      ? []
      : array(obj['headers'], `${field}.headers`).map((h, i) =>
          parseHeader(h, `${field}.headers[${i}]`),
        );
  return {
    ...(method === undefined ? {} : { method }),
    ...(prefix === undefined ? {} : { prefix }),
    headers,
  };
}

export function parseTrafficSplitConfig(
  json: unknown,
  field = TRAFFIC_SPLIT_POLICY,
): TrafficSplitConfig {
  const obj = object(json, field);
  only(obj, field, ['subsets', 'routes', 'subsetPolicy', 'onEmptySubset']);
  const subsetPolicy =
    obj['subsetPolicy'] === undefined
      ? 'round_robin'
      : oneOf(obj['subsetPolicy'], `${field}.subsetPolicy`, SUBSET_POLICIES);
  const onEmptySubset =
    obj['onEmptySubset'] === undefined
      ? 'redistribute'
      : oneOf(obj['onEmptySubset'], `${field}.onEmptySubset`, ['redistribute', 'fail'] as const);

  const subsets: SubsetConfig[] = [];
  const subsetList = array(obj['subsets'], `${field}.subsets`);
  if (subsetList.length === 0)
    throw new ConfigError(`${field}.subsets`, 'needs at least one subset');
  subsetList.forEach((raw, i) => {
    const at = `${field}.subsets[${i}]`;
    const s = object(raw, at);
    only(s, at, ['name', 'labels', 'policy']);
    const name = string(s['name'], `${at}.name`);
    if (subsets.some((other) => other.name === name))
      throw new ConfigError(`${at}.name`, `subset "${name}" is defined twice`);
    const labels = s['labels'] === undefined ? {} : parseLabels(s['labels'], `${at}.labels`);
    const policy =
      s['policy'] === undefined
        ? subsetPolicy
        : oneOf(s['policy'], `${at}.policy`, SUBSET_POLICIES);
    subsets.push({ name, labels, policy });
  });

  const routes = array(obj['routes'], `${field}.routes`).map((raw, i): RouteConfig => {
    const at = `${field}.routes[${i}]`;
    const r = object(raw, at);
    only(r, at, ['name', 'match', 'split']);
    const name = r['name'] === undefined ? `routes[${i}]` : string(r['name'], `${at}.name`);
    const match = parseMatch(r['match'], `${at}.match`);
    const splitList = array(r['split'], `${at}.split`);
    if (splitList.length === 0) throw new ConfigError(`${at}.split`, 'needs at least one subset');
    const seen = new Set<string>();
    const split = splitList.map((rawTarget, j): SplitTarget => {
      const st = `${at}.split[${j}]`;
      const t = object(rawTarget, st);
      only(t, st, ['subset', 'weight']);
      const subset = string(t['subset'], `${st}.subset`);
      if (!subsets.some((s) => s.name === subset)) {
        throw new ConfigError(
          `${st}.subset`,
          `no subset named "${subset}" (defined: ${subsets.map((s) => s.name).join(', ')})`,
        );
      }
      if (seen.has(subset))
        throw new ConfigError(`${st}.subset`, `subset "${subset}" appears twice in this split`);
      seen.add(subset);
      const weight = t['weight'];
      if (
        typeof weight !== 'number' ||
        !Number.isInteger(weight) ||
        weight < 0 ||
        weight > MAX_WEIGHT
      ) {
        throw new ConfigError(
          `${st}.weight`,
          `expected an integer 0-${MAX_WEIGHT}, got ${describe(weight)}${typeof weight === 'number' ? ` ${weight}` : ''}`,
        );
      }
      return { subset, weight };
    });
    if (split.every((t) => t.weight === 0))
      throw new ConfigError(`${at}.split`, 'every weight is 0: the route could send no call');
    return { name, match, split };
  });
  return { subsets, routes, subsetPolicy, onEmptySubset };
}
