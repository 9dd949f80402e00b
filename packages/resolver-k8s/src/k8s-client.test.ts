/**
 * createK8sApi (the real `@kubernetes/client-node` calls) against a local HTTP server that plays
 * a hanging or slow API server: every request in flight is torn down — its socket closed at the
 * server — when it times out or its signal fires, and watches ask for bookmarks and a server-side
 * timeout. Everything runs on 127.0.0.1; the real kube-apiserver is exercised in
 * test/k8s-resolver.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createK8sApi, WATCH_TIMEOUT_SECONDS, type K8sApi } from './k8s-client';

interface Seen {
  readonly url: URL;
  readonly closed: Promise<void>;
  readonly res: ServerResponse;
}

/** Every request is kept open (never answered) unless `answer` handles it. */
class HangingServer {
  readonly requests: Seen[] = [];
  answer: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  private readonly waiters: (() => void)[] = [];
  readonly server: Server = createServer((req, res) => {
    const closed = new Promise<void>((resolve) => req.socket.once('close', () => resolve()));
    this.requests.push({ url: new URL(req.url ?? '/', 'http://x'), closed, res });
    for (const wake of this.waiters.splice(0)) wake();
    this.answer?.(req, res);
  });

  async next(count: number): Promise<Seen> {
    while (this.requests.length < count) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return this.requests[count - 1]!;
  }
}

const hanging = new HangingServer();
let dir = '';
let kubeconfig = '';

before(async () => {
  await new Promise<void>((resolve) => hanging.server.listen(0, '127.0.0.1', resolve));
  const { port } = hanging.server.address() as AddressInfo;
  dir = mkdtempSync(join(tmpdir(), 'grpc-lb-k8s-client-'));
  kubeconfig = join(dir, 'config');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: local\n  cluster:\n    server: http://127.0.0.1:${port}\n    insecure-skip-tls-verify: true`,
      'users:',
      '- name: u\n  user:\n    token: not-a-secret',
      'contexts:',
      '- name: c\n  context:\n    cluster: local\n    user: u',
      'current-context: c',
      '',
    ].join('\n'),
  );
});

after(() => {
  hanging.server.closeAllConnections();
  hanging.server.close();
  rmSync(dir, { recursive: true, force: true });
});

function api(requestTimeoutMs: number): Promise<K8sApi> {
  return createK8sApi({ kubeconfig, requestTimeoutMs });
}

/** Resolves when the server saw the request's socket close (fails the test after 5 s). */
function socketClosed(seen: Seen, what: string): Promise<void> {
  return Promise.race([
    seen.closed,
    new Promise<void>((_, reject) =>
      setTimeout(() => reject(new Error(`${what}: the socket is still open`)), 5_000).unref(),
    ),
  ]);
}

