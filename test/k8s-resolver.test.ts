/**
 * The Kubernetes resolver against a real kube-apiserver (built from Go modules, RBAC on) and real
 * grpc-js backends on pod-like addresses (10.244.N.x: the API refuses loopback addresses in
 * EndpointSlices). The whole file runs inside a network namespace of its own (enter-netns, first
 * import): the API server, its etcd, the backends and the clients all live there, and the
 * addresses go on that namespace's lo, never on the machine's. Each test has its own Kubernetes
 * namespace and writes the Service and EndpointSlices (or core/v1 Endpoints) itself, as the
 * EndpointSlice and endpoints controllers would.
 */
import './support/enter-netns';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { LoadBalancerObserver, OBSERVER_OPTION } from '@grpc-lb/core';
import {
  createK8sResolverFactory,
  k8sNodeZone,
  registerK8s,
  SERVICE_ACCOUNT_DIR,
} from '@grpc-lb/resolver-k8s';
import { register } from '@grpc-lb/core';
import {
  type Backend,
  type BackendSet,
  type GreeterClient,
  isServiceError,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from './harness';
import { spread, startLoad, waitUntilQuiet } from './support/load';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  requireKubeApiserver,
  startKubeApiserver,
  type KubeApiserver,
} from './support/kube-apiserver';
import { addPodAddresses, type PodAddresses } from './support/pod-addresses';
import { serverFixture } from './support/server-fixture';

const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();
const kube = serverFixture('kube-apiserver', () => startKubeApiserver(), requireKubeApiserver);

let pods: Promise<PodAddresses | undefined> | undefined;
let backends: BackendSet | undefined;
after(async () => {
  await backends?.stopAll();
  await (await pods)?.remove();
});

interface Env {
  readonly k: KubeApiserver;
  readonly set: BackendSet;
  readonly namespace: string;
}

let serial = 0;
/** The API server, 4 backends on pod addresses (shared by the file), and a fresh namespace. */
async function env(t: TestContext): Promise<Env | undefined> {
  const k = await kube.get(t);
  if (!k) return undefined;
  if (!registered) {
    // At startup, as an application does: client-node loads while the rest is set up.
    registeredAt = performance.now();
    registerK8s({ grpc, kubeconfig: k.adminKubeconfig, logger: recordingLogger });
    registered = true;
  }
  pods ??= addPodAddresses(t, 6);
  const addresses = await pods;
  if (!addresses) return undefined;
  backends ??= await startBackends({ count: 4, network: addresses.network });
  for (const b of backends.backends) await b.setFailRate(0);
  const namespace = `k8s-${process.pid}-${++serial}`;
  const created = await k.request('POST', '/api/v1/namespaces', {
    metadata: { name: namespace },
  });
  assert.equal(created.status, 201, created.body);
  return { k, set: backends, namespace };
}
let registered = false;
let registeredAt = 0;

/** Every grpc-lb warning of the file, also printed as the default logger would. */
const warnings: string[] = [];
const recordingLogger = {
  warn(message: string): void {
    warnings.push(message);
    console.warn(`[grpc-lb] ${message}`);
  },
};

/** Requests of `verb` on namespaced EndpointSlices the API server has answered, by any client. */
async function namespacedSliceRequests(k: KubeApiserver, verb: string): Promise<number> {
  const metrics = await k.request('GET', '/metrics');
  let total = 0;
  for (const line of metrics.body.split('\n')) {
    if (
      line.startsWith('apiserver_request_total{') &&
      line.includes('resource="endpointslices"') &&
      line.includes('scope="namespace"') &&
      line.includes(`verb="${verb}"`)
    ) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

/** A Role with `rules` in the test's namespace, bound to `user`. */
async function grant(
  e: Env,
  user: string,
  name: string,
  rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[],
): Promise<void> {
  const base = `/apis/rbac.authorization.k8s.io/v1/namespaces/${e.namespace}`;
  const role = await e.k.request('POST', `${base}/roles`, { metadata: { name }, rules });
  assert.equal(role.status, 201, role.body);
  const binding = await e.k.request('POST', `${base}/rolebindings`, {
    metadata: { name },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
    subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: user }],
  });
  assert.equal(binding.status, 201, binding.body);
}

async function createService(e: Env, name: string, port = 80): Promise<void> {
  const result = await e.k.request('POST', `/api/v1/namespaces/${e.namespace}/services`, {
    metadata: { name },
    spec: {
      ports: [
        { name: 'grpc', port, targetPort: e.set.port, protocol: 'TCP' },
        { name: 'metrics', port: 9090, protocol: 'TCP' },
      ],
      selector: { app: name },
    },
  });
  assert.equal(result.status, 201, result.body);
}

