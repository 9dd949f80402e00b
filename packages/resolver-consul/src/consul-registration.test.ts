import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '@grpc-lb/core';
import { registrationBody } from './consul-registration';

test('registrationBody: a gRPC check against host:port, weights, tags, meta', () => {
  const { body, id, address, ttlMs } = registrationBody({
    name: 'hello',
    host: '10.0.0.7',
    port: 50051,
    tags: ['v2'],
    meta: { version: 'v2' },
    weights: { passing: 3 },
    check: { grpc: { interval: 2_000 } },
    deregisterCriticalServiceAfter: '1m',
  });
  assert.equal(id, 'hello-10.0.0.7-50051');
  assert.equal(address, '10.0.0.7:50051');
  assert.equal(ttlMs, undefined);
  assert.deepEqual(body, {
    ID: 'hello-10.0.0.7-50051',
    Name: 'hello',
    Address: '10.0.0.7',
    Port: 50051,
    Tags: ['v2'],
    Meta: { version: 'v2' },
    Weights: { Passing: 3, Warning: 1 },
    Check: { GRPC: '10.0.0.7:50051', Interval: '2000ms', DeregisterCriticalServiceAfter: '1m' },
  });
});

test('registrationBody: a TTL check starts passing; the host defaults to $POD_IP', () => {
  const { body, ttlMs } = registrationBody(
    { name: 'hello', id: 'h1', port: 1, check: { ttl: '9s' } },
    { POD_IP: 'fd00::5' },
  );
  assert.equal(ttlMs, 9_000);
  assert.deepEqual(body, {
    ID: 'h1',
    Name: 'hello',
    Address: 'fd00::5',
    Port: 1,
    Check: { TTL: '9s', Status: 'passing' },
  });
});

test('registrationBody rejects bad options, naming the field', () => {
  const base = { name: 'hello', host: '10.0.0.1', port: 1 };
  const table: [Record<string, unknown>, Record<string, string>, RegExp][] = [
    [{ name: 'a/b' }, {}, /invalid name/],
    [{ host: undefined }, {}, /invalid host: no host given and \$POD_IP is not set/],
    [{ host: 'not a host' }, {}, /invalid host/],
    [{ port: 0 }, {}, /invalid port/],
    [{ id: 'a/b' }, {}, /invalid id/],
    [{ weights: { passing: 0 } }, {}, /invalid weights.passing: Consul requires at least 1/],
    [{ weights: { passing: 1, warning: 1.5 } }, {}, /invalid weights.warning/],
    [{ check: { ttl: 'soon' } }, {}, /invalid check.ttl/],
    [{ check: { grpc: { interval: -1 } } }, {}, /invalid check.grpc.interval/],
    [{ check: {} }, {}, /invalid check/],
    [{ deregisterCriticalServiceAfter: '1m' }, {}, /deregisterCriticalServiceAfter: needs a check/],
  ];
  for (const [override, env, problem] of table) {
    assert.throws(
      () => registrationBody({ ...base, ...override }, env),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, JSON.stringify(override));
        assert.match(error.message, problem);
        return true;
      },
    );
  }
});
