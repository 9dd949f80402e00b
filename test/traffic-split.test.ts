/**
 * grpc-lb.traffic_split and grpc-lb.weighted_round_robin against real backends labelled v1/v2/v3.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  ConfigError,
  ManualEndpoints,
  register,
  serviceConfig,
  trafficSplit,
  TRAFFIC_SPLIT_POLICY,
  weightedRoundRobin,
  type ResolvedEndpoint,
} from '@grpc-lb/core';
import {
  type Backend,
  type BackendSet,
  type GreeterClient,
  type HelloReply,
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
const SAY_HELLO = '/grpclb.test.Greeter/SayHello';
const GREETER_PREFIX = '/grpclb.test.Greeter/';

function labelled(set: BackendSet): ResolvedEndpoint[] {
  return set.backends.map((b) => ({ host: b.host, port: b.port, labels: b.labels }));
}

function split301060() {
  return trafficSplit()
    .subset('v1', { version: 'v1' })
    .subset('v2', { version: 'v2' })
    .subset('v3', { version: 'v3' })
    .route({ method: SAY_HELLO }, { v1: 30, v2: 60, v3: 10 }, { name: 'say-hello' })
    .defaultRoute({ v2: 100 });
}

type Call = (
  client: GreeterClient,
  name: string,
  options?: { metadata?: grpc.Metadata },
) => Promise<HelloReply>;

/** Drives `calls` calls and counts replies by the backend's `version` label. */
async function versions(
  client: GreeterClient,
  calls: number,
  call: Call = sayHello,
  metadata?: grpc.Metadata,
) {
  const counts: Record<string, number> = {};
  const errors: grpc.ServiceError[] = [];
  let issued = 0;
  const worker = async () => {
    while (issued < calls) {
      issued++;
      try {
        const reply = await call(client, 'split', metadata ? { metadata } : {});
        const version = reply.labels['version'] ?? '?';
        counts[version] = (counts[version] ?? 0) + 1;
      } catch (error) {
        if (!isServiceError(error)) throw error;
        errors.push(error);
      }
    }
  };
  await Promise.all(Array.from({ length: 10 }, worker));
  return { counts, errors };
}

/**
 * Calls until every version in `wanted` has answered. While a subset of a new channel is still
 * connecting, its share goes to the others (so nothing waits on it); shares are exact from the
 * moment every subset is READY, which is what the exact-share assertions measure.
 */
async function untilAnswered(client: GreeterClient, wanted: readonly string[]): Promise<void> {
  await waitFor(
    async () => {
      const { counts } = await versions(client, 20);
      return wanted.every((version) => (counts[version] ?? 0) > 0);
    },
    { timeoutMs: 10_000, message: `${wanted.join(', ')} to answer` },
  );
}

function assertShares(
  counts: Record<string, number>,
  expected: Record<string, number>,
  total: number,
): void {
  for (const [version, share] of Object.entries(expected)) {
    const actual = (counts[version] ?? 0) / total;
    assert.ok(
      Math.abs(actual - share) <= 0.005,
      `${version}: share ${actual.toFixed(4)}, expected ${share} ±0.005 (counts ${JSON.stringify(counts)})`,
    );
  }
}

