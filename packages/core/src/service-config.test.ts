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
      /^static:\/\/\/x: invalid loadBalancingConfig\[0\]\.grpc-lb\.round_robin\.colour: unknown field \(grpc-lb\.round_robin takes only the shared options outlierDetection, healthCheck, panicThreshold, slowStart\)$/,
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
