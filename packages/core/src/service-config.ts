import { ConfigError, describe } from './errors';
import { STRICT, type Json, type ParseContext } from './json-fields';
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

/**
 * Checks the parts of a service config that grpc-js would otherwise get
 * wrong silently: the shape of `loadBalancingConfig`, and the body of every
 * entry that names one of our policies (grpc-js drops an entry it cannot
 * parse and falls back to pick_first, logging only at DEBUG). Throws
 * `ConfigError` naming the field path.
 */
export function checkServiceConfig(config: unknown, context: string): ServiceConfigJson {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigError(
      'service config',
      `expected a JSON object, got ${describe(config)}`,
      context,
    );
  }
  const obj = config as Record<string, unknown>;
  const lb = obj['loadBalancingConfig'];
  if (lb !== undefined) {
    if (!Array.isArray(lb)) {
      throw new ConfigError(
        'loadBalancingConfig',
        `expected an array, got ${describe(lb)}`,
        context,
      );
    }
    lb.forEach((entry: unknown, i) => {
      const field = `loadBalancingConfig[${i}]`;
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw new ConfigError(
          field,
          `expected an object with one policy name, got ${describe(entry)}`,
          context,
        );
      }
      const names = Object.keys(entry);
      if (names.length !== 1) {
        throw new ConfigError(
          field,
          `expected exactly one policy name, got ${names.length}`,
          context,
        );
      }
      const name = names[0]!;
      if (Object.hasOwn(POLICY_PARSERS, name)) {
        try {
          parseOurPolicy(name, (entry as Record<string, unknown>)[name], `${field}.${name}`);
        } catch (error) {
          if (error instanceof ConfigError) {
            throw new ConfigError(error.field, error.problem, context);
          }
          throw error;
        }
      }
    });
  }
  const methodConfig = obj['methodConfig'];
  if (methodConfig !== undefined && !Array.isArray(methodConfig)) {
    throw new ConfigError(
      'methodConfig',
      `expected an array, got ${describe(methodConfig)}`,
      context,
    );
  }
  return obj;
}

/** Parses the `grpc.service_config` channel option text; throws `ConfigError` on bad JSON. */
export function parseServiceConfigText(text: unknown, context: string): ServiceConfigJson {
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
  return checkServiceConfig(json, context);
}

/** The service config a channel gets: the given one, with our round robin when it names no policy. */
export function withDefaultPolicy(config: ServiceConfigJson | undefined): ServiceConfigJson {
  const lb = config?.['loadBalancingConfig'];
  if (Array.isArray(lb) && lb.length > 0) return config!;
  if (config?.['loadBalancingPolicy'] !== undefined) return config;
  return { ...config, loadBalancingConfig: DEFAULT_LOAD_BALANCING_CONFIG };
}
