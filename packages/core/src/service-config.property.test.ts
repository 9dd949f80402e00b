/**
 * Properties of reading our policies' configs: a resolver's config with
 * unknown fields added anywhere reads as the config without them, naming
 * exactly those fields, while the channel option refuses it; and any mix of
 * camelCase and snake_case option names parses the same.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from './errors';
import { snakeCase, type Json } from './json-fields';
import { LEAST_REQUEST_POLICY } from './least-request-config';
import { ROUND_ROBIN_POLICY } from './round-robin-config';
import { checkServiceConfig, parseOurPolicy, readServiceConfig } from './service-config';
import { TRAFFIC_SPLIT_POLICY } from './traffic-split-config';
import { WEIGHTED_ROUND_ROBIN_POLICY } from './weighted-round-robin-config';

const OUTLIER = {
  interval: '2s',
  baseEjectionTime: { seconds: 10, nanos: 0 },
  maxEjectionPercent: 20,
  failurePercentageEjection: { threshold: 60, minimumHosts: 2 },
};

/** Valid bodies of each of our policies, using most option groups. */
const BODIES: readonly [string, Json][] = [
  [ROUND_ROBIN_POLICY, { outlierDetection: OUTLIER, healthCheck: { serviceName: 'svc' } }],
  [WEIGHTED_ROUND_ROBIN_POLICY, { slowStart: { window: '30s', minWeightPercent: 5 } }],
  [LEAST_REQUEST_POLICY, { choiceCount: 3, defaultLatency: '0.1s', panicThreshold: 30 }],
  [
    TRAFFIC_SPLIT_POLICY,
    {
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'v2', labels: { version: 'v2' }, policy: 'weighted_round_robin' },
      ],
      routes: [
        {
          match: { prefix: '/a.B/', headers: [{ name: 'x-canary', exact: '1' }] },
          split: [{ subset: 'v2', weight: 1 }],
        },
        {
          split: [
            { subset: 'v1', weight: 9 },
            { subset: 'v2', weight: 1 },
          ],
        },
      ],
      subsetPolicy: 'round_robin',
      onEmptySubset: 'fail',
      outlierDetection: OUTLIER,
    },
  ],
];

/** Every object of a body whose keys are option names (label maps hold free-form keys), with its path. */
function fieldObjects(value: unknown, path: string, out: { path: string; obj: Json }[] = []) {
  if (Array.isArray(value)) {
    value.forEach((item, i) => fieldObjects(item, `${path}[${i}]`, out));
  } else if (typeof value === 'object' && value !== null) {
    const obj = value as Json;
    out.push({ path, obj });
    for (const [key, child] of Object.entries(obj)) {
      if (key !== 'labels') fieldObjects(child, `${path}.${key}`, out);
    }
  }
  return out;
}

/** `value` with every option name for which `toSnake` says so written in snake_case. */
function respell(value: unknown, toSnake: () => boolean): unknown {
  if (Array.isArray(value)) return value.map((item) => respell(item, toSnake));
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, child]) => [
      toSnake() ? snakeCase(key) : key,
      key === 'labels' ? child : respell(child, toSnake),
    ]),
  );
}

describe('service config properties', () => {
  test('unknown fields added anywhere in a resolver config are dropped and named exactly; the channel option refuses them', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...BODIES),
        fc.array(fc.tuple(fc.nat(), fc.jsonValue({ maxDepth: 2 })), { minLength: 1, maxLength: 6 }),
        ([name, body], additions) => {
          const config = { loadBalancingConfig: [{ [name]: structuredClone(body) }] };
          const prefix = `loadBalancingConfig[0].${name}`;
          const targets = fieldObjects(config.loadBalancingConfig[0]![name], prefix);
          const added: string[] = [];
          additions.forEach(([where, value], i) => {
            const target = targets[where % targets.length]!;
            const key = `zz_unknown${i}`;
            target.obj[key] = value;
            added.push(`${target.path}.${key}`);
          });
          const read = readServiceConfig(config, 'ctx', { origin: 'resolver' });
          assert.deepEqual(read.config, { loadBalancingConfig: [{ [name]: body }] });
          assert.deepEqual([...read.ignoredFields].sort(), [...added].sort());
          assert.throws(
            () => checkServiceConfig(config, 'ctx'),
            (e: unknown) => e instanceof ConfigError && added.includes(e.field),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  test('any mix of camelCase and snake_case option names parses the same', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...BODIES),
        fc.infiniteStream(fc.boolean()),
        ([name, body], coins) => {
          const respelled = respell(body, () => coins.next().value as boolean);
          assert.deepEqual(parseOurPolicy(name, respelled), parseOurPolicy(name, body));
        },
      ),
      { numRuns: 300 },
    );
  });
});