type Condition = 'ready' | 'not-ready' | 'terminating';

/** Per host: its zone (default zone-a) and topology hints (`hints.forZones`). */
type Topology = Readonly<Record<string, { zone: string; forZones?: readonly string[] }>>;

function sliceBody(
  e: Env,
  service: string,
  slice: string,
  endpoints: [string, Condition][],
  topology: Topology = {},
) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: slice, labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    endpoints: endpoints.map(([host, condition]) => ({
      addresses: [host],
      conditions: {
        ready: condition === 'ready',
        serving: condition !== 'not-ready',
        terminating: condition === 'terminating',
      },
      zone: topology[host]?.zone ?? 'zone-a',
      ...(topology[host]?.forZones
        ? { hints: { forZones: topology[host].forZones.map((name) => ({ name })) } }
        : {}),
      targetRef: { kind: 'Pod', name: `pod-${host.split('.').at(-1)}` },
    })),
    ports: [
      { name: 'grpc', port: e.set.port, protocol: 'TCP' },
      { name: 'metrics', port: 9090, protocol: 'TCP' },
    ],
  };
}

async function putSlice(
  e: Env,
  service: string,
  slice: string,
  endpoints: [string, Condition][],
  topology?: Topology,
): Promise<void> {
  const base = `/apis/discovery.k8s.io/v1/namespaces/${e.namespace}/endpointslices`;
  const body = sliceBody(e, service, slice, endpoints, topology);
  const existing = await e.k.request('GET', `${base}/${slice}`);
  const result =
    existing.status === 200
      ? await e.k.request('PUT', `${base}/${slice}`, {
          ...body,
          metadata: {
            ...body.metadata,
            resourceVersion: (existing.json as { metadata: { resourceVersion: string } }).metadata
              .resourceVersion,
          },
        })
      : await e.k.request('POST', base, body);
  assert.ok(result.status === 200 || result.status === 201, result.body);
}

async function deleteSlice(e: Env, slice: string): Promise<void> {
  const result = await e.k.request(
    'DELETE',
    `/apis/discovery.k8s.io/v1/namespaces/${e.namespace}/endpointslices/${slice}`,
  );
  assert.equal(result.status, 200, result.body);
}

/**
 * Writes the Service's core/v1 Endpoints as the endpoints controller would (the API server runs
 * no controller, so these are the only Endpoints there are): `ready` under `addresses`,
 * `notReady` under `notReadyAddresses`, the backends' port named as the Service's.
 */
async function putEndpoints(
  e: Env,
  service: string,
  ready: string[],
  notReady: string[],
): Promise<void> {
  const base = `/api/v1/namespaces/${e.namespace}/endpoints`;
  const address = (ip: string) => ({
    ip,
    targetRef: { kind: 'Pod', name: `pod-${ip.split('.').at(-1)}`, namespace: e.namespace },
  });
  const body = {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: service },
    subsets: [
      {
        ...(ready.length > 0 ? { addresses: ready.map(address) } : {}),
        ...(notReady.length > 0 ? { notReadyAddresses: notReady.map(address) } : {}),
        ports: [
          { name: 'grpc', port: e.set.port, protocol: 'TCP' },
          { name: 'metrics', port: 9090, protocol: 'TCP' },
        ],
      },
    ],
  };
  const existing = await e.k.request('GET', `${base}/${service}`);
  const result =
    existing.status === 200
      ? await e.k.request('PUT', `${base}/${service}`, {
          ...body,
          metadata: {
            ...body.metadata,
            resourceVersion: (existing.json as { metadata: { resourceVersion: string } }).metadata
              .resourceVersion,
          },
        })
      : await e.k.request('POST', base, body);
  assert.ok(result.status === 200 || result.status === 201, result.body);
}

function client(target: string, observer?: LoadBalancerObserver): GreeterClient {
  return new Greeter(target, insecure, {
    'grpc.use_local_subchannel_pool': 1,
    'grpc-lb.max_refresh_backoff_ms': 1_000,
    ...(observer ? { [OBSERVER_OPTION]: observer } : {}),
  });
}

