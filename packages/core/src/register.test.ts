import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { ConfigError, RegistrationError, UnsupportedGrpcJsError } from './errors';
import { isSupportedGrpcJsVersion, SUPPORTED_GRPC_JS_RANGE } from './grpc-js/runtime';
import { register } from './register';
import type { ResolverFactory } from './resolver-contract';
import { CONSISTENT_HASH_POLICY } from './consistent-hash-config';
import { LEAST_REQUEST_POLICY } from './least-request-config';
import { ROUND_ROBIN_POLICY } from './round-robin-config';
import { TRAFFIC_SPLIT_POLICY } from './traffic-split-config';
import { WEIGHTED_ROUND_ROBIN_POLICY } from './weighted-round-robin-config';

describe('register()', () => {
  test('installs static:, manual: and our policies, and is idempotent', () => {
    const first = register({ grpc });
    const second = register({ grpc });
    assert.deepEqual(second, first);
    const manifest = fs.readFileSync(require.resolve('@grpc/grpc-js/package.json'), 'utf8');
    assert.equal(first.grpcJsVersion, (JSON.parse(manifest) as { version: string }).version);
    assert.deepEqual([...first.schemes].sort(), ['composite', 'manual', 'static']);
    assert.deepEqual(first.policies, [
      ROUND_ROBIN_POLICY,
      WEIGHTED_ROUND_ROBIN_POLICY,
      TRAFFIC_SPLIT_POLICY,
      LEAST_REQUEST_POLICY,
      CONSISTENT_HASH_POLICY,
    ]);
    for (const policy of first.policies)
      assert.ok(grpc.experimental.isLoadBalancerNameRegistered(policy), policy);
  });

  test('defaults to the peer grpc-js, the same copy as the application here', () => {
    assert.deepEqual(register(), register({ grpc }));
  });

  test('refuses a grpc-js outside the supported range, naming the range', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpc-lb-old-grpc-'));
    try {
      const pkg = path.join(dir, 'node_modules', '@grpc', 'grpc-js');
      fs.mkdirSync(pkg, { recursive: true });
      fs.writeFileSync(
        path.join(pkg, 'package.json'),
        JSON.stringify({ name: '@grpc/grpc-js', version: '1.13.4' }),
      );
      fs.writeFileSync(path.join(pkg, 'index.js'), 'module.exports = { experimental: {} };');
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const old = require(path.join(pkg, 'index.js')) as typeof grpc;
      assert.throws(
        () => register({ grpc: old }),
        (e: unknown) =>
          e instanceof UnsupportedGrpcJsError &&
          e.code === 'UNSUPPORTED_GRPC_JS' &&
          e.version === '1.13.4' &&
          e.message.includes(SUPPORTED_GRPC_JS_RANGE),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('refuses a copy of an older grpc-js module whose version cannot be read, naming what it lacks', () => {
    // A spread copy is not found in the module cache, so its package.json cannot be read: only
    // what the object can do tells that it is older than 1.14 (1.13 has no statusOrFromValue).
    const { statusOrFromValue: _, ...experimental113 } = grpc.experimental;
    const copy = { ...grpc, experimental: experimental113 } as unknown as typeof grpc;
    assert.throws(
      () => register({ grpc: copy }),
      (e: unknown) =>
        e instanceof UnsupportedGrpcJsError &&
        e.code === 'UNSUPPORTED_GRPC_JS' &&
        e.message.includes('experimental.statusOrFromValue') &&
        e.message.includes(SUPPORTED_GRPC_JS_RANGE),
    );
  });

  test('replacing a grpc-js built-in scheme is an explicit opt-in', () => {
    const dns: ResolverFactory<string> = {
      scheme: 'dns',
      parseTarget: () => {
        throw new Error('unused');
      },
      defaultAuthority: () => 'x',
      create: () => {
        throw new Error('unused');
      },
    };
    assert.throws(
      () => register({ grpc, resolvers: [dns] }),
      (e: unknown) => e instanceof RegistrationError && /replaceBuiltinSchemes/.test(e.message),
    );
  });

  test('supported versions are 1.14.x', () => {
    for (const v of ['1.14.0', '1.14.7', '1.14.12-pre.1'])
      assert.ok(isSupportedGrpcJsVersion(v), v);
    for (const v of ['1.13.4', '1.15.0', '2.14.0', '1.1.40', 'garbage'])
      assert.ok(!isSupportedGrpcJsVersion(v), v);
  });

  test('a logger that throws is contained: the channel goes on, the warning is not retried', async () => {
    let calls = 0;
    register({
      grpc,
      logger: {
        warn: () => {
          calls++;
          throw new Error('logger down');
        },
      },
    });
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => void uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    // zoneAware with no zone known warns once per channel, from inside the balancer.
    const client = new grpc.Client('static:///127.0.0.1:1', grpc.credentials.createInsecure(), {
      'grpc.service_config': JSON.stringify({
        loadBalancingConfig: [{ [ROUND_ROBIN_POLICY]: { zoneAware: {} } }],
      }),
    });
    try {
      const channel = client.getChannel();
      channel.getConnectivityState(true);
      for (let i = 0; i < 200 && calls === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(calls, 1, 'the balancer warned through the logger once');
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(uncaught, []);
      assert.notEqual(
        channel.getConnectivityState(false),
        grpc.connectivityState.SHUTDOWN,
        'the channel still works',
      );
    } finally {
      client.close();
      process.off('uncaughtException', onUncaught);
      register({ grpc, logger: { warn: () => {} } });
    }
  });

  test('zone: a non-empty name, or a ConfigError naming the option', () => {
    for (const zone of ['', 3 as unknown as string]) {
      assert.throws(
        () => register({ grpc, zone }),
        (e: unknown) => e instanceof ConfigError && /zone/.test(e.message),
      );
    }
    register({ grpc, zone: 'eu-west-1a' });
  });
});