describe('traffic split with real backends', () => {
  let set: BackendSet;
  let v1: Backend, v2: Backend, v3: Backend;
  before(async () => {
    set = await startBackends({
      count: 3,
      greetings: ['Hello', 'Bonjour', 'Hola'],
      labels: [{ version: 'v1' }, { version: 'v2' }, { version: 'v3' }],
    });
    [v1, v2, v3] = set.backends as [Backend, Backend, Backend];
  });
  after(async () => {
    await set.stopAll();
  });

  test('splits SayHello 30/60/10 within ±0.5 points over 10,000 calls; SayGoodbye goes 100% to v2', async () => {
    const target = `static:///${set.backends.map((b) => `${b.address};version=${b.labels['version']}`).join(',')}`;
    const client = new Greeter(target, insecure, {
      'grpc.service_config': JSON.stringify(serviceConfig(split301060())),
    });
    try {
      await untilAnswered(client, ['v1', 'v2', 'v3']);
      const hello = await versions(client, 10_000);
      assert.equal(hello.errors.length, 0);
      assertShares(hello.counts, { v1: 0.3, v2: 0.6, v3: 0.1 }, 10_000);
      const goodbye = await versions(client, 1000, sayGoodbye);
      assert.deepEqual(goodbye.counts, { v2: 1000 });
      for (const backend of set.backends) assert.equal((await backend.stats()).connectionsOpen, 1);
    } finally {
      client.close();
    }
  });

  test('a header match sends canary calls to v3; others take the default route', async () => {
    const config = trafficSplit()
      .subset('v1', { version: 'v1' })
      .subset('v3', { version: 'v3' })
      .route({ prefix: GREETER_PREFIX, headers: [{ name: 'x-canary', exact: 'yes' }] }, { v3: 100 })
      .route({ prefix: '/other.Service/' }, { v3: 100 })
      .defaultRoute({ v1: 100 });
    const manual = new ManualEndpoints(labelled(set));
    const client = new Greeter(manual.target, insecure, {
      'grpc.service_config': JSON.stringify(serviceConfig(config)),
    });
    try {
      const canary = new grpc.Metadata();
      canary.set('x-canary', 'yes');
      assert.deepEqual((await versions(client, 200, sayHello, canary)).counts, { v3: 200 });
      assert.deepEqual((await versions(client, 200, sayGoodbye, canary)).counts, { v3: 200 });
      const other = new grpc.Metadata();
      other.set('x-canary', 'no');
      assert.deepEqual((await versions(client, 200, sayHello, other)).counts, { v1: 200 });
      assert.deepEqual((await versions(client, 200)).counts, { v1: 200 });
    } finally {
      client.close();
      manual.dispose();
    }
  });

  test('new weights from the resolver move traffic at once, without a new connection', async () => {
    for (const backend of set.backends) await backend.resetStats();
    const manual = new ManualEndpoints({
      endpoints: labelled(set),
      serviceConfig: serviceConfig(split301060()),
    });
    const client = new Greeter(manual.target, insecure);
    try {
      await untilAnswered(client, ['v1', 'v2', 'v3']);
      assertShares((await versions(client, 2000)).counts, { v1: 0.3, v2: 0.6, v3: 0.1 }, 2000);
      const shifted = trafficSplit()
        .subset('v1', { version: 'v1' })
        .subset('v2', { version: 'v2' })
        .subset('v3', { version: 'v3' })
        .route({ method: SAY_HELLO }, { v1: 10, v2: 20, v3: 70 });
      manual.update({ endpoints: labelled(set), serviceConfig: serviceConfig(shifted) });
      // Applied asynchronously: wait until a batch shows the new split, then measure.
      await waitFor(async () => ((await versions(client, 100)).counts['v3'] ?? 0) >= 60, {
        timeoutMs: 5000,
        message: 'the new weights take effect',
      });
      const after = await versions(client, 2000);
      assertShares(after.counts, { v1: 0.1, v2: 0.2, v3: 0.7 }, 2000);
      for (const backend of set.backends) {
        const stats = await backend.stats();
        assert.equal(stats.connectionsAccepted, 1, `${backend.address}: no reconnection`);
      }
    } finally {
      client.close();
      manual.dispose();
    }
  });

  test("a subset with no endpoint gives its share to the route's others", async () => {
    const manual = new ManualEndpoints(labelled(set).filter((e) => e.labels?.['version'] !== 'v3'));
    const client = new Greeter(manual.target, insecure, {
      'grpc.service_config': JSON.stringify(serviceConfig(split301060())),
    });
    try {
      await untilAnswered(client, ['v1', 'v2']);
      const { counts, errors } = await versions(client, 3000);
      assert.equal(errors.length, 0);
      assertShares(counts, { v1: 1 / 3, v2: 2 / 3, v3: 0 }, 3000);
    } finally {
      client.close();
      manual.dispose();
    }
  });

  test('with onEmptySubset "fail", the empty subset\'s share fails with UNAVAILABLE naming it', async () => {
    const manual = new ManualEndpoints(labelled(set).filter((e) => e.labels?.['version'] !== 'v3'));
    const client = new Greeter(manual.target, insecure, {
      'grpc.service_config': JSON.stringify(serviceConfig(split301060().onEmptySubset('fail'))),
    });
    try {
      await untilAnswered(client, ['v1', 'v2']);
      const { counts, errors } = await versions(client, 2000);
      assert.ok(
        Math.abs(errors.length / 2000 - 0.1) <= 0.005,
        `${errors.length} failed calls, expected ~200`,
      );
      for (const error of errors) {
        assert.equal(error.code, grpc.status.UNAVAILABLE);
        assert.match(
          error.details,
          /subset "v3" \(version=v3\) of manual:\/\/\/\S+ has no endpoints \(route "say-hello"\)/,
        );
      }
      assertShares(counts, { v1: 0.3, v2: 0.6 }, 2000);
    } finally {
      client.close();
      manual.dispose();
    }
  });

  test('a killed backend empties its subset and its share moves, then returns after a restart', async () => {
    const client = new Greeter(
      `static:///${set.backends.map((b) => `${b.address};version=${b.labels['version']}`).join(',')}`,
      insecure,
      { 'grpc.service_config': JSON.stringify(serviceConfig(split301060())) },
    );
    try {
      assert.equal((await versions(client, 100)).errors.length, 0);
      await v3.kill();
      // Calls in flight on v3 when it died may fail; then v3's subset reports empty.
      let settled = false;
      for (let i = 0; i < 50 && !settled; i++)
        settled = (await versions(client, 50)).errors.length === 0;
      assert.ok(settled, 'calls succeed after the kill');
      const during = await versions(client, 1500);
      assert.equal(during.errors.length, 0);
      assert.equal(during.counts['v3'], undefined);
      assertShares(during.counts, { v1: 1 / 3, v2: 2 / 3 }, 1500);
    } finally {
      client.close();
      await v3.restart();
    }
  });

  test('method timeouts and retries still apply under traffic split', async () => {
    const config = serviceConfig(
      trafficSplit()
        .subset('v1', { version: 'v1' })
        .subset('v2', { version: 'v2' })
        .defaultRoute({ v1: 1, v2: 1 }),
      {
        methodConfig: [
          {
            name: [{ service: 'grpclb.test.Greeter' }],
            timeout: '0.5s',
            retryPolicy: {
              maxAttempts: 3,
              initialBackoff: '0.01s',
              maxBackoff: '0.05s',
              backoffMultiplier: 2,
              retryableStatusCodes: ['UNAVAILABLE'],
            },
          },
        ],
      },
    );
    const manual = new ManualEndpoints(labelled(set));
    const client = new Greeter(manual.target, insecure, {
      'grpc.service_config': JSON.stringify(config),
    });
    try {
      await sayHello(client, 'warm', { waitForReady: true });
      await v1.setFailRate(1);
      let served = 0;
      for (let i = 0; i < 50; i++) {
        const reply = await sayHello(client, 'retry');
        assert.equal(reply.labels['version'], 'v2');
        served++;
      }
      assert.equal(served, 50, 'every call failed on v1 once and was retried on v2');
      await v1.setFailRate(0);
      await v2.setDelay(3000);
      await v1.setDelay(3000);
      const started = Date.now();
      await assert.rejects(sayHello(client, 'slow', { deadlineMs: 10_000 }), (e: unknown) => {
        assert.ok(isServiceError(e));
        assert.equal(e.code, grpc.status.DEADLINE_EXCEEDED);
        return true;
      });
      assert.ok(Date.now() - started < 2500, 'the 0.5 s method timeout applied');
    } finally {
      await v1.setDelay(0);
      await v2.setDelay(0);
      client.close();
      manual.dispose();
    }
  });

  test('invalid traffic split configs are rejected with the field named', () => {
    const bad = {
      loadBalancingConfig: [
        {
          [TRAFFIC_SPLIT_POLICY]: {
            subsets: [{ name: 'v1', labels: { version: 'v1' } }],
            routes: [{ split: [{ subset: 'v9', weight: 100 }] }],
          },
        },
      ],
    };
    assert.throws(
      () =>
        new Greeter(`static:///${v1.address}`, insecure, {
          'grpc.service_config': JSON.stringify(bad),
        }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.field === `loadBalancingConfig[0].${TRAFFIC_SPLIT_POLICY}.routes[0].split[0].subset` &&
        /no subset named "v9"/.test(e.message),
    );
    assert.throws(
      () =>
        trafficSplit()
          .subset('v1', { version: 'v1' })
          .route({ method: 'SayHello' }, { v1: 1 })
          .build(),
      (e: unknown) =>
        e instanceof ConfigError && e.field === `${TRAFFIC_SPLIT_POLICY}.routes[0].match.method`,
    );
  });
});

describe('weighted round robin with real backends', () => {
  test('honours endpoint weights 1/2/7 within ±0.5 points; weight 0 gets nothing', async () => {
    const set = await startBackends({ count: 4 });
    const [a, b, c, zero] = set.backends as [Backend, Backend, Backend, Backend];
    const target = `static:///${a.address};weight=1,${b.address};weight=2,${c.address};weight=7,${zero.address};weight=0`;
    const client = new Greeter(target, insecure, {
      'grpc.service_config': JSON.stringify(serviceConfig(weightedRoundRobin())),
    });
    try {
      const counts = new Map<string, number>();
      let issued = 0;
      const worker = async () => {
        while (issued < 10_000) {
          issued++;
          const reply = await sayHello(client, 'w');
          counts.set(reply.address, (counts.get(reply.address) ?? 0) + 1);
        }
      };
      await Promise.all(Array.from({ length: 10 }, worker));
      for (const [backend, share] of [
        [a, 0.1],
        [b, 0.2],
        [c, 0.7],
      ] as const) {
        const actual = (counts.get(backend.address) ?? 0) / 10_000;
        assert.ok(
          Math.abs(actual - share) <= 0.005,
          `${backend.address}: ${actual}, expected ${share}`,
        );
      }
      assert.equal(counts.get(zero.address), undefined);
      assert.equal(
        (await zero.stats()).connectionsOpen,
        1,
        'a weight-0 endpoint is known and connected',
      );
    } finally {
      client.close();
      await set.stopAll();
    }
  });

  test('new endpoint weights from the resolver move traffic without reconnecting', async () => {
    const set = await startBackends({ count: 2 });
    const [a, b] = set.backends as [Backend, Backend];
    const manual = new ManualEndpoints({
      endpoints: [
        { host: a.host, port: a.port, weight: 1 },
        { host: b.host, port: b.port, weight: 1 },
      ],
      serviceConfig: serviceConfig(weightedRoundRobin()),
    });
    const client = new Greeter(manual.target, insecure);
    const share = async (calls: number) => {
      let toA = 0;
      for (let i = 0; i < calls; i++)
        if ((await sayHello(client, 'w')).address === a.address) toA++;
      return toA / calls;
    };
    try {
      assert.ok(Math.abs((await share(400)) - 0.5) <= 0.005);
      manual.update({
        endpoints: [
          { host: a.host, port: a.port, weight: 1 },
          { host: b.host, port: b.port, weight: 3 },
        ],
        serviceConfig: serviceConfig(weightedRoundRobin()),
      });
      await waitFor(async () => (await share(40)) <= 0.3, {
        timeoutMs: 5000,
        message: 'the new weights apply',
      });
      assert.ok(Math.abs((await share(400)) - 0.25) <= 0.005);
      for (const backend of [a, b]) assert.equal((await backend.stats()).connectionsAccepted, 1);
    } finally {
      client.close();
      manual.dispose();
      await set.stopAll();
    }
  });
});