describe('createK8sApi: no request outlives its timeout or its signal', () => {
  test('a list with no answer fails at the timeout, and its socket is closed', async () => {
    const k = await api(300);
    const count = hanging.requests.length;
    await assert.rejects(k.listSlices('default', 'hello'), {
      message: `listing EndpointSlices at ${k.server}: no answer in 300 ms`,
    });
    const seen = await hanging.next(count + 1);
    assert.equal(seen.url.pathname, '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices');
    await socketClosed(seen, 'the timed-out list');
  });

  test('a list in flight is aborted by its signal, socket included', async () => {
    const k = await api(60_000);
    const count = hanging.requests.length;
    const controller = new AbortController();
    const listing = k.listSlices('default', 'hello', controller.signal);
    const seen = await hanging.next(count + 1);
    controller.abort();
    await assert.rejects(listing);
    await socketClosed(seen, 'the aborted list');
  });

  test('a read of the Service in flight is aborted by its signal, and times out', async () => {
    const k = await api(60_000);
    const count = hanging.requests.length;
    const controller = new AbortController();
    const reading = k.readService('prod', 'hello', controller.signal);
    const seen = await hanging.next(count + 1);
    assert.equal(seen.url.pathname, '/api/v1/namespaces/prod/services/hello');
    controller.abort();
    await assert.rejects(reading);
    await socketClosed(seen, 'the aborted read');
    const short = await api(300);
    await assert.rejects(short.readService('prod', 'hello'), /no answer in 300 ms/);
    await socketClosed(await hanging.next(count + 2), 'the timed-out read');
  });

  test('a watch that does not open in time is abandoned, socket included', async () => {
    const k = await api(300);
    const count = hanging.requests.length;
    await assert.rejects(
      k.watchSlices(
        'default',
        'hello',
        '5',
        () => undefined,
        () => undefined,
      ),
      /opening a watch at .*: no answer in 300 ms/,
    );
    await socketClosed(await hanging.next(count + 1), 'the watch that never opened');
  });

  test('a watch asks for bookmarks and a server-side timeout of 40–50 s; abort() closes it', async () => {
    const k = await api(5_000);
    const count = hanging.requests.length;
    hanging.answer = (req, res) => {
      if (!req.url?.includes('watch=true')) return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(
        JSON.stringify({
          type: 'BOOKMARK',
          object: { kind: 'EndpointSlice', metadata: { resourceVersion: '7' } },
        }) + '\n',
      );
      return true;
    };
    try {
      const events: string[] = [];
      const watch = await k.watchSlices(
        'default',
        'hello',
        '5',
        (type) => events.push(type),
        () => undefined,
      );
      const seen = await hanging.next(count + 1);
      const query = seen.url.searchParams;
      assert.equal(query.get('watch'), 'true');
      assert.equal(query.get('allowWatchBookmarks'), 'true');
      assert.equal(query.get('resourceVersion'), '5');
      assert.equal(query.get('labelSelector'), 'kubernetes.io/service-name=hello');
      const timeout = Number(query.get('timeoutSeconds'));
      assert.ok(
        timeout >= WATCH_TIMEOUT_SECONDS - 5 && timeout <= WATCH_TIMEOUT_SECONDS + 5,
        `timeoutSeconds=${timeout}`,
      );
      assert.ok(timeout >= 40 && timeout <= 50, `timeoutSeconds=${timeout}`);
      while (events.length === 0) await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(events, ['BOOKMARK']);
      watch.abort();
      await socketClosed(seen, 'the aborted watch');
    } finally {
      hanging.answer = undefined;
    }
  });

  test('an Endpoints list asks for the object named after the Service, and times out like the others', async () => {
    const k = await api(300);
    const count = hanging.requests.length;
    await assert.rejects(k.listEndpoints('prod', 'hello'), {
      message: `listing Endpoints at ${k.server}: no answer in 300 ms`,
    });
    const seen = await hanging.next(count + 1);
    assert.equal(seen.url.pathname, '/api/v1/namespaces/prod/endpoints');
    assert.equal(seen.url.searchParams.get('fieldSelector'), 'metadata.name=hello');
    await socketClosed(seen, 'the timed-out Endpoints list');
    const long = await api(60_000);
    const controller = new AbortController();
    const listing = long.listEndpoints('prod', 'hello', controller.signal);
    const next = await hanging.next(count + 2);
    controller.abort();
    await assert.rejects(listing);
    await socketClosed(next, 'the aborted Endpoints list');
  });

  test('an Endpoints watch: the same field selector, bookmarks and server-side timeout; abort() closes it', async () => {
    const k = await api(5_000);
    const count = hanging.requests.length;
    hanging.answer = (req, res) => {
      if (!req.url?.includes('watch=true')) return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(
        JSON.stringify({
          type: 'ADDED',
          object: { kind: 'Endpoints', metadata: { name: 'hello', resourceVersion: '8' } },
        }) + '\n',
      );
      return true;
    };
    try {
      const events: unknown[] = [];
      const watch = await k.watchEndpoints(
        'prod',
        'hello',
        '5',
        (type, object) => events.push([type, object]),
        () => undefined,
      );
      const seen = await hanging.next(count + 1);
      assert.equal(seen.url.pathname, '/api/v1/namespaces/prod/endpoints');
      const query = seen.url.searchParams;
      assert.equal(query.get('watch'), 'true');
      assert.equal(query.get('fieldSelector'), 'metadata.name=hello');
      assert.equal(query.get('labelSelector'), null);
      assert.equal(query.get('allowWatchBookmarks'), 'true');
      assert.equal(query.get('resourceVersion'), '5');
      const timeout = Number(query.get('timeoutSeconds'));
      assert.ok(timeout >= 40 && timeout <= 50, `timeoutSeconds=${timeout}`);
      while (events.length === 0) await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(events, [
        ['ADDED', { kind: 'Endpoints', metadata: { name: 'hello', resourceVersion: '8' } }],
      ]);
      watch.abort();
      await socketClosed(seen, 'the aborted Endpoints watch');
    } finally {
      hanging.answer = undefined;
    }
  });

  test('a ConfigMap list asks for the one ConfigMap by metadata.name, and times out like the others', async () => {
    const k = await api(300);
    const count = hanging.requests.length;
    await assert.rejects(k.listConfigMaps('prod', 'hello-lb'), {
      message: `listing ConfigMap prod/hello-lb at ${k.server}: no answer in 300 ms`,
    });
    const seen = await hanging.next(count + 1);
    assert.equal(seen.url.pathname, '/api/v1/namespaces/prod/configmaps');
    assert.equal(seen.url.searchParams.get('fieldSelector'), 'metadata.name=hello-lb');
    await socketClosed(seen, 'the timed-out ConfigMap list');
    const long = await api(60_000);
    const controller = new AbortController();
    const listing = long.listConfigMaps('prod', 'hello-lb', controller.signal);
    const next = await hanging.next(count + 2);
    controller.abort();
    await assert.rejects(listing);
    await socketClosed(next, 'the aborted ConfigMap list');
  });

  test('a ConfigMap list answered: its items and resourceVersion', async () => {
    const k = await api(5_000);
    hanging.answer = (req, res) => {
      if (!req.url?.includes('/configmaps')) return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          kind: 'ConfigMapList',
          apiVersion: 'v1',
          metadata: { resourceVersion: '77' },
          items: [
            {
              metadata: { name: 'hello-lb', resourceVersion: '70' },
              data: { 'service-config.json': '{}' },
            },
          ],
        }),
      );
      return true;
    };
    try {
      const list = await k.listConfigMaps('prod', 'hello-lb');
      assert.equal(list.resourceVersion, '77');
      assert.equal(list.items.length, 1);
      assert.equal(list.items[0]?.metadata?.name, 'hello-lb');
      assert.deepEqual(list.items[0]?.data, { 'service-config.json': '{}' });
    } finally {
      hanging.answer = undefined;
    }
  });

  test('a ConfigMap watch: the same field selector, bookmarks and server-side timeout; abort() closes it', async () => {
    const k = await api(5_000);
    const count = hanging.requests.length;
    hanging.answer = (req, res) => {
      if (!req.url?.includes('watch=true')) return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(
        JSON.stringify({
          type: 'MODIFIED',
          object: { kind: 'ConfigMap', metadata: { name: 'hello-lb', resourceVersion: '9' } },
        }) + '\n',
      );
      return true;
    };
    try {
      const events: unknown[] = [];
      const watch = await k.watchConfigMaps(
        'prod',
        'hello-lb',
        '5',
        (type, object) => events.push([type, object]),
        () => undefined,
      );
      const seen = await hanging.next(count + 1);
      assert.equal(seen.url.pathname, '/api/v1/namespaces/prod/configmaps');
      const query = seen.url.searchParams;
      assert.equal(query.get('watch'), 'true');
      assert.equal(query.get('fieldSelector'), 'metadata.name=hello-lb');
      assert.equal(query.get('allowWatchBookmarks'), 'true');
      assert.equal(query.get('resourceVersion'), '5');
      const timeout = Number(query.get('timeoutSeconds'));
      assert.ok(timeout >= 40 && timeout <= 50, `timeoutSeconds=${timeout}`);
      while (events.length === 0) await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(events, [
        ['MODIFIED', { kind: 'ConfigMap', metadata: { name: 'hello-lb', resourceVersion: '9' } }],
      ]);
      watch.abort();
      await socketClosed(seen, 'the aborted ConfigMap watch');
    } finally {
      hanging.answer = undefined;
    }
  });
});
