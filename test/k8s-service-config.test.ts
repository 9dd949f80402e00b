/**
 * `k8s:///<service>.<namespace>:<port>?config=<ConfigMap>[/<key>]`: the channel's service config
 * is a ConfigMap data key, followed live, against a real kube-apiserver (RBAC on) and real
 * grpc-js backends on pod-like addresses (10.244.N.x), inside a network namespace of its own
 * (enter-netns, first import). The API server runs no controller: each test writes its Service,
 * EndpointSlices and ConfigMap itself.
 *
 * Each version's pods are in an EndpointSlice of their own labelled `version: v1` or `v2`; the
 * resolver gives every endpoint its slice's labels, so the traffic split's subsets select
 * versions by label. Each backend also reports its version in its replies.
 */
import './support/enter-netns';
import assert from 'node:assert/strict';
import { after, describe, test, type TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { LoadBalancerObserver, OBSERVER_OPTION, register, type ConfigEvent } from '@grpc-lb/core';
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

let pods: Promise<PodAddresses | undefined> | undefined;
let backends: BackendSet | undefined;
after(async () => {
  await backends?.stopAll();
  await (await pods)?.remove();
});

/** Every grpc-lb warning of the file, also printed as the default logger would. */
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

/** The API server, 4 backends (v1, v1, v2, v2) on pod addresses, and a fresh namespace. */
async function env(t: TestContext): Promise<Env | undefined> {
  const k = await kube.get(t);
  if (!k) return undefined;
  if (!registered) {
    registerK8s({ grpc, kubeconfig: k.adminKubeconfig, logger: recordingLogger });
    registered = true;
  }
  pods ??= addPodAddresses(t, 4);
  const addresses = await pods;
  if (!addresses) return undefined;
  backends ??= await startBackends({
    count: 4,
    network: addresses.network,
    labels: ['v1', 'v1', 'v2', 'v2'].map((version) => ({ version })),
  });
  for (const b of backends.backends) await b.resetStats();
  const namespace = `k8s-config-${process.pid}-${++serial}`;
  const created = await k.request('POST', '/api/v1/namespaces', { metadata: { name: namespace } });
  assert.equal(created.status, 201, created.body);
  return { k, set: backends, namespace };
}

/** A Service `name` with port `grpc`, and one EndpointSlice per version, labelled with it. */
async function createService(e: Env, name: string): Promise<void> {
  const service = await e.k.request('POST', `/api/v1/namespaces/${e.namespace}/services`, {
    metadata: { name },
    spec: { ports: [{ name: 'grpc', port: 80, targetPort: e.set.port, protocol: 'TCP' }] },
  });
  assert.equal(service.status, 201, service.body);
  for (const version of ['v1', 'v2']) {
    const slice = await e.k.request(
      'POST',
      `/apis/discovery.k8s.io/v1/namespaces/${e.namespace}/endpointslices`,
      {
        metadata: {
          name: `${name}-${version}`,
          labels: { 'kubernetes.io/service-name': name, version },
        },
        addressType: 'IPv4',
        endpoints: e.set.backends
          .filter((b) => b.labels['version'] === version)
          .map((b) => ({
            addresses: [b.host],
            conditions: { ready: true, serving: true, terminating: false },
            targetRef: { kind: 'Pod', name: `${name}-${version}-${b.host.split('.').at(-1)}` },
          })),
        ports: [{ name: 'grpc', port: e.set.port, protocol: 'TCP' }],
      },
    );
    assert.equal(slice.status, 201, slice.body);
  }
}

/** A service config that sends every call to `version`'s pods. */
function allTo(version: 'v1' | 'v2'): string {
  return JSON.stringify(
    {
      loadBalancingConfig: [
        {
          'grpc-lb.traffic_split': {
            subsets: [
              { name: 'v1', labels: { version: 'v1' } },
              { name: 'v2', labels: { version: 'v2' } },
            ],
            routes: [{ split: [{ subset: version, weight: 100 }] }],
          },
        },
      ],
    },
    null,
    2,
  );
}

/** A Role with `rules` in the test's namespace, bound to `user`. */
async function grant(
  e: Env,
  user: string,
  name: string,
  rules: { apiGroups: string[]; resources: string[]; resourceNames?: string[]; verbs: string[] }[],
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

/** Creates or replaces ConfigMap `name` with `data`; resolves with its new resourceVersion. */
async function putConfigMap(e: Env, name: string, data: Record<string, string>): Promise<string> {
  const base = `/api/v1/namespaces/${e.namespace}/configmaps`;
  const existing = await e.k.request('GET', `${base}/${name}`);
  const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data };
  const result =
    existing.status === 200
      ? await e.k.request('PUT', `${base}/${name}`, {
          ...body,
          metadata: {
            name,
            resourceVersion: (existing.json as { metadata: { resourceVersion: string } }).metadata
              .resourceVersion,
          },
        })
      : await e.k.request('POST', base, body);
  assert.ok(result.status === 200 || result.status === 201, result.body);
  return (result.json as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
}

async function deleteConfigMap(e: Env, name: string): Promise<void> {
  const result = await e.k.request(
    'DELETE',
    `/api/v1/namespaces/${e.namespace}/configmaps/${name}`,
  );
  assert.equal(result.status, 200, result.body);
}

/** The channel's own service config (round robin over every endpoint). */
const CHANNEL_CONFIG = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });

/** A warning of the file that includes every one of `parts` (each test's texts are its own). */
async function warned(...parts: string[]): Promise<string> {
  return waitFor(() => warnings.find((w) => parts.every((p) => w.includes(p))), {
    timeoutMs: 5_000,
    message: `a warning with ${parts.join(' … ')}`,
  });
}

function client(
  target: string,
  observer: LoadBalancerObserver,
  options: grpc.ChannelOptions = {},
): GreeterClient {
  return new Greeter(target, insecure, {
    'grpc.use_local_subchannel_pool': 1,
    'grpc-lb.max_refresh_backoff_ms': 1_000,
    [OBSERVER_OPTION]: observer,
    ...options,
  });
}

/**
 * Watches of one ConfigMap by name open at the API server (a watch with the field selector
 * metadata.name counts as scope "resource"), the API server's own included.
 */
async function configMapWatchesByName(k: KubeApiserver): Promise<number> {
  const metrics = await k.request('GET', '/metrics');
  let total = 0;
  for (const line of metrics.body.split('\n')) {
    if (
      line.startsWith('apiserver_longrunning_requests{') &&
      line.includes('resource="configmaps"') &&
      line.includes('scope="resource"') &&
      line.includes('verb="WATCH"')
    ) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

/** `calls` sequential calls; how many each version answered. */
/**
 * Waits until both versions answer (round robin over every endpoint: before every connection is
 * ready, over the ready ones).
 */
async function bothVersions(greeter: GreeterClient): Promise<void> {
  const seen = new Set<string>();
  await waitFor(
    async () => {
      seen.add((await sayHello(greeter, 'config')).labels['version'] ?? '?');
      return seen.has('v1') && seen.has('v2');
    },
    { timeoutMs: 5_000, message: 'calls answered by both v1 and v2' },
  );
}

async function versions(greeter: GreeterClient, calls: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < calls; i++) {
    const version = (await sayHello(greeter, 'config')).labels['version'] ?? '?';
    seen[version] = (seen[version] ?? 0) + 1;
  }
  return seen;
}

/** Waits until the channel on `target` follows the config whose source mentions `text`. */
async function applied(
  observer: LoadBalancerObserver,
  target: string,
  text: string,
  timeoutMs = 5_000,
) {
  return waitFor(
    () => observer.serviceConfigs().find((c) => c.target === target && c.source.includes(text)),
    { timeoutMs, message: `the channel follows ${text}` },
  );
}

describe('k8s: the service config from a ConfigMap (real kube-apiserver, real backends)', () => {
  test('the first resolution comes with the document; an edit moves calls at once, under load, without reconnecting', async (t) => {
    const e = await env(t);
    if (!e) return;
    await kube.logged(async () => {
      await createService(e, 'hello');
      const rv = await putConfigMap(e, 'hello-lb', { 'service-config.json': allTo('v2') });
      const target = `k8s:///hello.${e.namespace}:grpc?config=hello-lb`;
      const observer = new LoadBalancerObserver();
      const greeter = client(target, observer);
      try {
        // No warm-up: the channel started on the document's policy.
        assert.deepEqual(await versions(greeter, 50), { v2: 50 });
        const followed = observer.serviceConfigs().find((c) => c.target === target);
        assert.equal(
          followed?.source,
          `ConfigMap ${e.namespace}/hello-lb service-config.json (resourceVersion ${rv})`,
        );
        // Steady load on the same channel through both edits.
        const load = startLoad(greeter, { concurrency: 2, pauseMs: 2 });
        const editedAt = performance.now();
        const rv2 = await putConfigMap(e, 'hello-lb', { 'service-config.json': allTo('v1') });
        await applied(observer, target, `(resourceVersion ${rv2})`);
        const appliedMs = Math.round(performance.now() - editedAt);
        assert.deepEqual(await versions(greeter, 50), { v1: 50 });
        const rv3 = await putConfigMap(e, 'hello-lb', { 'service-config.json': allTo('v2') });
        await applied(observer, target, `(resourceVersion ${rv3})`);
        assert.deepEqual(await versions(greeter, 50), { v2: 50 });
        const loaded = load.result.ok;
        await waitFor(() => load.result.ok >= loaded + 50, {
          timeoutMs: 10_000,
          message: '50 more calls of the load on the last policy',
        });
        const result = await load.stop();
        assert.equal(result.errors.length, 0, result.errors[0]?.message);
        // One connection per backend for the whole test: the policy changes reconnected nothing.
        for (const b of e.set.backends) {
          const stats = await b.stats();
          assert.ok(
            stats.connectionsAccepted <= 1,
            `${b.name}: ${stats.connectionsAccepted} connections`,
          );
          assert.equal(stats.peers.length, 1, `${b.name}: peers ${stats.peers.join(', ')}`);
        }
        t.diagnostic(JSON.stringify({ configMapWriteToAppliedMs: appliedMs }));
        // Closing the channel ends its ConfigMap watch (the API server has watches of its own).
        const open = await configMapWatchesByName(e.k);
        greeter.close();
        await waitFor(async () => (await configMapWatchesByName(e.k)) === open - 1, {
          timeoutMs: 5_000,
          message: 'the ConfigMap watch closed at the API server after client.close()',
        });
      } finally {
        greeter.close();
      }
    });
  });

  test("a bad document (not JSON, a bad field) keeps the last good config and warns naming the ConfigMap, key and field; deletion returns to the channel's own config", async (t) => {
    const e = await env(t);
    if (!e) return;
    await kube.logged(async () => {
      await createService(e, 'bad');
      await putConfigMap(e, 'bad-lb', { 'service-config.json': allTo('v1') });
      const target = `k8s:///bad.${e.namespace}:grpc?config=bad-lb`;
      const observer = new LoadBalancerObserver();
      const rejected: ConfigEvent[] = [];
      observer.on('config', (event) => {
        if (event.status === 'rejected') rejected.push(event);
      });
      const greeter = client(target, observer, { 'grpc.service_config': CHANNEL_CONFIG });
      const document = `ConfigMap ${e.namespace}/bad-lb service-config.json`;
      try {
        assert.deepEqual(await versions(greeter, 20), { v1: 20 });

        const rv = await putConfigMap(e, 'bad-lb', {
          'service-config.json': '{"loadBalancingConfig": [',
        });
        const notJson = await warned(`${document} (resourceVersion ${rv})`, 'not valid JSON');
        assert.match(notJson, /keeping the previous service config/);
        assert.deepEqual(await versions(greeter, 20), { v1: 20 });

        const badField = JSON.parse(allTo('v2')) as {
          loadBalancingConfig: [
            { 'grpc-lb.traffic_split': { routes: [{ split: [{ weight: number }] }] } },
          ];
        };
        badField.loadBalancingConfig[0]['grpc-lb.traffic_split'].routes[0].split[0].weight = -5;
        const rv2 = await putConfigMap(e, 'bad-lb', {
          'service-config.json': JSON.stringify(badField),
        });
        const field = await warned(
          `${document} (resourceVersion ${rv2})`,
          'routes[0].split[0].weight',
        );
        assert.match(field, /keeping the previous service config/);
        assert.deepEqual(await versions(greeter, 20), { v1: 20 });
        assert.ok(
          rejected.some(
            (r) => r.status === 'rejected' && r.error.includes('routes[0].split[0].weight'),
          ),
          'the observer reported the refusal, naming the field',
        );
        const state = observer.serviceConfigs().find((c) => c.target === target);
        assert.match(state?.source ?? '', /bad-lb service-config\.json/);
        assert.match(state?.rejected?.error ?? '', /weight/);

        const rv3 = await putConfigMap(e, 'bad-lb', { 'service-config.json': allTo('v2') });
        await applied(observer, target, `(resourceVersion ${rv3})`);
        assert.deepEqual(await versions(greeter, 20), { v2: 20 });

        await deleteConfigMap(e, 'bad-lb');
        await applied(observer, target, 'grpc.service_config');
        await warned(`ConfigMap ${e.namespace}/bad-lb does not exist`);
        await bothVersions(greeter);
      } finally {
        greeter.close();
      }
    });
  });

  test('a bad document from the start: calls fail UNAVAILABLE naming the ConfigMap and the field, and succeed once it is fixed', async (t) => {
    const e = await env(t);
    if (!e) return;
    await kube.logged(async () => {
      await createService(e, 'broken');
      const rv = await putConfigMap(e, 'broken-lb', {
        'service-config.json': allTo('v1').replace('"weight": 100', '"weight": "all"'),
      });
      const target = `k8s:///broken.${e.namespace}:grpc?config=broken-lb`;
      const observer = new LoadBalancerObserver();
      const greeter = client(target, observer);
      try {
        await assert.rejects(sayHello(greeter, 'x', { deadlineMs: 5_000 }), (error: unknown) => {
          assert.ok(isServiceError(error));
          assert.equal(error.code, grpc.status.UNAVAILABLE);
          assert.ok(
            error.details.includes(
              `ConfigMap ${e.namespace}/broken-lb service-config.json (resourceVersion ${rv})`,
            ),
            error.details,
          );
          assert.match(error.details, /routes\[0\]\.split\[0\]\.weight/);
          return true;
        });
        await putConfigMap(e, 'broken-lb', { 'service-config.json': allTo('v1') });
        await waitFor(
          async () =>
            (await sayHello(greeter, 'x').catch(() => undefined))?.labels['version'] === 'v1',
          { timeoutMs: 10_000, message: 'calls succeed once the document is fixed' },
        );
        assert.deepEqual(await versions(greeter, 20), { v1: 20 });
      } finally {
        greeter.close();
      }
    });
  });

  test("a ConfigMap or key absent at first: the channel's own config, and the document applies when it appears", async (t) => {
    const e = await env(t);
    if (!e) return;
    await kube.logged(async () => {
      await createService(e, 'late');
      const target = `k8s:///late.${e.namespace}:grpc?config=late-lb/policy.json`;
      const observer = new LoadBalancerObserver();
      const greeter = client(target, observer);
      try {
        await bothVersions(greeter);
        await warned(`ConfigMap ${e.namespace}/late-lb does not exist`);
        await putConfigMap(e, 'late-lb', { 'service-config.json': allTo('v1') });
        await warned(`ConfigMap ${e.namespace}/late-lb has no data key "policy.json"`);
        await bothVersions(greeter);
        const rv = await putConfigMap(e, 'late-lb', {
          'service-config.json': allTo('v1'),
          'policy.json': allTo('v2'),
        });
        const state = await applied(observer, target, `(resourceVersion ${rv})`);
        assert.equal(
          state.source,
          `ConfigMap ${e.namespace}/late-lb policy.json (resourceVersion ${rv})`,
        );
        assert.deepEqual(await versions(greeter, 20), { v2: 20 });
      } finally {
        greeter.close();
      }
    });
  });

  test('RBAC: an identity without configmaps gets an error naming the ConfigMap and the rule; a rule restricted by resourceNames is enough', async (t) => {
    const e = await env(t);
    if (!e) return;
    await kube.logged(async () => {
      await createService(e, 'guarded');
      await putConfigMap(e, 'guarded-lb', { 'service-config.json': allTo('v2') });
      const user = await e.k.createUser(`config-reader-${e.namespace}`);
      await grant(e, user.name, 'endpoints-reader', [
        {
          apiGroups: ['discovery.k8s.io'],
          resources: ['endpointslices'],
          verbs: ['list', 'watch'],
        },
        { apiGroups: [''], resources: ['services'], verbs: ['get'] },
      ]);
      register({
        grpc,
        logger: recordingLogger,
        resolvers: [
          createK8sResolverFactory({ scheme: 'k8s-config-limited', kubeconfig: user.kubeconfig }),
        ],
      });
      const target = `k8s-config-limited:///guarded.${e.namespace}:grpc?config=guarded-lb`;
      const observer = new LoadBalancerObserver();
      const greeter = client(target, observer);
      try {
        await assert.rejects(sayHello(greeter, 'x', { deadlineMs: 5_000 }), (error: unknown) => {
          assert.ok(isServiceError(error));
          assert.equal(error.code, grpc.status.UNAVAILABLE);
          assert.match(error.details, new RegExp(`ConfigMap ${e.namespace}/guarded-lb`));
          assert.match(error.details, /403 Forbidden/);
          assert.match(error.details, /cannot list resource "configmaps"/);
          assert.match(
            error.details,
            new RegExp(
              `Grant this identity get, list and watch on configmaps \\(the core apiGroup ""\\) in namespace ${e.namespace}`,
            ),
          );
          return true;
        });
        // Only this ConfigMap: the resolver lists and watches it by metadata.name.
        await grant(e, user.name, 'config-reader', [
          {
            apiGroups: [''],
            resources: ['configmaps'],
            resourceNames: ['guarded-lb'],
            verbs: ['get', 'list', 'watch'],
          },
        ]);
        await waitFor(
          async () =>
            (await sayHello(greeter, 'x').catch(() => undefined))?.labels['version'] === 'v2',
          { timeoutMs: 10_000, message: "calls succeed, on the document's policy, once granted" },
        );
        assert.deepEqual(await versions(greeter, 20), { v2: 20 });
        // Such a rule allows a list by that name only, not of the namespace's ConfigMaps.
        const base = `/api/v1/namespaces/${e.namespace}/configmaps`;
        assert.equal((await e.k.request('GET', base, undefined, user)).status, 403);
        const byName = `${base}?fieldSelector=${encodeURIComponent('metadata.name=guarded-lb')}`;
        assert.equal((await e.k.request('GET', byName, undefined, user)).status, 200);
        // The watch works under that rule too: an edit arrives.
        const rv = await putConfigMap(e, 'guarded-lb', { 'service-config.json': allTo('v1') });
        await applied(observer, target, `(resourceVersion ${rv})`);
        assert.deepEqual(await versions(greeter, 20), { v1: 20 });
      } finally {
        greeter.close();
      }
    });
  });

  // Last: it kills and restarts the API server.
  test('an API server outage keeps the last document (0 failed calls); after the restart an edit applies', async (t) => {
    const e = await env(t);
    if (!e) return;
    await kube.logged(async () => {
      await createService(e, 'outage');
      await putConfigMap(e, 'outage-lb', { 'service-config.json': allTo('v1') });
      const target = `k8s:///outage.${e.namespace}:grpc?config=outage-lb`;
      const observer = new LoadBalancerObserver();
      const greeter = client(target, observer);
      const load = startLoad(greeter, { concurrency: 2, pauseMs: 2 });
      try {
        await waitFor(() => load.result.ok >= 50, { timeoutMs: 10_000, message: '50 calls' });
        await e.k.kill();
        await warned(
          `ConfigMap ${e.namespace}/outage-lb`,
          'keeping its last document and listing it again with backoff',
        );
        const during = load.result.ok;
        await waitFor(() => load.result.ok >= during + 200, {
          timeoutMs: 10_000,
          message: '200 calls while the API server is down',
        });
        const result = await load.stop();
        assert.equal(result.errors.length, 0, result.errors[0]?.message);
        const [v1a, v1b] = e.set.backends;
        const toV1 =
          (result.perBackend.get(v1a!.address) ?? 0) + (result.perBackend.get(v1b!.address) ?? 0);
        assert.equal(toV1, result.ok, "every call on the document's policy (v1)");
        await e.k.start();
        const writtenAt = performance.now();
        const rv = await putConfigMap(e, 'outage-lb', { 'service-config.json': allTo('v2') });
        // The ConfigMap is listed again after the watch backoff (1 s, growing while it was down).
        await applied(observer, target, `(resourceVersion ${rv})`, 35_000);
        const appliedMs = Math.round(performance.now() - writtenAt);
        assert.deepEqual(await versions(greeter, 20), { v2: 20 });
        t.diagnostic(JSON.stringify({ restartWriteToAppliedMs: appliedMs }));
      } finally {
        await load.stop();
        greeter.close();
      }
    });
  });
});
