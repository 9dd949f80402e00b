import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from './errors';
import {
  checkServiceConfig,
  parseServiceConfigText,
  ROUND_ROBIN_POLICY,
  withDefaultPolicy,
} from './service-config';

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