/** Watches of EndpointSlices in some namespace open at the API server (its own are cluster-wide). */
async function namespacedSliceWatches(k: KubeApiserver): Promise<number> {
  const metrics = await k.request('GET', '/metrics');
  let total = 0;
  for (const line of metrics.body.split('\n')) {
    if (
      line.startsWith('apiserver_longrunning_requests{') &&
      line.includes('resource="endpointslices"') &&
      line.includes('scope="namespace"') &&
      line.includes('verb="WATCH"')
    ) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

function hosts(set: BackendSet): [Backend, Backend, Backend, Backend] {
  return set.backends as [Backend, Backend, Backend, Backend];
}

describe('k8s: grpc-js clients on k8s:// targets (real kube-apiserver, real backends)', () => {
  test('every ready endpoint of every slice gets calls; not-ready ones none', async (t) => {
    const e = await env(t);
    if (!e) return;
    const [b1, b2, b3, b4] = hosts(e.set);
    await kube.logged(async () => {
      await createService(e, 'hello');
      await putSlice(e, 'hello', 'hello-a', [
        [b1.host, 'ready'],
        [b2.host, 'ready'],
      ]);
      await putSlice(e, 'hello', 'hello-b', [
        [b3.host, 'ready'],
        [b4.host, 'not-ready'],
      ]);
      // The first client of the file: client-node was imported from registerK8s() on (in env()).
      const createdAt = performance.now();
      const greeter = client(`k8s:///hello.${e.namespace}:grpc`);
      try {
        await sayHello(greeter, 'first', { deadlineMs: 10_000 });
        t.diagnostic(
          JSON.stringify({
            clientCreationToFirstCallMs: Math.round(performance.now() - createdAt),
            registerK8sToClientCreationMs: Math.round(createdAt - registeredAt),
          }),
        );
        // Until every connection is READY, round robin picks among the ready ones: warm up first.
        const warm = new Set<string>();
        await waitFor(
          async () => {
            warm.add((await sayHello(greeter, 'warm-up')).address);
            return warm.size === 3;
          },
          { timeoutMs: 10_000, message: 'all three ready endpoints answered' },
        );
        const seen = await spread(greeter, 60);
        assert.deepEqual([...seen.keys()].sort(), [b1.address, b2.address, b3.address].sort());
        for (const count of seen.values()) assert.equal(count, 20, 'round robin: even');
      } finally {
        greeter.close();
      }
    });
  });

  test('zoneAware: EndpointSlice hints.forZones are honoured only while every endpoint has one', async (t) => {
    const e = await env(t);
    if (!e) return;
    const [b1, b2, b3, b4] = hosts(e.set);
    const ready: [string, Condition][] = [b1, b2, b3, b4].map((b) => [b.host, 'ready']);
    // Zones a: b1, b2; b: b3, b4. The controller lent b3 to zone a.
    const hinted: Record<string, { zone: string; forZones?: readonly string[] }> = {
      [b1.host]: { zone: 'zone-a', forZones: ['zone-a'] },
      [b2.host]: { zone: 'zone-a', forZones: ['zone-a'] },
      [b3.host]: { zone: 'zone-b', forZones: ['zone-a'] },
      [b4.host]: { zone: 'zone-b', forZones: ['zone-b'] },
    };
    await kube.logged(async () => {
      await createService(e, 'zoned');
      await putSlice(e, 'zoned', 'zoned-1', ready, hinted);
      const greeter = new Greeter(`k8s:///zoned.${e.namespace}:grpc`, insecure, {
        'grpc.use_local_subchannel_pool': 1,
        'grpc.service_config': JSON.stringify({
          loadBalancingConfig: [
            { 'grpc-lb.round_robin': { zoneAware: { localZone: 'zone-a', minClusterSize: 4 } } },
          ],
        }),
      });
      const answered = async () => [...(await spread(greeter, 30)).keys()].sort();
      try {
        await waitFor(
          async () =>
            (await answered()).join() ===
            [b1, b2, b3]
              .map((b) => b.address)
              .sort()
              .join(),
          { timeoutMs: 10_000, message: 'the three endpoints hinted for zone-a answer, b4 none' },
        );
        // b4 loses its hint: the hints are ignored; zone a (2 of 4 in rotation) holds its share.
        await putSlice(e, 'zoned', 'zoned-1', ready, { ...hinted, [b4.host]: { zone: 'zone-b' } });
        await waitFor(
          async () =>
            (await answered()).join() ===
            [b1, b2]
              .map((b) => b.address)
              .sort()
              .join(),
          { timeoutMs: 10_000, message: 'only the two zone-a endpoints answer' },
        );
      } finally {
        greeter.close();
      }
    });
  });

  test("k8sNodeZone: the node's topology.kubernetes.io/zone label; otherwise undefined with one warning saying why (RBAC: get on nodes)", async (t) => {
    const e = await env(t);
    if (!e) return;
    await kube.logged(async () => {
      const zoned = `zoned-node-${e.namespace}`;
      const bare = `bare-node-${e.namespace}`;
      for (const [name, labels] of [
        [zoned, { 'topology.kubernetes.io/zone': 'zone-b' }],
        [bare, {}],
      ] as const) {
        const node = await e.k.request('POST', '/api/v1/nodes', { metadata: { name, labels } });
        assert.equal(node.status, 201, node.body);
      }
      try {
        const seen: string[] = [];
        const logger = { warn: (message: string) => seen.push(message) };
        const admin = { kubeconfig: e.k.adminKubeconfig, logger };
        assert.equal(await k8sNodeZone({ ...admin, nodeName: zoned }), 'zone-b');
        assert.deepEqual(seen, []);
        assert.equal(await k8sNodeZone({ ...admin, nodeName: bare }), undefined);
        assert.match(seen.pop()!, /Node bare-node-\S+ has no label topology\.kubernetes\.io\/zone/);
        assert.equal(await k8sNodeZone({ ...admin, nodeName: 'no-such-node' }), undefined);
        assert.match(seen.pop()!, /Node no-such-node does not exist/);
        // A logger that throws: still undefined, never a rejection.
        const throwing = {
          warn: () => {
            throw new Error('logger down');
          },
        };
        assert.equal(
          await k8sNodeZone({ kubeconfig: e.k.adminKubeconfig, logger: throwing, nodeName: bare }),
          undefined,
        );
        const saved = process.env['NODE_NAME'];
        delete process.env['NODE_NAME'];
        try {
          assert.equal(await k8sNodeZone(admin), undefined);
          assert.match(seen.pop()!, /no node name \(set the env var NODE_NAME/);
        } finally {
          if (saved !== undefined) process.env['NODE_NAME'] = saved;
        }
        const user = await e.k.createUser(`zone-reader-${e.namespace}`);
        assert.equal(
          await k8sNodeZone({ kubeconfig: user.kubeconfig, logger, nodeName: zoned }),
          undefined,
        );
        const refused = seen.pop()!;
        assert.match(refused, /403 Forbidden reading Node/);
        assert.match(refused, /cannot get resource "nodes"/);
        assert.match(refused, /Grant this identity get on nodes \(a ClusterRole/);
        assert.deepEqual(seen, []);
      } finally {
        for (const name of [zoned, bare]) await e.k.request('DELETE', `/api/v1/nodes/${name}`);
      }
    });
  });

  test('slice changes under load: an added endpoint gets calls, a deleted slice none, 0 failed calls', async (t) => {
    const e = await env(t);
    if (!e) return;
    const [b1, b2, b3] = hosts(e.set);
    await kube.logged(async () => {
      await createService(e, 'churn');
      await putSlice(e, 'churn', 'churn-a', [[b1.host, 'ready']]);
      await putSlice(e, 'churn', 'churn-b', [[b2.host, 'ready']]);
      const observer = new LoadBalancerObserver();
      const greeter = client(`kubernetes:///churn.${e.namespace}:grpc`, observer);
      const load = startLoad(greeter, { concurrency: 4 });
      try {
        await waitFor(
          () => load.result.perBackend.has(b1.address) && load.result.perBackend.has(b2.address),
          {
            timeoutMs: 10_000,
            message: 'calls to both endpoints',
          },
        );
        const addedAt = performance.now();
        await putSlice(e, 'churn', 'churn-b', [
          [b2.host, 'ready'],
          [b3.host, 'ready'],
        ]);
        await waitFor(() => load.result.perBackend.has(b3.address), {
          timeoutMs: 5_000,
          message: 'calls to the added endpoint',
        });
        const addMs = Math.round(performance.now() - addedAt);
        await deleteSlice(e, 'churn-a');
        await waitFor(() => !observer.endpoints().some((x) => x.address === b1.address), {
          timeoutMs: 5_000,
          message: 'b1 out of the channel once its slice is deleted',
        });
        // Calls picked before the removal may still land on b1: wait until they have.
        await waitUntilQuiet(load, b1.address, {
          quietMs: 200,
          timeoutMs: 5_000,
          message: 'no more calls to b1',
        });
        const before = load.result.perBackend.get(b1.address);
        const total = load.result.ok;
        await waitFor(() => load.result.ok >= total + 200, {
          timeoutMs: 10_000,
          message: 'more calls',
        });
        assert.equal(
          load.result.perBackend.get(b1.address),
          before,
          'no call to the deleted slice',
        );
        const result = await load.stop();
        assert.equal(result.errors.length, 0, result.errors[0]?.message);
        t.diagnostic(JSON.stringify({ sliceUpdateToFirstCallMs: addMs }));
        // Closing the channel ends its watch: none left at the API server.
        assert.equal(await namespacedSliceWatches(e.k), 1);
        greeter.close();
        await waitFor(async () => (await namespacedSliceWatches(e.k)) === 0, {
          timeoutMs: 5_000,
          message: 'no EndpointSlice watch left at the API server after client.close()',
        });
      } finally {
        await load.stop();
        greeter.close();
      }
    });
  });

  test('a numeric Service port is mapped to the pods port through its name', async (t) => {
    const e = await env(t);
    if (!e) return;
    const [b1] = hosts(e.set);
    await kube.logged(async () => {
      await createService(e, 'mapped', 80);
      await putSlice(e, 'mapped', 'mapped-a', [[b1.host, 'ready']]);
      const greeter = client(`k8s://${e.namespace}/mapped:80`);
      try {
        const reply = await sayHello(greeter, 'port 80');
        // Port 80 is the Service's; the call went to the pod's port (the backend's).
        assert.equal(reply.address, b1.address);
        assert.notEqual(e.set.port, 80);
        const missing = client(`k8s:///mapped.${e.namespace}:81`);
        try {
          await assert.rejects(sayHello(missing, 'x', { deadlineMs: 3_000 }), (error: unknown) => {
            assert.ok(isServiceError(error));
            assert.match(error.details, /has no TCP port 81/);
            return true;
          });
        } finally {
          missing.close();
        }
      } finally {
        greeter.close();
      }
    });
  });

  test('no ready endpoint: serving-but-terminating ones are used; none at all fails fast and recovers', async (t) => {
    const e = await env(t);
    if (!e) return;
    const [b1, b2] = hosts(e.set);
    await kube.logged(async () => {
      await createService(e, 'drain');
      await putSlice(e, 'drain', 'drain-a', [
        [b1.host, 'terminating'],
        [b2.host, 'not-ready'],
      ]);
      const greeter = client(`k8s:///drain.${e.namespace}:grpc`);
      try {
        assert.equal((await sayHello(greeter, 'x')).address, b1.address);
        await putSlice(e, 'drain', 'drain-a', [
          [b1.host, 'terminating'],
          [b2.host, 'ready'],
        ]);
        await waitFor(async () => (await sayHello(greeter, 'x')).address === b2.address, {
          timeoutMs: 5_000,
          message: 'the ready endpoint preferred',
        });
        await deleteSlice(e, 'drain-a');
        await waitFor(
          async () => {
            try {
              await sayHello(greeter, 'x', { deadlineMs: 2_000 });
              return false;
            } catch (error) {
              return isServiceError(error) && error.code === grpc.status.UNAVAILABLE;
            }
          },
          { timeoutMs: 5_000, message: 'calls fail once the Service has no endpoints' },
        );
        const started = performance.now();
        await assert.rejects(sayHello(greeter, 'x', { deadlineMs: 3_000 }), (error: unknown) => {
          assert.ok(isServiceError(error));
          assert.equal(error.code, grpc.status.UNAVAILABLE);
          assert.match(error.details, /drain/);
          return true;
        });
        assert.ok(performance.now() - started < 2_000, 'fails fast, not at the deadline');
        await putSlice(e, 'drain', 'drain-b', [[b2.host, 'ready']]);
        await waitFor(
          async () => (await sayHello(greeter, 'x').catch(() => undefined))?.address === b2.address,
          {
            timeoutMs: 5_000,
            message: 'calls succeed again',
          },
        );
      } finally {
        greeter.close();
      }
    });
  });

  test('RBAC: a 403 names the missing permission; once granted the channel recovers by itself', async (t) => {
    const e = await env(t);
    if (!e) return;
    const [b1] = hosts(e.set);
    await kube.logged(async () => {
      await createService(e, 'guarded');
      await putSlice(e, 'guarded', 'guarded-a', [[b1.host, 'ready']]);
      const user = await e.k.createUser(`resolver-${e.namespace}`);
      register({
        grpc,
        resolvers: [
          createK8sResolverFactory({ scheme: 'k8s-limited', kubeconfig: user.kubeconfig }),
        ],
      });
      const greeter = client(`k8s-limited:///guarded.${e.namespace}:grpc`);
      try {
        await assert.rejects(sayHello(greeter, 'x', { deadlineMs: 5_000 }), (error: unknown) => {
          assert.ok(isServiceError(error));
          assert.equal(error.code, grpc.status.UNAVAILABLE);
          assert.match(error.details, /403 Forbidden/);
          assert.match(error.details, /cannot list resource "endpointslices"/);
          assert.match(error.details, /Grant this identity list and watch on endpointslices/);
          return true;
        });
        const grant = await e.k.request(
          'POST',
          `/apis/rbac.authorization.k8s.io/v1/namespaces/${e.namespace}/roles`,
          {
            metadata: { name: 'endpoints-reader' },
            rules: [
              {
                apiGroups: ['discovery.k8s.io'],
                resources: ['endpointslices'],
                verbs: ['list', 'watch'],
              },
            ],
          },
        );
        assert.equal(grant.status, 201, grant.body);
        const binding = await e.k.request(
          'POST',
          `/apis/rbac.authorization.k8s.io/v1/namespaces/${e.namespace}/rolebindings`,
          {
            metadata: { name: 'resolver' },
            roleRef: {
              apiGroup: 'rbac.authorization.k8s.io',
              kind: 'Role',
              name: 'endpoints-reader',
            },
            subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: user.name }],
          },
        );
        assert.equal(binding.status, 201, binding.body);
        await waitFor(
          async () => (await sayHello(greeter, 'x').catch(() => undefined))?.address === b1.address,
          {
            timeoutMs: 10_000,
            message: 'the channel resolves once the Role is bound',
          },
        );
      } finally {
        greeter.close();
      }
    });
  });

  test('in a pod: the service-account token and namespace files, no kubeconfig', async (t) => {
    const e = await env(t);
    if (!e) return;
    const [b1] = hosts(e.set);
    const prefix = mkdtempSync(join(tmpdir(), 'grpc-lb-pod-'));
    await kube
      .logged(async () => {
        await createService(e, 'incluster');
        await putSlice(e, 'incluster', 'incluster-a', [[b1.host, 'ready']]);
        const token = await e.k.serviceAccountToken(e.namespace, 'app');
        const dir = join(prefix, SERVICE_ACCOUNT_DIR);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'token'), token);
        writeFileSync(join(dir, 'namespace'), e.namespace);
        writeFileSync(join(dir, 'ca.crt'), readFileSync(e.k.caFile));
        const role = await e.k.request(
          'POST',
          `/apis/rbac.authorization.k8s.io/v1/namespaces/${e.namespace}/roles`,
          {
            metadata: { name: 'reader' },
            rules: [
              {
                apiGroups: ['discovery.k8s.io'],
                resources: ['endpointslices'],
                verbs: ['list', 'watch'],
              },
            ],
          },
        );
        assert.equal(role.status, 201, role.body);
        const bound = await e.k.request(
          'POST',
          `/apis/rbac.authorization.k8s.io/v1/namespaces/${e.namespace}/rolebindings`,
          {
            metadata: { name: 'app' },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'reader' },
            subjects: [{ kind: 'ServiceAccount', name: 'app', namespace: e.namespace }],
          },
        );
        assert.equal(bound.status, 201, bound.body);
        const saved = {
          host: process.env['KUBERNETES_SERVICE_HOST'],
          port: process.env['KUBERNETES_SERVICE_PORT'],
        };
        process.env['KUBERNETES_SERVICE_HOST'] = '127.0.0.1';
        process.env['KUBERNETES_SERVICE_PORT'] = String(e.k.port);
        try {
          register({
            grpc,
            resolvers: [
              createK8sResolverFactory({ scheme: 'k8s-pod', inClusterPathPrefix: prefix }),
            ],
          });
          // No namespace in the target: the pod's own.
          const greeter = client('k8s-pod:///incluster:grpc');
          try {
            await waitFor(
              async () =>
                (await sayHello(greeter, 'x').catch(() => undefined))?.address === b1.address,
              {
                timeoutMs: 10_000,
                message: 'resolved with the service-account token',
              },
            );
          } finally {
            greeter.close();
          }
        } finally {
          if (saved.host === undefined) delete process.env['KUBERNETES_SERVICE_HOST'];
          else process.env['KUBERNETES_SERVICE_HOST'] = saved.host;
          if (saved.port === undefined) delete process.env['KUBERNETES_SERVICE_PORT'];
          else process.env['KUBERNETES_SERVICE_PORT'] = saved.port;
        }
      })
      .finally(() => rmSync(prefix, { recursive: true, force: true }));
  });

  test('RBAC with list but not watch: calls succeed, LISTs back off (not one a second), one warning', async (t) => {
    const e = await env(t);
    if (!e) return;
    const [b1, b2] = hosts(e.set);
    await kube.logged(async () => {
      await createService(e, 'listonly');
      await putSlice(e, 'listonly', 'listonly-a', [[b1.host, 'ready']]);
      const user = await e.k.createUser(`listonly-${e.namespace}`);
      await grant(e, user.name, 'list-only', [
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list'] },
      ]);
      register({
        grpc,
        resolvers: [
          createK8sResolverFactory({ scheme: 'k8s-listonly', kubeconfig: user.kubeconfig }),
        ],
      });
      const warned = warnings.length;
      const greeter = client(`k8s-listonly:///listonly.${e.namespace}:grpc`);
      try {
        assert.equal((await sayHello(greeter, 'x', { deadlineMs: 5_000 })).address, b1.address);
        const lists = await namespacedSliceRequests(e.k, 'LIST');
        const windowMs = 20_000;
        const load = startLoad(greeter, { concurrency: 1 });
        await sleep(windowMs);
        const result = await load.stop();
        const listed = (await namespacedSliceRequests(e.k, 'LIST')) - lists;
        t.diagnostic(JSON.stringify({ windowMs, lists: listed }));
        assert.equal(result.errors.length, 0, result.errors[0]?.message);
        // Backoff 1 s, ×1.6, ±20%: about 5 lists in 20 s; the old loop made one a second.
        assert.ok(listed >= 2 && listed <= 8, `${listed} LISTs in ${windowMs} ms`);
        const mine = warnings.slice(warned).filter((w) => w.includes('listonly'));
        assert.equal(mine.length, 1, mine.join('\n'));
        assert.match(
          mine[0]!,
          /watching EndpointSlices .*403 Forbidden.*Grant this identity list and watch/,
        );
        // Re-listing still follows changes, at the backoff's pace.
        await putSlice(e, 'listonly', 'listonly-a', [[b2.host, 'ready']]);
        await waitFor(
          async () => (await sayHello(greeter, 'x').catch(() => undefined))?.address === b2.address,
          { timeoutMs: 40_000, message: 'a slice change reached the list-only client' },
        );
      } finally {
        greeter.close();
      }
    });
  });

  test('RBAC without get on services: a numeric pod port and a port-less target resolve from the slices', async (t) => {
    const e = await env(t);
    if (!e) return;
    const [b1, b2] = hosts(e.set);
    await kube.logged(async () => {
      await createService(e, 'nosvc');
      await putSlice(e, 'nosvc', 'nosvc-a', [[b1.host, 'ready']]);
      // A Service whose slices carry one port, for the port-less target.
      const single = await e.k.request('POST', `/api/v1/namespaces/${e.namespace}/services`, {
        metadata: { name: 'single' },
        spec: { ports: [{ port: 80, targetPort: e.set.port, protocol: 'TCP' }] },
      });
      assert.equal(single.status, 201, single.body);
      const body = sliceBody(e, 'single', 'single-a', [[b2.host, 'ready']]);
      const created = await e.k.request(
        'POST',
        `/apis/discovery.k8s.io/v1/namespaces/${e.namespace}/endpointslices`,
        { ...body, ports: [{ port: e.set.port, protocol: 'TCP' }] },
      );
      assert.equal(created.status, 201, created.body);
      const user = await e.k.createUser(`nosvc-${e.namespace}`);
      await grant(e, user.name, 'slices-only', [
        {
          apiGroups: ['discovery.k8s.io'],
          resources: ['endpointslices'],
          verbs: ['list', 'watch'],
        },
      ]);
      register({
        grpc,
        resolvers: [createK8sResolverFactory({ scheme: 'k8s-nosvc', kubeconfig: user.kubeconfig })],
      });
      const warned = warnings.length;
      const numeric = client(`k8s-nosvc:///nosvc.${e.namespace}:${e.set.port}`);
      const portless = client(`k8s-nosvc:///single.${e.namespace}`);
      try {
        assert.equal((await sayHello(numeric, 'x', { deadlineMs: 5_000 })).address, b1.address);
        assert.equal((await sayHello(portless, 'x', { deadlineMs: 5_000 })).address, b2.address);
        const mine = warnings.slice(warned).filter((w) => w.includes('get on services'));
        assert.equal(mine.length, 2, mine.join('\n'));
        assert.match(mine[0]!, /403 Forbidden: services "(nosvc|single)" is forbidden/);
      } finally {
        numeric.close();
        portless.close();
      }
    });
  });

  test('core/v1 Endpoints: an identity that may list and watch Endpoints but not EndpointSlices gets calls to the ready addresses, and follows changes', async (t) => {
    const e = await env(t);
    if (!e) return;
    const [b1, b2, b3] = hosts(e.set);
    await kube.logged(async () => {
      await createService(e, 'legacy');
      // Slices that say otherwise: an identity that cannot read them must not be using them.
      await putSlice(e, 'legacy', 'legacy-a', [[b3.host, 'ready']]);
      await putEndpoints(e, 'legacy', [b1.host, b2.host], [b3.host]);
      const user = await e.k.createUser(`endpoints-${e.namespace}`);
      await grant(e, user.name, 'endpoints-only', [
        { apiGroups: [''], resources: ['endpoints'], verbs: ['list', 'watch'] },
      ]);
      register({
        grpc,
        resolvers: [
          createK8sResolverFactory({ scheme: 'k8s-endpoints', kubeconfig: user.kubeconfig }),
        ],
      });
      const warned = warnings.length;
      const greeter = client(`k8s-endpoints:///legacy.${e.namespace}:grpc`);
      try {
        const warm = new Set<string>();
        await waitFor(
          async () => {
            warm.add((await sayHello(greeter, 'warm-up', { deadlineMs: 5_000 })).address);
            return warm.size === 2;
          },
          { timeoutMs: 10_000, message: 'both ready addresses answered' },
        );
        const seen = await spread(greeter, 40);
        assert.deepEqual([...seen.keys()].sort(), [b1.address, b2.address].sort());
        const mine = warnings.slice(warned).filter((w) => w.includes(`${e.namespace}/legacy`));
        assert.equal(mine.length, 1, mine.join('\n'));
        assert.match(
          mine[0]!,
          /listing EndpointSlices at .*: 403 Forbidden: .*following the Service's core\/v1 Endpoints instead/,
        );
        // The watch: b3 becomes ready and b1 goes away, as the endpoints controller would write it.
        const changedAt = performance.now();
        await putEndpoints(e, 'legacy', [b2.host, b3.host], []);
        await waitFor(
          async () => {
            const now = await spread(greeter, 20);
            return now.has(b3.address) && !now.has(b1.address);
          },
          { timeoutMs: 10_000, message: 'calls follow the changed Endpoints' },
        );
        t.diagnostic(
          JSON.stringify({
            endpointsUpdateToFollowedMs: Math.round(performance.now() - changedAt),
          }),
        );
        const after = await spread(greeter, 40);
        assert.deepEqual([...after.keys()].sort(), [b2.address, b3.address].sort());
        // Chosen in the target: the Endpoints at once, no EndpointSlice list, no warning.
        const lists = await namespacedSliceRequests(e.k, 'LIST');
        const before = warnings.length;
        const explicit = client(`k8s-endpoints:///legacy.${e.namespace}:grpc?source=endpoints`);
        try {
          const warmed = new Set<string>();
          await waitFor(
            async () => {
              warmed.add((await sayHello(explicit, 'warm-up', { deadlineMs: 5_000 })).address);
              return warmed.size === 2;
            },
            { timeoutMs: 10_000, message: 'both ready addresses answered (?source=endpoints)' },
          );
          assert.deepEqual([...warmed].sort(), [b2.address, b3.address].sort());
          assert.equal(await namespacedSliceRequests(e.k, 'LIST'), lists);
          assert.deepEqual(warnings.slice(before), []);
        } finally {
          explicit.close();
        }
      } finally {
        greeter.close();
      }
    });
  });

  test('API server outage: calls keep the last endpoints; after restart the watch resumes', async (t) => {
    const e = await env(t);
    if (!e) return;
    const [b1, b2] = hosts(e.set);
    await kube.logged(async () => {
      await createService(e, 'outage');
      await putSlice(e, 'outage', 'outage-a', [[b1.host, 'ready']]);
      const observer = new LoadBalancerObserver();
      const greeter = client(`k8s:///outage.${e.namespace}:grpc`, observer);
      const load = startLoad(greeter, { concurrency: 2 });
      try {
        await waitFor(() => load.result.ok > 50, { timeoutMs: 10_000, message: 'calls flowing' });
        await e.k.stop();
        const during = load.result.ok;
        await waitFor(() => load.result.ok >= during + 200, {
          timeoutMs: 10_000,
          message: 'calls keep flowing while the API server is down',
        });
        await e.k.start();
        await putSlice(e, 'outage', 'outage-a', [
          [b1.host, 'ready'],
          [b2.host, 'ready'],
        ]);
        await waitFor(() => load.result.perBackend.has(b2.address), {
          timeoutMs: 15_000,
          message: 'a change after the restart reaches the channel',
        });
        const result = await load.stop();
        assert.equal(result.errors.length, 0, result.errors[0]?.message);
      } finally {
        await load.stop();
        greeter.close();
      }
    });
  });
});
