import { CONSISTENT_HASH_POLICY, parseConsistentHashConfig } from './consistent-hash-config';
import { ConfigError, describe, errorMessage } from './errors';
import { isJsonObject, STRICT, type Json, type ParseContext } from './json-fields';
import { LEAST_REQUEST_POLICY, parseLeastRequestConfig } from './least-request-config';
import { splitPolicyJson } from './resilience-config';
import type { ServiceConfigJson } from './resolver-contract';
import { parseRoundRobinConfig, ROUND_ROBIN_POLICY } from './round-robin-config';
import { parseTrafficSplitConfig, TRAFFIC_SPLIT_POLICY } from './traffic-split-config';
import {
  parseWeightedRoundRobinConfig,
  WEIGHTED_ROUND_ROBIN_POLICY,
} from './weighted-round-robin-config';

export { ROUND_ROBIN_POLICY } from './round-robin-config';

type PolicyParser = (json: unknown, field: string, ctx: ParseContext) => unknown;

/** Parsers of each of our policies' own fields, by policy name (the shared resilience fields apart). */
export const POLICY_PARSERS: Readonly<Record<string, PolicyParser>> = {
  [ROUND_ROBIN_POLICY]: parseRoundRobinConfig,
  [WEIGHTED_ROUND_ROBIN_POLICY]: parseWeightedRoundRobinConfig,
  [TRAFFIC_SPLIT_POLICY]: parseTrafficSplitConfig,
  [LEAST_REQUEST_POLICY]: parseLeastRequestConfig,
  [CONSISTENT_HASH_POLICY]: parseConsistentHashConfig,
};

/** Parses the body of one of our `loadBalancingConfig` entries: its own fields and the resilience options. */
export function parseOurPolicy(
  name: string,
  json: unknown,
  field = name,
  ctx: ParseContext = STRICT,
): unknown {
  const parse = Object.hasOwn(POLICY_PARSERS, name) ? POLICY_PARSERS[name] : undefined;
  if (!parse) throw new ConfigError(field, `unknown grpc-lb policy "${name}"`);
  const { own, resilience } = splitPolicyJson(json, field, ctx);
  // The policy reads a copy without the shared fields: an unknown field it skips is in the original body.
  const ownCtx: ParseContext =
    ctx.unknownFields === 'ignore'
      ? {
          unknownFields: 'ignore',
          onIgnored: (path, container, key) =>
            ctx.onIgnored(path, container === own ? (json as Json) : container, key),
        }
      : ctx;
  return { own: parse(own, field, ownCtx), resilience };
}

export const DEFAULT_LOAD_BALANCING_CONFIG: readonly Record<string, unknown>[] = Object.freeze([
  Object.freeze({ [ROUND_ROBIN_POLICY]: {} }),
]);

/** Where a service config came from, which decides how strictly it is read. */
export type ServiceConfigOrigin = 'channel' | 'resolver';

export interface ServiceConfigCheck {
  /**
   * `channel` (default: the application's own `grpc.service_config`): an
   * unknown field in one of our policies is a `ConfigError`. `resolver` (a
   * config carried by a registry, read by clients of several versions): it is
   * dropped from the config and named in `ignoredFields`.
   */
  readonly origin?: ServiceConfigOrigin;
  /**
   * Whether the client's grpc-js has a policy of this name (not one of ours),
   * throwing if it refuses the given config. Without it every such name is
   * taken on trust.
   */
  readonly foreignPolicy?: (name: string, config: unknown) => boolean;
}

const GRPC_LB_PREFIX = 'grpc-lb.';

/** Edit distance, for "did you mean" (names are short). */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        previous[j]! + 1,
        row[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = row;
  }
  return previous[b.length]!;
}

function unknownOurs(name: string): string {
  const ours = Object.keys(POLICY_PARSERS);
  const closest = ours
    .map((known) => ({ known, d: distance(name, known) }))
    .sort((x, y) => x.d - y.d)[0];
  const hint = closest && closest.d <= 3 ? `did you mean ${closest.known}? ` : '';
  return `unknown grpc-lb policy "${name}" (${hint}grpc-lb policies: ${ours.join(', ')})`;
}

/**
 * The policy list a config names: `loadBalancingConfig`, or else the older
 * `loadBalancingPolicy` string (which grpc-js 1.14 ignores: read as a
 * one-entry list, lower-cased as gRPC does), or none.
 */
function policyList(obj: Json): { list: unknown[]; field: string } | undefined {
  const lb = obj['loadBalancingConfig'];
  if (Array.isArray(lb) && lb.length > 0) return { list: lb, field: 'loadBalancingConfig' };
  const name = obj['loadBalancingPolicy'];
  if (typeof name === 'string' && lb === undefined) {
    return { list: [{ [name.toLowerCase()]: {} }], field: 'loadBalancingPolicy' };
  }
  return undefined;
}

/**
 * Checks a service config as a channel of one of our schemes will use it,
 * catching what grpc-js would otherwise turn silently into pick_first (it
 * skips an entry it cannot parse or does not know, and falls back to
 * pick_first when none is left, logging only at DEBUG):
 *
 * - `loadBalancingConfig` must be a list of one-policy objects;
 * - a `grpc-lb.` name we do not know is an error wherever it is listed: the
 *   namespace is ours, so it is a typo (or a policy of a newer version,
 *   which must reach the clients before a config that names it);
 * - every `grpc-lb.` entry's body is parsed, as its balancer will parse it;
 * - other names follow gRPC's fallback rule — the first one grpc-js has is
 *   used, and its config must be valid — and a list in which no entry is
 *   usable is an error naming them.
 *
 * Returns the config to give grpc-js (for a resolver's config, a copy
 * without the unknown fields) and the paths of the fields dropped. Throws
 * `ConfigError` naming the field path.
 */
