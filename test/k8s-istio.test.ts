/**
 * `k8s:///<service>.<namespace>:<port>?istio=true`: the channel's service config is translated
 * from the namespace's VirtualServices and DestinationRules (networking.istio.io), against a real
 * kube-apiserver (RBAC on) and real grpc-js backends on pod-like addresses (10.244.N.x), inside a
 * network namespace of its own (enter-netns, first import).
 *
 * Istio itself is not installed: the test installs minimal CustomResourceDefinitions of its own
 * for VirtualService and DestinationRule (v1 and v1beta1 served, open schemas), so the API server
 * stores and watches them as it would Istio's. One Service `hello2`, one EndpointSlice naming its
 * three bare Pods, labelled `version: v1|v2|v3`.
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
import { installIstioCrds } from './support/istio-crds';
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
let crds: Promise<void> | undefined;
let serial = 0;

const VERSIONS = ['v1', 'v2', 'v3'] as const;
const SAY_HELLO = '/grpclb.test.Greeter/SayHello';

/** The API server with the Istio CRDs, 3 backends on pod addresses, and a fresh namespace. */
async function env(t: TestContext): Promise<Env | undefined> {
  const k = await kube.get(t);
  if (!k) return undefined;
  if (!registered) {
    registerK8s({ grpc, kubeconfig: k.adminKubeconfig, logger: recordingLogger });
    registered = true;
  }
  crds ??= installIstioCrds(k);
  await crds;
  addresses ??= addPodAddresses(t, 3);
  const pods = await addresses;
  if (!pods) return undefined;
  backends ??= await startBackends({ count: 3, network: pods.network });
  for (const b of backends.backends) await b.resetStats();
  const namespace = `k8s-istio-${process.pid}-${++serial}`;
  const created = await k.request('POST', '/api/v1/namespaces', { metadata: { name: namespace } });
  assert.equal(created.status, 201, created.body);
  return { k, set: backends, namespace };
}

/**
 * Service `name` (port `grpc`), ONE EndpointSlice as the controller makes it, each endpoint naming
 * its Pod, and 3 bare Pods labelled version v1, v2, v3 (backend i is Pod `<name>-<i>`).
 */
async function createService(e: Env, name: string): Promise<void> {
  const service = await e.k.request('POST', `/api/v1/namespaces/${e.namespace}/services`, {
    metadata: { name },
    spec: { ports: [{ name: 'grpc', port: 80, targetPort: e.set.port, protocol: 'TCP' }] },
  });
  assert.equal(service.status, 201, service.body);
  for (const [i, version] of VERSIONS.entries()) {
    const pod = await e.k.request('POST', `/api/v1/namespaces/${e.namespace}/pods`, {
      metadata: { name: `${name}-${i}`, labels: { app: name, version } },
      spec: { containers: [{ name: 'app', image: 'registry.invalid/hello:1' }] },
    });
    assert.equal(pod.status, 201, pod.body);
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
        targetRef: { kind: 'Pod', name: `${name}-${i}`, namespace: e.namespace },
      })),
      ports: [{ name: 'grpc', port: e.set.port, protocol: 'TCP' }],
    },
  );
  assert.equal(slice.status, 201, slice.body);
}

/** The VirtualService's spec: SayHello split v1/v2/v3 by `weights`, every other call to v1. */
function routes(host: string, weights: readonly number[]): Record<string, unknown> {
  return {
    hosts: [host],
    http: [
      {
        name: 'say-hello',
        match: [{ uri: { exact: SAY_HELLO } }],
        route: VERSIONS.map((subset, i) => ({
          destination: { host, subset },
          weight: weights[i],
        })),
      },
      { name: 'default', route: [{ destination: { host, subset: 'v1' } }] },
    ],
  };
}

function istioPath(e: Env, plural: string, name?: string): string {
  return `/apis/networking.istio.io/v1/namespaces/${e.namespace}/${plural}${name ? `/${name}` : ''}`;
}

async function createIstio(e: Env, name: string, weights: readonly number[]): Promise<void> {
  const host = `${name}.${e.namespace}.svc.cluster.local`;
  const rule = await e.k.request('POST', istioPath(e, 'destinationrules'), {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name },
    spec: {
      host,
      subsets: VERSIONS.map((version) => ({ name: version, labels: { version } })),
    },
  });
  assert.equal(rule.status, 201, rule.body);
  const service = await e.k.request('POST', istioPath(e, 'virtualservices'), {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name },
    spec: routes(name, weights),
  });
  assert.equal(service.status, 201, service.body);
}

/** Replaces the VirtualService's spec (read, then written at its resourceVersion). */
async function editVirtualService(e: Env, name: string, spec: unknown): Promise<void> {
  const path = istioPath(e, 'virtualservices', name);
  const read = await e.k.request('GET', path);
  assert.equal(read.status, 200, read.body);
  const object = read.json as { spec: unknown };
  object.spec = spec;
  const written = await e.k.request('PUT', path, object);
  assert.equal(written.status, 200, written.body);
}

function client(target: string, observer: LoadBalancerObserver): GreeterClient {
  return new Greeter(target, insecure, {
    'grpc.use_local_subchannel_pool': 1,
    'grpc-lb.max_refresh_backoff_ms': 1_000,
    [OBSERVER_OPTION]: observer,
  });
}

/** `calls` sequential SayHello calls; how many each version (by backend index) answered. */
async function perVersion(e: Env, greeter: GreeterClient, calls: number): Promise<number[]> {
  const counts = VERSIONS.map(() => 0);
  for (let i = 0; i < calls; i++) {
    const reply = await sayHello(greeter, 'istio');
    const index = e.set.backends.findIndex((b) => b.name === reply.backend);
    assert.ok(index >= 0, `an answer from ${reply.backend}`);
    counts[index]!++;
  }
  return counts;
}

