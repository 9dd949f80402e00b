/**
 * The real Kubernetes API server the k8s resolver is tested against (test/support/kube-apiserver.ts:
 * kube-apiserver and etcd 3.6 built from Go modules, run as envtest runs them), driven through
 * `@kubernetes/client-node` 1.x — the client the resolver uses:
 * - a Service and its EndpointSlices are created and read back field by field (conditions, ports,
 *   zone, the `kubernetes.io/service-name` label a resolver selects on);
 * - a watch sees an EndpointSlice change and its deletion, in order;
 * - RBAC is on: a user or ServiceAccount without a grant is refused with 403 until a Role allows
 *   it to list and watch EndpointSlices;
 * - the API server restarts on the same port and data (an outage a resolver must ride out).
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type * as ClientNodeModule from '@kubernetes/client-node' with {
  'resolution-mode': 'import',
};
import type { KubeConfig, V1EndpointSlice } from '@kubernetes/client-node' with {
  'resolution-mode': 'import',
};
import { waitFor } from './harness';
import { requireKubeApiserver, startKubeApiserver } from './support/kube-apiserver';
import { serverFixture } from './support/server-fixture';

const NAMESPACE = 'grpc-lb-test';

// @kubernetes/client-node 1.x is ESM only: loaded with import() from this CommonJS test.
type ClientNode = typeof ClientNodeModule;
let k8s: ClientNode;

before(async () => {
  k8s = await import('@kubernetes/client-node');
});
const fixture = serverFixture('kube-apiserver', () => startKubeApiserver(), requireKubeApiserver);

function config(kubeconfigPath: string): KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return kc;
}

function slice(
  name: string,
  addresses: { ip: string; ready: boolean; zone?: string }[],
): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace: NAMESPACE,
      labels: {
        'kubernetes.io/service-name': 'hello',
        'endpointslice.kubernetes.io/managed-by': 'grpc-lb-test',
      },
    },
    addressType: 'IPv4',
    endpoints: addresses.map((a) => ({
      addresses: [a.ip],
      conditions: { ready: a.ready, serving: a.ready, terminating: !a.ready },
      ...(a.zone ? { zone: a.zone } : {}),
    })),
    ports: [{ name: 'grpc', port: 50051, protocol: 'TCP' }],
  };
}

async function statusOf(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
    return 200;
  } catch (error) {
    if (error instanceof k8s.ApiException) return error.code;
    throw error;
  }
}

describe('kube-apiserver built from Go modules, through @kubernetes/client-node', () => {
  test('reports the pinned version and is ready', async (t) => {
    const k = await fixture.get(t);
    if (!k) return;
    await fixture.logged(async () => {
      assert.equal(k.version, '1.36.3');
      const version = await k.request('GET', '/version');
      assert.equal(version.status, 200);
      assert.equal((version.json as { gitVersion: string }).gitVersion, 'v1.36.3');
      const readyz = await k.request('GET', '/readyz');
      assert.equal(readyz.status, 200);
      assert.equal(readyz.body, 'ok');
    });
  });

  test('creates a Service and EndpointSlices and reads them back', async (t) => {
    const k = await fixture.get(t);
    if (!k) return;
    await fixture.logged(async () => {
      const kc = config(k.adminKubeconfig);
      const core = kc.makeApiClient(k8s.CoreV1Api);
      const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
      await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
      await core.createNamespacedService({
        namespace: NAMESPACE,
        body: {
          metadata: { name: 'hello' },
          spec: {
            clusterIP: 'None',
            selector: { app: 'hello' },
            ports: [{ name: 'grpc', port: 50051, targetPort: 50051, protocol: 'TCP' }],
          },
        },
      });
      await discovery.createNamespacedEndpointSlice({
        namespace: NAMESPACE,
        body: slice('hello-a', [
          { ip: '10.244.0.2', ready: true, zone: 'zone-a' },
          { ip: '10.244.0.3', ready: false, zone: 'zone-b' },
        ]),
      });
      await discovery.createNamespacedEndpointSlice({
        namespace: NAMESPACE,
        body: slice('hello-b', [{ ip: '10.244.0.4', ready: true }]),
      });
      // A slice of another Service: a label selector must leave it out.
      await discovery.createNamespacedEndpointSlice({
        namespace: NAMESPACE,
        body: {
          ...slice('other-a', [{ ip: '10.244.0.9', ready: true }]),
          metadata: {
            name: 'other-a',
            namespace: NAMESPACE,
            labels: { 'kubernetes.io/service-name': 'other' },
          },
        },
      });

      const service = await core.readNamespacedService({ name: 'hello', namespace: NAMESPACE });
      assert.equal(service.spec?.clusterIP, 'None');
      assert.deepEqual(
        service.spec?.ports?.map((p) => [p.name, p.port]),
        [['grpc', 50051]],
      );

      const list = await discovery.listNamespacedEndpointSlice({
        namespace: NAMESPACE,
        labelSelector: 'kubernetes.io/service-name=hello',
      });
      assert.deepEqual(list.items.map((s) => s.metadata?.name).sort(), ['hello-a', 'hello-b']);
      assert.match(list.metadata?._continue ?? '', /^$/);
      assert.ok(Number(list.metadata?.resourceVersion) > 0, 'the list has a resourceVersion');
      const a = list.items.find((s) => s.metadata?.name === 'hello-a')!;
      assert.equal(a.addressType, 'IPv4');
      assert.deepEqual(
        a.ports?.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
        [{ name: 'grpc', port: 50051, protocol: 'TCP' }],
      );
      assert.deepEqual(
        a.endpoints.map((e) => ({
          ip: e.addresses[0],
          ready: e.conditions?.ready,
          serving: e.conditions?.serving,
          terminating: e.conditions?.terminating,
          zone: e.zone,
        })),
        [
          { ip: '10.244.0.2', ready: true, serving: true, terminating: false, zone: 'zone-a' },
          { ip: '10.244.0.3', ready: false, serving: false, terminating: true, zone: 'zone-b' },
        ],
      );
    });
  });

  test('refuses loopback endpoint addresses (so resolver tests need pod-like IPs)', async (t) => {
    const k = await fixture.get(t);
    if (!k) return;
    await fixture.logged(async () => {
      const discovery = config(k.adminKubeconfig).makeApiClient(k8s.DiscoveryV1Api);
      const refused = discovery.createNamespacedEndpointSlice({
        namespace: NAMESPACE,
        body: slice('loopback', [{ ip: '127.0.0.2', ready: true }]),
      });
      await assert.rejects(refused, (error: unknown) => {
        assert.ok(error instanceof k8s.ApiException);
        assert.equal(error.code, 422);
        assert.match(String(error.body), /may not be in the loopback range/);
        return true;
      });
    });
  });

  test('a watch sees an EndpointSlice change and then its deletion', async (t) => {
    const k = await fixture.get(t);
    if (!k) return;
    await fixture.logged(async () => {
      const kc = config(k.adminKubeconfig);
      const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
      const list = await discovery.listNamespacedEndpointSlice({
        namespace: NAMESPACE,
        labelSelector: 'kubernetes.io/service-name=hello',
      });
      const events: { type: string; name: string; ips: string[] }[] = [];
      let ended: unknown = 'still open';
      const controller = await new k8s.Watch(kc).watch(
        `/apis/discovery.k8s.io/v1/namespaces/${NAMESPACE}/endpointslices`,
        {
          labelSelector: 'kubernetes.io/service-name=hello',
          resourceVersion: list.metadata?.resourceVersion,
          allowWatchBookmarks: true,
        },
        (type, object: V1EndpointSlice) => {
          if (type === 'BOOKMARK') return;
          events.push({
            type,
            name: object.metadata?.name ?? '',
            ips: object.endpoints.flatMap((e) => e.addresses),
          });
        },
        (error) => {
          ended = error;
        },
      );
      try {
        await discovery.replaceNamespacedEndpointSlice({
          name: 'hello-b',
          namespace: NAMESPACE,
          body: slice('hello-b', [
            { ip: '10.244.0.4', ready: true },
            { ip: '10.244.0.5', ready: true },
          ]),
        });
        await discovery.deleteNamespacedEndpointSlice({ name: 'hello-b', namespace: NAMESPACE });
        await waitFor(() => events.length >= 2, {
          timeoutMs: 10_000,
          message: 'two watch events',
        });
        assert.deepEqual(events, [
          { type: 'MODIFIED', name: 'hello-b', ips: ['10.244.0.4', '10.244.0.5'] },
          { type: 'DELETED', name: 'hello-b', ips: ['10.244.0.4', '10.244.0.5'] },
        ]);
        assert.equal(ended, 'still open');
      } finally {
        controller.abort();
      }
    });
  });

  test('RBAC: a user without a grant gets 403 until a Role allows list and watch', async (t) => {
    const k = await fixture.get(t);
    if (!k) return;
    await fixture.logged(async () => {
      const admin = config(k.adminKubeconfig);
      const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
      const reader = await k.createUser('reader', ['grpc-lb:readers']);
      const asReader = config(reader.kubeconfig).makeApiClient(k8s.DiscoveryV1Api);
      const list = (): Promise<unknown> =>
        asReader.listNamespacedEndpointSlice({ namespace: NAMESPACE });
      assert.equal(await statusOf(list()), 403);
      // The raw status body names who was refused what.
      const raw = await k.request(
        'GET',
        `/apis/discovery.k8s.io/v1/namespaces/${NAMESPACE}/endpointslices`,
        undefined,
        reader,
      );
      assert.equal(raw.status, 403);
      assert.match(
        (raw.json as { message: string }).message,
        /User "reader" cannot list resource "endpointslices"/,
      );

      await rbac.createNamespacedRole({
        namespace: NAMESPACE,
        body: {
          metadata: { name: 'endpointslice-reader' },
          rules: [
            {
              apiGroups: ['discovery.k8s.io'],
              resources: ['endpointslices'],
              verbs: ['get', 'list', 'watch'],
            },
          ],
        },
      });
      await rbac.createNamespacedRoleBinding({
        namespace: NAMESPACE,
        body: {
          metadata: { name: 'readers' },
          roleRef: {
            apiGroup: 'rbac.authorization.k8s.io',
            kind: 'Role',
            name: 'endpointslice-reader',
          },
          subjects: [
            { kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'grpc-lb:readers' },
          ],
        },
      });
      // The authorizer learns the binding through its informer: shortly, not at once.
      await waitFor(async () => (await statusOf(list())) === 200, {
        timeoutMs: 10_000,
        message: 'the reader may list EndpointSlices',
      });
      // Only what was granted: Services stay forbidden, and so does another namespace.
      const core = config(reader.kubeconfig).makeApiClient(k8s.CoreV1Api);
      assert.equal(await statusOf(core.listNamespacedService({ namespace: NAMESPACE })), 403);
      assert.equal(
        await statusOf(asReader.listNamespacedEndpointSlice({ namespace: 'default' })),
        403,
      );
    });
  });

  test('a ServiceAccount token (TokenRequest) authenticates, and RBAC applies to it', async (t) => {
    const k = await fixture.get(t);
    if (!k) return;
    await fixture.logged(async () => {
      const token = await k.serviceAccountToken(NAMESPACE, 'resolver');
      assert.equal(token.split('.').length, 3, 'a JWT');
      const asAccount = config(k.tokenKubeconfig('resolver', token)).makeApiClient(
        k8s.DiscoveryV1Api,
      );
      const list = (): Promise<unknown> =>
        asAccount.listNamespacedEndpointSlice({ namespace: NAMESPACE });
      assert.equal(await statusOf(list()), 403);
      const bad = await k.request('GET', '/api/v1/namespaces', undefined, { token: `${token}x` });
      assert.equal(bad.status, 401, 'a tampered token is not authenticated');

      await config(k.adminKubeconfig)
        .makeApiClient(k8s.RbacAuthorizationV1Api)
        .createNamespacedRoleBinding({
          namespace: NAMESPACE,
          body: {
            metadata: { name: 'resolver' },
            roleRef: {
              apiGroup: 'rbac.authorization.k8s.io',
              kind: 'Role',
              name: 'endpointslice-reader',
            },
            subjects: [{ kind: 'ServiceAccount', name: 'resolver', namespace: NAMESPACE }],
          },
        });
      await waitFor(async () => (await statusOf(list())) === 200, {
        timeoutMs: 10_000,
        message: 'the ServiceAccount may list EndpointSlices',
      });
    });
  });

  test('restarts on the same port with its data (an API server outage)', async (t) => {
    const k = await fixture.get(t);
    if (!k) return;
    await fixture.logged(async () => {
      const discovery = config(k.adminKubeconfig).makeApiClient(k8s.DiscoveryV1Api);
      const before = await discovery.listNamespacedEndpointSlice({ namespace: NAMESPACE });
      await k.stop();
      assert.equal(k.running, false);
      await assert.rejects(discovery.listNamespacedEndpointSlice({ namespace: NAMESPACE }));
      await k.start();
      const afterRestart = await discovery.listNamespacedEndpointSlice({ namespace: NAMESPACE });
      assert.deepEqual(
        afterRestart.items.map((s) => s.metadata?.name).sort(),
        before.items.map((s) => s.metadata?.name).sort(),
      );
      assert.ok(afterRestart.items.length >= 2);
    });
  });
});
