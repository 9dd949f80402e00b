import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from './errors';
import { parseWeightedRoundRobinConfig } from './weighted-round-robin-config';

describe('parseWeightedRoundRobinConfig', () => {
  for (const json of [{}, undefined, null]) {
    test(`accepts ${JSON.stringify(json) ?? 'undefined'} as no options`, () => {
      assert.deepEqual(parseWeightedRoundRobinConfig(json), {});
    });
  }

  const invalid: [unknown, string, RegExp][] = [
    [{ x: 1 }, 'grpc-lb.weighted_round_robin.x', /unknown field/],
    [[], 'grpc-lb.weighted_round_robin', /expected an object, got an array/],
    ['fast', 'grpc-lb.weighted_round_robin', /expected an object, got the string "fast"/],
  ];
  for (const [json, field, reason] of invalid) {
    test(`rejects ${JSON.stringify(json)}, naming ${field}`, () => {
      assert.throws(
        () => parseWeightedRoundRobinConfig(json),
        (e: unknown) =>
          e instanceof ConfigError &&
          e.code === 'BAD_CONFIG' &&
          e.field === field &&
          reason.test(e.message) &&
          e.message.includes(field),
      );
    });
  }
});
