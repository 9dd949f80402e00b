/**
 * `k8s:///<service>.<namespace>:<port>?pod_labels=version`: endpoints carry their Pods' labels,
 * against a real kube-apiserver (RBAC on) and real grpc-js backends on pod-like addresses
 * (10.244.N.x), inside a network namespace of its own (enter-netns, first import).
 *
 * The layout the EndpointSlice controller makes: ONE Service `hello`, one EndpointSlice carrying
 * only the Service's name, its endpoints naming their Pods (targetRef); the Pods are labelled
 * `version: v1|v2`. The API server runs no controller and no kubelet: each test writes its
 * Service, EndpointSlice and bare Pod objects itself (the ServiceAccount admission plugin is off,
 * so a Pod needs nothing more than a container name and image).
 */
import './support/enter-netns';
import assert from 'node:assert/strict';
import { after, describe, test, type TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { LoadBalancerObserver, OBSERVER_OPTION, register } from '@grpc-lb/core';
import { createK8sResolverFactory, registerK8s } from '@grpc-lb/resolver-k8s';
import {
  type BackendSet,
  type GreeterClient,
  isServiceError,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from './harness';
import {
  requireKubeApiserver,
  startKubeApiserver,
  type KubeApiserver,
} from './support/kube-apiserver';
import { startLoad } from './support/load';
import { addPodAddresses, type PodAddresses } from './support/pod-addresses';
import { serverFixture } from './support/server-fixture';

const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();
const kube = serverFixture('kube-apiserver', () => startKubeApiserver(), requireKubeApiserver);

let addresses: Promise<PodAddresses | undefined> | undefined;
let backends: BackendSet | undefined;
after(async () => {
  await backends?.stopAll();
  await (await addresses)?.remove();
});

const warnings: string[] = [];
const recordingLogger = {
  warn(message: string): void {
    warnings.push(message);
    console.warn(`[grpc-lb] ${message}`);
  },
};

interface Env {
  readonly k: KubeApiserver;
  readonly set: BackendSet;
  readonly namespace: string;
}

let registered = false;
let serial = 0;

/** The API server, 4 backends on pod addresses, and a fresh namespace. */
async function env(t: TestContext): Promise<Env | undefined> {
  const k = await kube.get(t);
  if (!k) return undefined;
  if (!registered) {
    registerK8s({ grpc, kubeconfig: k.adminKubeconfig, logger: recordingLogger });
    registered = true;
  }
  addresses ??= addPodAddresses(t, 4);
  const pods = await addresses;
  if (!pods) return undefined;
  backends ??= await startBackends({ count: 4, network: pods.network });
  for (const b of backends.backends) await b.resetStats();
  const namespace = `k8s-pods-${process.pid}-${++serial}`;
  const created = await k.request('POST', '/api/v1/namespaces', { metadata: { name: namespace } });
  assert.equal(created.status, 201, created.body);
  return { k, set: backends, namespace };
}

const VERSIONS = ['v1', 'v1', 'v2', 'v2'];

/** Pod `<name>-<i>` of backend i. */
function podName(name: string, i: number): string {
  return `${name}-${i}`;
}

/**
 * Service `name` (port `grpc`), ONE EndpointSlice labelled only as the controller labels it, each
 * endpoint naming its Pod, and the 4 Pods labelled version v1, v1, v2, v2.
 */
async function createService(e: Env, name: string, withoutPods: number[] = []): Promise<void> {
  const service = await e.k.request('POST', `/api/v1/namespaces/${e.namespace}/services`, {
    metadata: { name },
    spec: { ports: [{ name: 'grpc', port: 80, targetPort: e.set.port, protocol: 'TCP' }] },
  });
  assert.equal(service.status, 201, service.body);
  for (const [i, version] of VERSIONS.entries()) {
    if (!withoutPods.includes(i)) await createPod(e, podName(name, i), { app: name, version });
  }
  const slice = await e.k.request(
    'POST',
    `/apis/discovery.k8s.io/v1/namespaces/${e.namespace}/endpointslices`,
    {
      metadata: {
        name: `${name}-x7k2p`,
        labels: {
          'kubernetes.io/service-name': name,
          'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
        },
      },
      addressType: 'IPv4',
      endpoints: e.set.backends.map((b, i) => ({
        addresses: [b.host],
        conditions: { ready: true, serving: true, terminating: false },
        targetRef: { kind: 'Pod', name: podName(name, i), namespace: e.namespace },
      })),
      ports: [{ name: 'grpc', port: e.set.port, protocol: 'TCP' }],
    },
  );
  assert.equal(slice.status, 201, slice.body);
}

async function createPod(e: Env, name: string, labels: Record<string, string>): Promise<void> {
  const pod = await e.k.request('POST', `/api/v1/namespaces/${e.namespace}/pods`, {
    metadata: { name, labels },
    spec: { containers: [{ name: 'app', image: 'registry.invalid/hello:1' }] },
  });
  assert.equal(pod.status, 201, pod.body);
}

/** Sets label `version` of Pod `pod` (undefined: removes it) (read, then replaced at its resourceVersion). */
async function relabel(e: Env, pod: string, version: string | undefined): Promise<void> {
  const path = `/api/v1/namespaces/${e.namespace}/pods/${pod}`;
  const read = await e.k.request('GET', path);
  assert.equal(read.status, 200, read.body);
  const object = read.json as { metadata: { labels?: Record<string, string> } };
  const labels = { ...object.metadata.labels };
  if (version === undefined) delete labels['version'];
  else labels['version'] = version;
  object.metadata.labels = labels;
  const written = await e.k.request('PUT', path, object);
  assert.equal(written.status, 200, written.body);
}

/** A traffic split between the v1 and the v2 Pods, by the Pods' `version` label. */
function policy(split: { subset: 'v1' | 'v2'; weight: number }[]): string {
  return JSON.stringify({
    loadBalancingConfig: [
      {
        'grpc-lb.traffic_split': {
          subsets: [
            { name: 'v1', labels: { version: 'v1' } },
            { name: 'v2', labels: { version: 'v2' } },
          ],
          routes: [{ split }],
        },
      },
    ],
  });
}

/** Half the calls to the v1 Pods, half to the v2 Pods. */
const SPLIT = policy([
  { subset: 'v1', weight: 50 },
  { subset: 'v2', weight: 50 },
]);

async function putConfigMap(e: Env, name: string, text: string): Promise<void> {
  const result = await e.k.request('POST', `/api/v1/namespaces/${e.namespace}/configmaps`, {
    metadata: { name },
    data: { 'service-config.json': text },
  });
  assert.equal(result.status, 201, result.body);
}

function client(target: string, observer: LoadBalancerObserver): GreeterClient {
  return new Greeter(target, insecure, {
    'grpc.use_local_subchannel_pool': 1,
    'grpc-lb.max_refresh_backoff_ms': 1_000,
    [OBSERVER_OPTION]: observer,
  });
}

/** `calls` sequential calls; how many each backend (by index) answered. */
async function perBackend(e: Env, greeter: GreeterClient, calls: number): Promise<number[]> {
  const counts = e.set.backends.map(() => 0);
  for (let i = 0; i < calls; i++) {
    const reply = await sayHello(greeter, 'pods');
    const index = e.set.backends.findIndex((b) => b.name === reply.backend);
    assert.ok(index >= 0, `an answer from ${reply.backend}`);
    counts[index]!++;
  }
  return counts;
}

/** Asserts `actual` is `expected` ± 2 calls (the split is a deterministic weighted schedule). */
function near(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 2, `${what}: ${actual} calls, expected ${expected} ±2`);
}

describe('k8s: endpoints carry their Pods’ labels (real kube-apiserver, real backends)', () => {
  test('one Service, Pods labelled v1,v1,v2,v2: a traffic split by version follows the Pod labels; relabelling a Pod moves its calls under load without reconnecting', async (t) => {
    const e = await env(t);
    if (!e) return;
    await kube.logged(async () => {
      await createService(e, 'hello');
      await putConfigMap(e, 'hello-lb', SPLIT);
      const target = `k8s:///hello.${e.namespace}:grpc?config=hello-lb&pod_labels=version`;
      const observer = new LoadBalancerObserver();
      const greeter = client(target, observer);
      try {
        // Until every connection is ready a subset's calls go to its ready members only.
        await waitFor(async () => (await perBackend(e, greeter, 8)).every((n) => n > 0), {
          timeoutMs: 10_000,
          message: 'every backend answers',
        });
        const before = await perBackend(e, greeter, 100);
        near(before[0]! + before[1]!, 50, 'v1 Pods (hello-0, hello-1)');
        near(before[2]! + before[3]!, 50, 'v2 Pods (hello-2, hello-3)');
        for (const [i, n] of before.entries()) near(n, 25, `hello-${i}`);

        const load = startLoad(greeter, { concurrency: 2, pauseMs: 2 });
        const relabelledAt = performance.now();
        await relabel(e, podName('hello', 1), 'v2');
        // hello-0 is now the only v1 Pod: half of the calls.
        await waitFor(async () => (await perBackend(e, greeter, 40))[0]! >= 17, {
          timeoutMs: 5_000,
          message: 'hello-0 alone answers the v1 half after hello-1 is relabelled v2',
        });
        const movedMs = Math.round(performance.now() - relabelledAt);
        const result = await load.stop();
        assert.equal(result.errors.length, 0, result.errors[0]?.message);
        assert.ok(result.ok > 0);

        const afterRelabel = await perBackend(e, greeter, 120);
        near(afterRelabel[0]!, 60, 'hello-0, the only v1 Pod');
        for (const i of [1, 2, 3]) near(afterRelabel[i]!, 20, `hello-${i}, a v2 Pod`);

        // One connection per backend for the whole test: relabelling reconnected nothing.
        for (const b of e.set.backends) {
          const stats = await b.stats();
          assert.ok(
            stats.connectionsAccepted <= 1,
            `${b.name}: ${stats.connectionsAccepted} connections`,
          );
        }
        t.diagnostic(JSON.stringify({ podRelabelToMovedMs: movedMs }));
      } finally {
        greeter.close();
      }
    });
  });

  test('a Pod created after the slice names it gets its calls when it appears; a Pod that loses the label (it leaves the watch narrowed by the selector) loses them', async (t) => {
    const e = await env(t);
    if (!e) return;
    await kube.logged(async () => {
      // churn-3 (v2) is named by the slice but does not exist yet.
      await createService(e, 'churn', [3]);
      await putConfigMap(e, 'churn-lb', policy([{ subset: 'v2', weight: 100 }]));
      const target = `k8s:///churn.${e.namespace}:grpc?config=churn-lb&pod_labels=version`;
      const greeter = client(target, new LoadBalancerObserver());
      try {
        assert.deepEqual(await perBackend(e, greeter, 20), [0, 0, 20, 0], 'only churn-2 is v2');
        await createPod(e, podName('churn', 3), { app: 'churn', version: 'v2' });
        await waitFor(async () => (await perBackend(e, greeter, 10))[3]! > 0, {
          timeoutMs: 5_000,
          message: 'churn-3 answers once its Pod exists',
        });
        const both = await perBackend(e, greeter, 40);
        assert.deepEqual([both[0], both[1]], [0, 0]);
        near(both[2]!, 20, 'churn-2');
        near(both[3]!, 20, 'churn-3');
        await relabel(e, podName('churn', 2), undefined);
        await waitFor(async () => (await perBackend(e, greeter, 10))[2] === 0, {
          timeoutMs: 5_000,
          message: 'churn-2 gets no call once it has no version label',
        });
        assert.deepEqual(await perBackend(e, greeter, 20), [0, 0, 0, 20]);
      } finally {
        greeter.close();
      }
    });
  });

  test('RBAC: an identity without pods gets an error naming the rule; calls succeed, labelled, once it is granted', async (t) => {
    const e = await env(t);
    if (!e) return;
    await kube.logged(async () => {
      await createService(e, 'guarded');
      await putConfigMap(e, 'guarded-lb', policy([{ subset: 'v1', weight: 100 }]));
      const user = await e.k.createUser(`pod-reader-${e.namespace}`);
      const base = `/apis/rbac.authorization.k8s.io/v1/namespaces/${e.namespace}`;
      const grant = async (name: string, rules: unknown[]): Promise<void> => {
        const role = await e.k.request('POST', `${base}/roles`, { metadata: { name }, rules });
        assert.equal(role.status, 201, role.body);
        const binding = await e.k.request('POST', `${base}/rolebindings`, {
          metadata: { name },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
          subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: user.name }],
        });
        assert.equal(binding.status, 201, binding.body);
      };
      await grant('endpoints-reader', [
        {
          apiGroups: ['discovery.k8s.io'],
          resources: ['endpointslices'],
          verbs: ['list', 'watch'],
        },
        { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] },
      ]);
      register({
        grpc,
        logger: recordingLogger,
        resolvers: [
          createK8sResolverFactory({ scheme: 'k8s-pods-limited', kubeconfig: user.kubeconfig }),
        ],
      });
      const target = `k8s-pods-limited:///guarded.${e.namespace}:grpc?config=guarded-lb&pod_labels=version`;
      const greeter = client(target, new LoadBalancerObserver());
      try {
        await assert.rejects(sayHello(greeter, 'x', { deadlineMs: 5_000 }), (error: unknown) => {
          assert.ok(isServiceError(error));
          assert.equal(error.code, grpc.status.UNAVAILABLE);
          assert.match(error.details, new RegExp(`Pods of namespace ${e.namespace}`));
          assert.match(error.details, /403 Forbidden/);
          assert.match(error.details, /cannot list resource "pods"/);
          assert.match(
            error.details,
            new RegExp(
              `Grant this identity list and watch on pods \\(the core apiGroup ""\\) in namespace ${e.namespace}`,
            ),
          );
          return true;
        });
        await grant('pod-reader', [
          { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
        ]);
        // Every call to the v1 Pods: only the Pod labels make that possible.
        await waitFor(
          async () => (await sayHello(greeter, 'x').catch(() => undefined)) !== undefined,
          {
            timeoutMs: 10_000,
            message: 'calls succeed once pods are granted',
          },
        );
        const counts = await perBackend(e, greeter, 20);
        assert.equal(counts[2]! + counts[3]!, 0, `no call to the v2 Pods: ${counts.join(',')}`);
      } finally {
        greeter.close();
      }
    });
  });
});