export function readServiceConfig(
  config: unknown,
  context: string,
  options: ServiceConfigCheck = {},
): { config: ServiceConfigJson; ignoredFields: string[] } {
  if (!isJsonObject(config)) {
    throw new ConfigError(
      'service config',
      `expected a JSON object, got ${describe(config)}`,
      context,
    );
  }
  const lenient = options.origin === 'resolver';
  // A resolver's object is not ours to change: unknown fields are dropped from a copy.
  const obj = lenient ? structuredClone<Json>(config) : config;
  const ignored: { path: string; container: Json; key: string }[] = [];
  const ctx: ParseContext = lenient
    ? {
        unknownFields: 'ignore',
        onIgnored: (path, container, key) => ignored.push({ path, container, key }),
      }
    : STRICT;
  const lb = obj['loadBalancingConfig'];
  if (lb !== undefined && !Array.isArray(lb)) {
    throw new ConfigError('loadBalancingConfig', `expected an array, got ${describe(lb)}`, context);
  }
  const policy = obj['loadBalancingPolicy'];
  if (policy !== undefined && typeof policy !== 'string') {
    throw new ConfigError(
      'loadBalancingPolicy',
      `expected a policy name, got ${describe(policy)}`,
      context,
    );
  }
  try {
    const named = policyList(obj);
    if (named) checkPolicyList(named.list, named.field, ctx, options.foreignPolicy);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(error.field, error.problem, context);
    throw error;
  }
  const methodConfig = obj['methodConfig'];
  if (methodConfig !== undefined && !Array.isArray(methodConfig)) {
    throw new ConfigError(
      'methodConfig',
      `expected an array, got ${describe(methodConfig)}`,
      context,
    );
  }
  for (const { container, key } of ignored) delete container[key];
  return { config: obj, ignoredFields: ignored.map((i) => i.path) };
}

function checkPolicyList(
  list: readonly unknown[],
  listField: string,
  ctx: ParseContext,
  foreignPolicy: ServiceConfigCheck['foreignPolicy'],
): void {
  let usable = false;
  const unavailable: string[] = [];
  list.forEach((entry: unknown, i) => {
    const field = listField === 'loadBalancingConfig' ? `${listField}[${i}]` : listField;
    if (!isJsonObject(entry)) {
      throw new ConfigError(
        field,
        `expected an object with one policy name, got ${describe(entry)}`,
      );
    }
    const names = Object.keys(entry);
    if (names.length !== 1) {
      throw new ConfigError(field, `expected exactly one policy name, got ${names.length}`);
    }
    const name = names[0]!;
    const at = listField === 'loadBalancingConfig' ? `${field}.${name}` : field;
    if (name.startsWith(GRPC_LB_PREFIX)) {
      if (!Object.hasOwn(POLICY_PARSERS, name)) throw new ConfigError(field, unknownOurs(name));
      parseOurPolicy(name, entry[name], at, ctx);
      usable = true;
      return;
    }
    if (usable) return;
    if (!foreignPolicy) {
      usable = true;
      return;
    }
    let available: boolean;
    try {
      available = foreignPolicy(name, entry[name]);
    } catch (error) {
      throw new ConfigError(at, errorMessage(error));
    }
    if (available) usable = true;
    else unavailable.push(name);
  });
  if (!usable && list.length > 0) {
    throw new ConfigError(
      listField,
      `no policy listed is available here: ${unavailable.map((n) => `"${n}"`).join(', ')} ` +
        `(grpc-lb policies: ${Object.keys(POLICY_PARSERS).join(', ')}; or one grpc-js has, such as round_robin)`,
    );
  }
}

/**
 * `readServiceConfig` for a config the application wrote itself: unknown
 * fields are errors. Returns the config unchanged.
 */
export function checkServiceConfig(
  config: unknown,
  context: string,
  options: Omit<ServiceConfigCheck, 'origin'> = {},
): ServiceConfigJson {
  return readServiceConfig(config, context, options).config;
}

/** Parses the `grpc.service_config` channel option text; throws `ConfigError` on bad JSON. */
export function parseServiceConfigText(
  text: unknown,
  context: string,
  options: Omit<ServiceConfigCheck, 'origin'> = {},
): ServiceConfigJson {
  if (typeof text !== 'string') {
    throw new ConfigError(
      'grpc.service_config',
      `expected a JSON string, got ${describe(text)}`,
      context,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(
      'grpc.service_config',
      `not valid JSON (${(error as Error).message})`,
      context,
    );
  }
  return checkServiceConfig(json, context, options);
}

/**
 * The service config a channel gets: the given one, its `loadBalancingPolicy`
 * as a one-entry `loadBalancingConfig` (grpc-js 1.14 reads only the list),
 * and our round robin when it names no policy.
 */
export function withDefaultPolicy(config: ServiceConfigJson | undefined): ServiceConfigJson {
  const lb = config?.['loadBalancingConfig'];
  if (Array.isArray(lb) && lb.length > 0) return config!;
  const named = config ? policyList(config) : undefined;
  if (named) return { ...config, loadBalancingConfig: named.list };
  return { ...config, loadBalancingConfig: DEFAULT_LOAD_BALANCING_CONFIG };
}