/** Asserts `actual` is `expected` ± 3 calls (the split is a deterministic weighted schedule). */
function near(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 3, `${what}: ${actual} calls, expected ${expected} ±3`);
}

describe('k8s: istio=true, the service config from VirtualServices and DestinationRules (real kube-apiserver, real backends)', () => {
  test('30/60/10 on SayHello over Pods v1/v2/v3; edited to 0/100/0, the shares follow under load with 0 failed calls and no reconnect; a bad edit keeps the last good config', async (t) => {
    const e = await env(t);
    if (!e) return;
    await kube.logged(async () => {
      await createService(e, 'hello2');
      await createIstio(e, 'hello2', [30, 60, 10]);
      const target = `k8s:///hello2.${e.namespace}:grpc?istio=true`;
      const observer = new LoadBalancerObserver();
      const greeter = client(target, observer);
      try {
        await waitFor(async () => (await perVersion(e, greeter, 20)).every((n) => n > 0), {
          timeoutMs: 10_000,
          message: 'every version answers',
        });
        const applied = observer.serviceConfigs().find((c) => c.target === target);
        assert.ok(applied, 'the channel follows a service config');
        assert.match(
          applied.source,
          new RegExp(
            `^VirtualService ${e.namespace}/hello2 \\(resourceVersion \\d+\\), DestinationRule ${e.namespace}/hello2 \\(resourceVersion \\d+\\) \\(networking.istio.io/v1\\)$`,
          ),
        );
        const before = await perVersion(e, greeter, 100);
        near(before[0]!, 30, 'v1');
        near(before[1]!, 60, 'v2');
        near(before[2]!, 10, 'v3');

        const load = startLoad(greeter, { concurrency: 2, pauseMs: 2 });
        const editedAt = performance.now();
        await editVirtualService(e, 'hello2', routes('hello2', [0, 100, 0]));
        await waitFor(async () => (await perVersion(e, greeter, 20))[1] === 20, {
          timeoutMs: 5_000,
          message: 'every SayHello call goes to v2 after the edit',
        });
        const followedMs = Math.round(performance.now() - editedAt);
        const result = await load.stop();
        assert.equal(result.errors.length, 0, result.errors[0]?.message);
        assert.ok(result.ok > 0);
        assert.deepEqual(await perVersion(e, greeter, 50), [0, 50, 0]);

        // A bad edit (http is not a list: the open schema takes it, the translation cannot).
        const warned = warnings.length;
        await editVirtualService(e, 'hello2', { hosts: ['hello2'], http: 'oops' });
        await waitFor(
          () =>
            Promise.resolve(
              warnings
                .slice(warned)
                .some((w) =>
                  /the Istio resources cannot be used \(VirtualService .*\/hello2: http: .*keeping the last good service config/.test(
                    w,
                  ),
                ),
            ),
          { timeoutMs: 5_000, message: 'a warning about the bad edit' },
        );
        assert.deepEqual(await perVersion(e, greeter, 30), [0, 30, 0], 'the last good config');
        const kept = observer.serviceConfigs().find((c) => c.target === target);
        assert.ok(kept);

        // One connection per backend for the whole test: no edit reconnected anything.
        for (const b of e.set.backends) {
          const stats = await b.stats();
          assert.ok(
            stats.connectionsAccepted <= 1,
            `${b.name}: ${stats.connectionsAccepted} connections`,
          );
        }
        t.diagnostic(JSON.stringify({ editToFollowedMs: followedMs, before }));
      } finally {
        greeter.close();
      }
    });
  });

  test('RBAC: an identity without the Istio rule gets an error naming it; calls follow the routes once it is granted', async (t) => {
    const e = await env(t);
    if (!e) return;
    await kube.logged(async () => {
      await createService(e, 'guarded');
      await createIstio(e, 'guarded', [0, 0, 100]);
      const user = await e.k.createUser(`istio-reader-${e.namespace}`);
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
        { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
      ]);
      register({
        grpc,
        logger: recordingLogger,
        resolvers: [
          createK8sResolverFactory({ scheme: 'k8s-istio-limited', kubeconfig: user.kubeconfig }),
        ],
      });
      const target = `k8s-istio-limited:///guarded.${e.namespace}:grpc?istio=true`;
      const greeter = client(target, new LoadBalancerObserver());
      try {
        await assert.rejects(sayHello(greeter, 'x', { deadlineMs: 5_000 }), (error: unknown) => {
          assert.ok(isServiceError(error));
          assert.equal(error.code, grpc.status.UNAVAILABLE);
          assert.match(error.details, /403 Forbidden/);
          assert.match(
            error.details,
            new RegExp(
              `Grant this identity list and watch on virtualservices and destinationrules \\(apiGroup networking.istio.io\\) in namespace ${e.namespace}`,
            ),
          );
          return true;
        });
        await grant('istio-reader', [
          {
            apiGroups: ['networking.istio.io'],
            resources: ['virtualservices', 'destinationrules'],
            verbs: ['list', 'watch'],
          },
        ]);
        await waitFor(
          async () => (await sayHello(greeter, 'x').catch(() => undefined)) !== undefined,
          { timeoutMs: 10_000, message: 'calls succeed once the Istio rule is granted' },
        );
        // Every SayHello call to v3: only the VirtualService makes that possible.
        assert.deepEqual(await perVersion(e, greeter, 20), [0, 0, 20]);
      } finally {
        greeter.close();
      }
    });
  });
});
