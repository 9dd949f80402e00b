/**
 * `methodConfig.retryPolicy` on grpc-lb channels, against real backends. Our
 * ConfigSelector replaces grpc-js's own, so it is what hands each call its
 * retry policy: these tests count the attempts each backend received.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  LoadBalancerObserver,
  ManualEndpoints,
  OBSERVER_OPTION,
  register,
  roundRobin,
  serviceConfig,
  trafficSplit,
  type LoadBalancingConfigJson,
  type TrafficSplitBuilder,
} from '@grpc-lb/core';
import {
  type Backend,
  type BackendSet,
  type GreeterClient,
  isServiceError,
  loadGreeterService,
  sayGoodbye,
  sayHello,
  startBackends,
  waitFor,
} from './harness';

register({ grpc });
const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();

function retryPolicy(maxAttempts: number, codes: readonly string[] = ['UNAVAILABLE']) {
  return {
    maxAttempts,
    initialBackoff: '0.01s',
    maxBackoff: '0.02s',
    backoffMultiplier: 2,
    retryableStatusCodes: codes,
  };
}

/** A service config retrying SayHello (only) up to `maxAttempts` times. */
function configText(
  maxAttempts: number,
  policy: LoadBalancingConfigJson | TrafficSplitBuilder = roundRobin(),
  codes?: readonly string[],
): string {
  return JSON.stringify(
    serviceConfig(policy, {
      methodConfig: [
        {
          name: [{ service: 'grpclb.test.Greeter', method: 'SayHello' }],
          retryPolicy: retryPolicy(maxAttempts, codes),
        },
      ],
    }),
  );
}

async function callCode(client: GreeterClient, call = sayHello): Promise<grpc.status> {
  try {
    await call(client, 'x');
    return grpc.status.OK;
  } catch (e) {
    if (!isServiceError(e)) throw e;
    return e.code;
  }
}

/** SayHello attempts the backend received since its last resetStats(). */
async function attempts(backend: Backend): Promise<number> {
  return (await backend.stats()).calls.SayHello;
}

