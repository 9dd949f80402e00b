import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from './errors';
import type { ResilienceConfig } from './resilience-config';
import { ROUND_ROBIN_POLICY } from './round-robin-config';
import {
  checkServiceConfig,
  parseOurPolicy,
  parseServiceConfigText,
  POLICY_PARSERS,
  readServiceConfig,
  withDefaultPolicy,
} from './service-config';
import { TRAFFIC_SPLIT_POLICY } from './traffic-split-config';

const TRAFFIC_SPLIT_BODY = {
  subsets: [{ name: 'all' }],
  routes: [{ split: [{ subset: 'all', weight: 1 }] }],
};

function rejects(fn: () => unknown, field: string, problem: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.code, 'BAD_CONFIG');
    assert.equal(e.field, field);
    assert.match(e.message, problem);
    return true;
  });
}

describe('service config checks', () => {
  test('accepts our policy and foreign ones', () => {
    const config = {
      loadBalancingConfig: [{ [ROUND_ROBIN_POLICY]: {} }, { pick_first: {} }],
      methodConfig: [],
    };
    assert.equal(checkServiceConfig(config, 'ctx'), config);
  });

  test('names the field of an unknown option of our policy', () => {
    rejects(
      () =>
        checkServiceConfig(
          { loadBalancingConfig: [{ [ROUND_ROBIN_POLICY]: { colour: 'red' } }] },
          'static:///x',
        ),
      `loadBalancingConfig[0].${ROUND_ROBIN_POLICY}.colour`,
      /^static:\/\/\/x: invalid loadBalancingConfig\[0\]\.grpc-lb\.round_robin\.colour: unknown field \(grpc-lb\.round_robin takes only the shared options outlierDetection, healthCheck, panicThreshold, slowStart, startupGraceMs, removalHoldDownMs, zoneAware, subsetting, limits, retryBudget\)$/,
    );
  });

  test('every policy of ours defaults to no panic threshold (0), and takes one when given', () => {
    for (const name of Object.keys(POLICY_PARSERS)) {
      const body = name === TRAFFIC_SPLIT_POLICY ? TRAFFIC_SPLIT_BODY : {};
      const parsed = parseOurPolicy(name, body) as { resilience: ResilienceConfig };
      assert.equal(parsed.resilience.panicThresholdPercent, 0, name);
      const envoy = parseOurPolicy(name, { ...body, panicThreshold: 50 }) as {
        resilience: ResilienceConfig;
      };
      assert.equal(envoy.resilience.panicThresholdPercent, 50, name);
    }
  });

  test('a grpc-lb policy name we do not know is an error naming it, with the closest one', () => {
    rejects(
      () => checkServiceConfig({ loadBalancingConfig: [{ 'grpc-lb.round_robbin': {} }] }, 'ctx'),
      'loadBalancingConfig[0]',
      /unknown grpc-lb policy "grpc-lb\.round_robbin" \(did you mean grpc-lb\.round_robin\?/,
    );
  });

  test('an unknown grpc-lb name is an error even before a known fallback: it is our namespace', () => {
    rejects(
      () =>
        checkServiceConfig(
          { loadBalancingConfig: [{ 'grpc-lb.future_policy': {} }, { round_robin: {} }] },
          'ctx',
        ),
      'loadBalancingConfig[0]',
      /unknown grpc-lb policy "grpc-lb\.future_policy"/,
    );
  });

  const GRPC_JS_BUILTINS = new Set(['pick_first', 'round_robin', 'outlier_detection']);
  const inGrpcJs = (name: string) => GRPC_JS_BUILTINS.has(name);

  test('a config whose every entry is unknown is an error naming them', () => {
    rejects(
      () =>
        checkServiceConfig(
          { loadBalancingConfig: [{ no_such_policy: {} }, { nor_this: {} }] },
          'ctx',
          { foreignPolicy: inGrpcJs },
        ),
      'loadBalancingConfig',
      /no policy listed is available here: "no_such_policy", "nor_this"/,
    );
  });

  test('an unknown foreign name followed by a known one is the usual fallback list', () => {
    for (const known of [{ round_robin: {} }, { [ROUND_ROBIN_POLICY]: {} }]) {
      const config = { loadBalancingConfig: [{ future_policy: {} }, known] };
      assert.deepEqual(checkServiceConfig(config, 'ctx', { foreignPolicy: inGrpcJs }), config);
    }
  });

  test('the config of the foreign policy that would be used must be one grpc-js accepts', () => {
    rejects(
      () =>
        checkServiceConfig({ loadBalancingConfig: [{ outlier_detection: { x: 1 } }] }, 'ctx', {
          foreignPolicy: (name) => {
            if (name === 'outlier_detection') throw new Error('child_policy is required');
            return true;
          },
        }),
      'loadBalancingConfig[0].outlier_detection',
      /child_policy is required/,
    );
  });

  test('loadBalancingPolicy (which grpc-js 1.14 ignores) counts as a one-entry loadBalancingConfig', () => {
    assert.deepEqual(withDefaultPolicy({ loadBalancingPolicy: 'ROUND_ROBIN' }), {
      loadBalancingPolicy: 'ROUND_ROBIN',
      loadBalancingConfig: [{ round_robin: {} }],
    });
    const both = { loadBalancingPolicy: 'pick_first', loadBalancingConfig: [{ round_robin: {} }] };
    assert.equal(withDefaultPolicy(both), both);
    rejects(
      () =>
        checkServiceConfig({ loadBalancingPolicy: 'no_such_policy' }, 'ctx', {
          foreignPolicy: inGrpcJs,
        }),
      'loadBalancingPolicy',
      /no policy listed is available here: "no_such_policy"/,
    );
    rejects(
      () => checkServiceConfig({ loadBalancingPolicy: 'grpc-lb.round_robbin' }, 'ctx'),
      'loadBalancingPolicy',
      /unknown grpc-lb policy "grpc-lb\.round_robbin"/,
    );
  });

  test('from a resolver, unknown fields of our policies are dropped and named; the rest is used', () => {
    const body = {
      subsets: [{ name: 'all', weightHint: 3 }],
      routes: [{ split: [{ subset: 'all', weight: 1 }], priority: 2 }],
      future_option: true,
      outlierDetection: {
        interval: '1s',
        ejectionJitter: '1s',
        baseEjectionTime: { seconds: 1, millis: 2 },
      },
    };
    const raw = { loadBalancingConfig: [{ [TRAFFIC_SPLIT_POLICY]: body }], methodConfig: [] };
    const before = structuredClone(raw);
    const { config, ignoredFields } = readServiceConfig(raw, 'ctx', { origin: 'resolver' });
    const at = `loadBalancingConfig[0].${TRAFFIC_SPLIT_POLICY}`;
    assert.deepEqual(ignoredFields.sort(), [
      `${at}.future_option`,
      `${at}.outlierDetection.baseEjectionTime.millis`,
      `${at}.outlierDetection.ejectionJitter`,
      `${at}.routes[0].priority`,
      `${at}.subsets[0].weightHint`,
    ]);
    const cleaned = {
      subsets: [{ name: 'all' }],
      routes: [{ split: [{ subset: 'all', weight: 1 }] }],
      outlierDetection: { interval: '1s', baseEjectionTime: { seconds: 1 } },
    };
    assert.deepEqual(config, {
      loadBalancingConfig: [{ [TRAFFIC_SPLIT_POLICY]: cleaned }],
      methodConfig: [],
    });
    assert.deepEqual(raw, before, "the resolver's object is left as it was");
    parseOurPolicy(TRAFFIC_SPLIT_POLICY, cleaned); // what the balancer will parse, strictly
    rejects(
      () => checkServiceConfig(raw, 'ctx'),
      `${at}.outlierDetection.ejectionJitter`,
      /unknown field/,
    );
  });

  test('from a resolver, a known field with a bad value is still an error', () => {
    rejects(
      () =>
        readServiceConfig(
          { loadBalancingConfig: [{ [ROUND_ROBIN_POLICY]: { panicThreshold: 150, colour: 1 } }] },
          'ctx',
          { origin: 'resolver' },
        ),
      `loadBalancingConfig[0].${ROUND_ROBIN_POLICY}.panicThreshold`,
      /integer 0-100/,
    );
  });

  test('rejects an entry with two policy names', () => {
    rejects(
      () => checkServiceConfig({ loadBalancingConfig: [{ a: {}, b: {} }] }, 'ctx'),
      'loadBalancingConfig[0]',
      /exactly one policy name, got 2/,
    );
  });

  test('rejects non-array loadBalancingConfig and methodConfig', () => {
    rejects(
      () => checkServiceConfig({ loadBalancingConfig: {} }, 'ctx'),
      'loadBalancingConfig',
      /expected an array/,
    );
    rejects(
      () => checkServiceConfig({ methodConfig: 'x' }, 'ctx'),
      'methodConfig',
      /expected an array/,
    );
    rejects(
      () => checkServiceConfig([], 'ctx'),
      'service config',
      /expected a JSON object, got an array/,
    );
  });

  test('bad JSON text names grpc.service_config', () => {
    rejects(
      () => parseServiceConfigText('{"loadBalancingConfig": [', 'ctx'),
      'grpc.service_config',
      /not valid JSON/,
    );
  });

  test('our round robin is the default only when no policy is named', () => {
    assert.deepEqual(withDefaultPolicy(undefined), {
      loadBalancingConfig: [{ [ROUND_ROBIN_POLICY]: {} }],
    });
    assert.deepEqual(withDefaultPolicy({ methodConfig: [] }), {
      methodConfig: [],
      loadBalancingConfig: [{ [ROUND_ROBIN_POLICY]: {} }],
    });
    const pickFirst = { loadBalancingConfig: [{ pick_first: {} }] };
    assert.equal(withDefaultPolicy(pickFirst), pickFirst);
  });
});
