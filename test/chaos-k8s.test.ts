/**
 * Chaos, Kubernetes: steady load on a `k8s:///` target served by real grpc-js backends on pod-like
 * addresses (the file runs in a network namespace of its own: enter-netns, first import). The
 * kube-apiserver is SIGSTOPped for 30 s and resumed, then SIGKILLed and restarted (its etcd keeps
 * the objects). No call may fail; afterwards an endpoint added to the slice is followed and one
 * removed is dropped, without restarting the client.
 */
import './support/enter-netns';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { registerK8s } from '@grpc-lb/resolver-k8s';
import {
  type Backend,
  type GreeterClient,
  loadGreeterService,
  startBackends,
  waitFor,
} from './harness';
import {
  requireKubeApiserver,
  startKubeApiserver,
  type KubeApiserver,
} from './support/kube-apiserver';
import { startLoad, waitUntilQuiet } from './support/load';
import { addPodAddresses } from './support/pod-addresses';
import { serverFixture } from './support/server-fixture';
import { assertSurvived } from './support/chaos';

const Greeter = loadGreeterService();
const kube = serverFixture('kube-apiserver', () => startKubeApiserver(), requireKubeApiserver);

const FROZEN_MS = 30_000;
const DOWN_MS = 3_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function putSlice(
  k: KubeApiserver,
  namespace: string,
  port: number,
  hosts: readonly Backend[],
): Promise<void> {
  const base = `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`;
  const body = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'chaos-a', labels: { 'kubernetes.io/service-name': 'chaos' } },
    addressType: 'IPv4',
    endpoints: hosts.map((b) => ({
      addresses: [b.host],
      conditions: { ready: true, serving: true, terminating: false },
      targetRef: { kind: 'Pod', name: `pod-${b.host.split('.').at(-1)}` },
    })),
    ports: [{ name: 'grpc', port, protocol: 'TCP' }],
  };
  const existing = await k.request('GET', `${base}/chaos-a`);
  const result =
    existing.status === 200
      ? await k.request('PUT', `${base}/chaos-a`, {
          ...body,
          metadata: {
            ...body.metadata,
            resourceVersion: (existing.json as { metadata: { resourceVersion: string } }).metadata
              .resourceVersion,
          },
        })
      : await k.request('POST', base, body);
  assert.ok(result.status === 200 || result.status === 201, result.body);
}

describe('chaos: kube-apiserver frozen 30 s, then killed and restarted, under steady load', () => {
  test('no call fails through the hang and the crash, and slice changes after the restart are followed within 5 s', async (t) => {
    const k = await kube.get(t);
    if (!k) return;
    registerK8s({ grpc, kubeconfig: k.adminKubeconfig, logger: { warn: () => undefined } });
    const pods = await addPodAddresses(t, 4);
    if (!pods) return;
    const backends = await startBackends({ count: 4, network: pods.network });
    const [b1, b2, b3, b4] = backends.backends;
    assert.ok(b1 && b2 && b3 && b4);
    const namespace = `chaos-${process.pid}`;
    let greeter: GreeterClient | undefined;
    try {
      await kube.logged(async () => {
        const created = await k.request('POST', '/api/v1/namespaces', {
          metadata: { name: namespace },
        });
        assert.equal(created.status, 201, created.body);
        const service = await k.request('POST', `/api/v1/namespaces/${namespace}/services`, {
          metadata: { name: 'chaos' },
          spec: {
            ports: [{ name: 'grpc', port: 80, targetPort: backends.port, protocol: 'TCP' }],
            selector: { app: 'chaos' },
          },
        });
        assert.equal(service.status, 201, service.body);
        await putSlice(k, namespace, backends.port, [b1, b2, b3]);
        greeter = new Greeter(`k8s:///chaos.${namespace}:grpc`, grpc.credentials.createInsecure(), {
          'grpc.use_local_subchannel_pool': 1,
        });
        const load = startLoad(greeter, { concurrency: 3, deadlineMs: 5_000, pauseMs: 2 });
        try {
          await waitFor(() => [b1, b2, b3].every((b) => load.result.perBackend.has(b.address)), {
            timeoutMs: 15_000,
            message: 'b1, b2 and b3 take calls',
          });
          const okBeforeFreeze = load.result.ok;
          k.freeze();
          await sleep(FROZEN_MS);
          k.thaw();
          await sleep(2_000);
          const callsThroughFreeze = load.result.ok - okBeforeFreeze;
          const failedThroughFreeze = load.result.errors.length;

          await k.kill();
          await sleep(DOWN_MS);
          await k.start();
          const readyAt = performance.now();
          await putSlice(k, namespace, backends.port, [b1, b2, b3, b4]);
          const addedAt = performance.now();
          await waitFor(() => load.result.perBackend.has(b4.address), {
            timeoutMs: 15_000,
            intervalMs: 5,
            message: 'b4, added after the restart, takes calls',
          });
          const addedMs = performance.now() - addedAt;
          const addedSinceReadyMs = performance.now() - readyAt;
          const removedAt = performance.now();
          await putSlice(k, namespace, backends.port, [b2, b3, b4]);
          const lastCall = await waitUntilQuiet(load, b1.address, {
            quietMs: 1_000,
            timeoutMs: 15_000,
            message: 'b1, removed from the slice, stops taking calls',
          });
          const removedMs = Math.max(0, lastCall - removedAt);
          const result = await load.stop();
          t.diagnostic(
            JSON.stringify({
              registry: 'kube-apiserver',
              frozenMs: FROZEN_MS,
              callsThroughFreeze,
              failedThroughFreeze,
              downMs: DOWN_MS,
              calls: result.ok,
              failed: result.errors.length,
              addedFollowedMs: Math.round(addedMs),
              addedSinceApiserverReadyMs: Math.round(addedSinceReadyMs),
              removedFollowedMs: Math.round(removedMs),
            }),
          );
          assertSurvived(result.errors, addedMs, removedMs, 'endpoint');
        } finally {
          await load.stop();
        }
      });
    } finally {
      greeter?.close();
      await backends.stopAll();
      await pods.remove();
    }
  });
});
