/**
 * @grpc-lb/istio end to end: a VirtualService and DestinationRule, translated, drive a real
 * channel over six backends labelled v1/v2/v3 (two of each).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { checkServiceConfig, register } from '@grpc-lb/core';
import { parseIstioYaml, translateIstio } from '@grpc-lb/istio';
import {
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

const ROUTES = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: hello2, namespace: prod }
spec:
  hosts: [hello2]
  http:
    - name: say-hello
      match:
        - uri: { exact: /grpclb.test.Greeter/SayHello }
      route:
        - { destination: { host: hello2, subset: v1 }, weight: 30 }
        - { destination: { host: hello2, subset: v2 }, weight: 60 }
        - { destination: { host: hello2, subset: v3 }, weight: 10 }
      retries: { attempts: 2, retryOn: unavailable }
    - name: rest
      route:
        - destination: { host: hello2.prod.svc.cluster.local, subset: v2 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: hello2, namespace: prod }
spec:
  host: hello2
  trafficPolicy:
    loadBalancer: { simple: LEAST_REQUEST }
    outlierDetection: { consecutive5xxErrors: 5, interval: 10s }
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
    - { name: v3, labels: { version: v3 } }
`;

type Call = (client: GreeterClient, name: string) => Promise<HelloReply>;

/** Drives `calls` calls with 10 in flight and counts replies by the backend's `version` label. */
async function versions(client: GreeterClient, calls: number, call: Call = sayHello) {
  const counts: Record<string, number> = {};
  let failed = 0;
  let issued = 0;
  const worker = async () => {
    while (issued < calls) {
      issued++;
      try {
        const version = (await call(client, 'istio')).labels['version'] ?? '?';
        counts[version] = (counts[version] ?? 0) + 1;
      } catch (error) {
        if (!isServiceError(error)) throw error;
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: 10 }, worker));
  return { counts, failed };
}

describe('an Istio VirtualService and DestinationRule, translated, on a real channel', () => {
  let set: BackendSet;
  before(async () => {
    const labels = ['v1', 'v1', 'v2', 'v2', 'v3', 'v3'].map((version) => ({ version }));
    set = await startBackends({ count: 6, labels });
  });
  after(async () => {
    await set.stopAll();
  });

  test('SayHello splits 30/60/10 within ±0.5 points over 10,000 calls; other methods go to v2', async () => {
    const resources = parseIstioYaml(ROUTES, 'hello2.yaml');
    const { serviceConfig, warnings } = translateIstio({
      host: 'hello2',
      namespace: 'prod',
      ...resources,
    });
    // Outlier detection is the one approximation here: Istio counts ejections per subset.
    assert.deepEqual(warnings, [
      'DestinationRule prod/hello2: trafficPolicy.outlierDetection: ejection limits (maxEjectionPercent) ' +
        'count over all endpoints of the host, where Istio counts per subset',
    ]);
    checkServiceConfig(serviceConfig, 'translated');
    const target = `static:///${set.backends.map((b) => `${b.address};version=${b.labels['version']}`).join(',')}`;
    const client = new Greeter(target, insecure, {
      'grpc.service_config': JSON.stringify(serviceConfig),
    });
    try {
      // A subset still connecting lends its share to the others: measure once every version answers.
      await waitFor(
        async () => {
          const { counts } = await versions(client, 30);
          return ['v1', 'v2', 'v3'].every((v) => (counts[v] ?? 0) > 0);
        },
        { timeoutMs: 10_000, message: 'v1, v2 and v3 to answer' },
      );
      const hello = await versions(client, 10_000);
      assert.equal(hello.failed, 0);
      for (const [version, share] of Object.entries({ v1: 0.3, v2: 0.6, v3: 0.1 })) {
        const actual = (hello.counts[version] ?? 0) / 10_000;
        assert.ok(
          Math.abs(actual - share) <= 0.005,
          `${version}: share ${actual.toFixed(4)}, expected ${share} ±0.005 (${JSON.stringify(hello.counts)})`,
        );
      }
      assert.deepEqual((await versions(client, 500, sayGoodbye)).counts, { v2: 500 });
    } finally {
      client.close();
    }
  });
});

describe('a DestinationRule connectionPool, translated, limits a real channel', () => {
  let set: BackendSet;
  before(async () => {
    set = await startBackends({ count: 2 });
  });
  after(async () => {
    await Promise.all(set.backends.map((b) => b.hang(false)));
    await set.stopAll();
  });

  test('http2MaxRequests 3: three calls held by hung backends, the other two fail fast naming the limit', async () => {
    const { serviceConfig, warnings } = translateIstio({
      host: 'hello2',
      namespace: 'prod',
      virtualServices: [],
      destinationRules: [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'DestinationRule',
          metadata: { name: 'hello2', namespace: 'prod' },
          spec: {
            host: 'hello2',
            trafficPolicy: { connectionPool: { http: { http2MaxRequests: 3 } } },
          },
        },
      ],
    });
    assert.deepEqual(warnings, []);
    const client = new Greeter(`static:///${set.addresses.join(',')}`, insecure, {
      'grpc.service_config': JSON.stringify(serviceConfig),
    });
    try {
      await sayHello(client, 'warm', { waitForReady: true });
      await Promise.all(set.backends.map((b) => b.hang(true)));
      const outcomes = Array.from({ length: 5 }, (_, i) =>
        sayHello(client, `n${i}`, { deadlineMs: 20_000 }).then(
          () => 'ok',
          (e: unknown) => (isServiceError(e) ? `${e.code} ${e.details}` : String(e)),
        ),
      );
      // The two over the limit end while the backends still hold the other three.
      const settled: string[] = [];
      for (const o of outcomes) void o.then((r) => settled.push(r));
      await waitFor(() => settled.length === 2, {
        timeoutMs: 5000,
        message: 'two calls to fail fast',
      });
      for (const r of settled) {
        assert.match(r, /^14 .*call limit maxRequests \(3\) reached: 3 calls in flight$/);
      }
      await Promise.all(set.backends.map((b) => b.hang(false)));
      assert.equal((await Promise.all(outcomes)).filter((r) => r === 'ok').length, 3);
    } finally {
      client.close();
    }
  });
});