describe('methodConfig retryPolicy on a grpc-lb channel (one backend)', () => {
  let set: BackendSet;
  let backend: Backend;
  before(async () => {
    set = await startBackends({ count: 1 });
    backend = set.backends[0]!;
  });
  after(() => set.stopAll());

  function client(text: string): GreeterClient {
    return new Greeter(`static:///${backend.address}`, insecure, {
      'grpc.service_config': text,
      // A channel of its own, so that no other test's connection or config is shared.
      'grpc.use_local_subchannel_pool': 1,
    });
  }

  test('a backend failing every second attempt: every call succeeds, each failure retried once', async () => {
    const c = client(configText(3));
    try {
      await sayHello(c, 'warm', { waitForReady: true });
      await backend.resetStats();
      await backend.setFailRate(0.5);
      const codes: grpc.status[] = [];
      for (let i = 0; i < 40; i++) codes.push(await callCode(c));
      assert.deepEqual(
        codes.filter((code) => code !== grpc.status.OK),
        [],
      );
      const stats = await backend.stats();
      assert.ok(stats.failedCalls >= 39, `failed attempts ${stats.failedCalls}`);
      assert.equal(stats.calls.SayHello, 40 + stats.failedCalls, 'each failed attempt retried');
    } finally {
      await backend.setFailRate(0);
      c.close();
    }
  });

  test('the same backend without a retry policy: half the calls fail (what the retries hid)', async () => {
    const c = client(JSON.stringify(serviceConfig(roundRobin())));
    try {
      await sayHello(c, 'warm', { waitForReady: true });
      await backend.setFailRate(0.5);
      const codes: grpc.status[] = [];
      for (let i = 0; i < 40; i++) codes.push(await callCode(c));
      assert.equal(codes.filter((code) => code === grpc.status.UNAVAILABLE).length, 20);
    } finally {
      await backend.setFailRate(0);
      c.close();
    }
  });

  for (const [maxAttempts, expected] of [
    [2, 2],
    [4, 4],
    // gRFC A6: at most 5 attempts, whatever the config says.
    [9, 5],
  ] as const) {
    test(`maxAttempts ${maxAttempts}: a call to a backend failing every attempt is tried exactly ${expected} times, then fails with its status`, async () => {
      const c = client(configText(maxAttempts));
      try {
        await sayHello(c, 'warm', { waitForReady: true });
        await backend.setFailRate(1);
        await backend.resetStats();
        assert.equal(await callCode(c), grpc.status.UNAVAILABLE);
        assert.equal(await attempts(backend), expected);
        // The policy names SayHello only: SayGoodbye is tried once.
        await backend.resetStats();
        assert.equal(await callCode(c, sayGoodbye), grpc.status.UNAVAILABLE);
        assert.equal((await backend.stats()).calls.SayGoodbye, 1);
      } finally {
        await backend.setFailRate(0);
        c.close();
      }
    });
  }

  test('a status not in retryableStatusCodes is not retried', async () => {
    const c = client(configText(4));
    try {
      await sayHello(c, 'warm', { waitForReady: true });
      await backend.setFailRate(1, grpc.status.RESOURCE_EXHAUSTED);
      await backend.resetStats();
      assert.equal(await callCode(c), grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(await attempts(backend), 1);
    } finally {
      await backend.setFailRate(0);
      c.close();
    }
  });
});

describe('methodConfig retryPolicy from a resolver, changed while the channel runs', () => {
  test('the new maxAttempts applies to the next call, without reconnecting', async () => {
    const set = await startBackends({ count: 1 });
    const backend = set.backends[0]!;
    const endpoints = [{ host: backend.host, port: backend.port }];
    const manual = new ManualEndpoints({ endpoints, serviceConfig: configText(2) });
    const observer = new LoadBalancerObserver();
    const c = new Greeter(manual.target, insecure, {
      [OBSERVER_OPTION]: observer,
      'grpc.use_local_subchannel_pool': 1,
    });
    const maxAttemptsInForce = (): unknown => {
      const config = observer.serviceConfigs()[0]?.config as
        { methodConfig?: { retryPolicy?: { maxAttempts?: number } }[] } | undefined;
      return config?.methodConfig?.[0]?.retryPolicy?.maxAttempts;
    };
    try {
      await sayHello(c, 'warm', { waitForReady: true });
      await backend.setFailRate(1);
      await backend.resetStats();
      assert.equal(await callCode(c), grpc.status.UNAVAILABLE);
      assert.equal(await attempts(backend), 2);

      manual.update({ endpoints, serviceConfig: configText(4) });
      await waitFor(() => maxAttemptsInForce() === 4, {
        timeoutMs: 5000,
        message: 'the channel follows the new config',
      });
      await backend.resetStats();
      assert.equal(await callCode(c), grpc.status.UNAVAILABLE);
      assert.equal(await attempts(backend), 4);
      assert.equal((await backend.stats()).connectionsAccepted, 0, 'no new connection');
    } finally {
      await backend.setFailRate(0);
      c.close();
      manual.dispose();
      await set.stopAll();
    }
  });
});

describe('methodConfig retryPolicy under traffic split', () => {
  test('a regex route to a subset whose one endpoint fails: retries go to another endpoint of the subset; maxAttempts still bounds them', async () => {
    const set = await startBackends({ count: 3 });
    const [a, b, other] = set.backends as [Backend, Backend, Backend];
    const endpoints = [
      { host: a.host, port: a.port, labels: { version: 'v1' } },
      { host: b.host, port: b.port, labels: { version: 'v1' } },
      { host: other.host, port: other.port, labels: { version: 'v2' } },
    ];
    const split = trafficSplit()
      .subset('v1', { version: 'v1' })
      .subset('v2', { version: 'v2' })
      .route({ regex: '/grpclb\\.test\\.Greeter/Say(Hello|Hi)' }, { v1: 1 })
      .defaultRoute({ v2: 1 });
    const manual = new ManualEndpoints({ endpoints, serviceConfig: configText(3, split) });
    const c = new Greeter(manual.target, insecure, { 'grpc.use_local_subchannel_pool': 1 });
    try {
      await sayHello(c, 'warm', { waitForReady: true });
      await a.setFailRate(1);
      for (const backend of set.backends) await backend.resetStats();
      const codes: grpc.status[] = [];
      for (let i = 0; i < 30; i++) codes.push(await callCode(c));
      assert.deepEqual(
        codes.filter((code) => code !== grpc.status.OK),
        [],
      );
      assert.equal(await attempts(b), 30, 'every call answered by the healthy v1 endpoint');
      assert.ok((await a.stats()).failedCalls > 0, 'the failing one was tried');
      assert.equal(await attempts(other), 0, 'no SayHello left the route');

      // Both v1 endpoints failing: 3 attempts, all within v1.
      await b.setFailRate(1);
      for (const backend of set.backends) await backend.resetStats();
      assert.equal(await callCode(c), grpc.status.UNAVAILABLE);
      assert.equal((await attempts(a)) + (await attempts(b)), 3);
      assert.equal(await attempts(other), 0);
    } finally {
      c.close();
      manual.dispose();
      await set.stopAll();
    }
  });
});
