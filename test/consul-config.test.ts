/**
 * Service config from Consul KV (`consul:///<service>?config=<key>`) against a real Consul agent
 * and real grpc-js backends on 127.0.0.x registered with meta version=v1/v2: the KV document is a
 * `grpc-lb.traffic_split` config, rewritten with `PUT /v1/kv/<key>` while the channel runs.
 * Each test uses its own service and key; the agent is shared by the file.
 */
import assert from 'node:assert/strict';
import { after, describe, test, type TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  LoadBalancerObserver,
  OBSERVER_OPTION,
  serviceConfig,
  trafficSplit,
  type ConfigEvent,
} from '@grpc-lb/core';
import { registerConsul } from '@grpc-lb/resolver-consul';
import {
  type Backend,
  type BackendSet,
  type GreeterClient,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from './harness';
import { requireConsul, startConsul, type Consul } from './support/consul';
import { httpRequest } from './support/server-process';
import { serverFixture } from './support/server-fixture';
import { openSocketsTo } from './support/sockets';

const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();
const consul = serverFixture('consul', () => startConsul(), requireConsul);
const SCHEME = 'consul-kv';
const warnings: string[] = [];

let backends: BackendSet | undefined;
let registered = false;
after(async () => {
  await backends?.stopAll();
});

interface Env {
  readonly c: Consul;
  /** v1, v1, v2, v2. */
  readonly b: readonly Backend[];
}

async function env(t: TestContext): Promise<Env | undefined> {
  const c = await consul.get(t);
  if (!c) return undefined;
  backends ??= await startBackends({
    count: 4,
    labels: [{ version: 'v1' }, { version: 'v1' }, { version: 'v2' }, { version: 'v2' }],
  });
  if (!registered) {
    registerConsul({
      grpc,
      address: c.address,
      scheme: SCHEME,
      logger: { warn: (message) => warnings.push(message) },
    });
    registered = true;
  }
  for (const b of backends.backends) await b.resetStats();
  return { c, b: backends.backends };
}

/** Registers the four backends as `service`, each with meta version=<its label>. */
async function registerAll(e: Env, service: string): Promise<void> {
  for (const b of e.b) {
    const result = await e.c.api('PUT', '/v1/agent/service/register', {
      ID: `${service}-${b.name}`,
      Name: service,
      Address: b.host,
      Port: b.port,
      Meta: { version: b.labels['version'] },
    });
    assert.equal(result.status, 200, result.body);
  }
}

/** Every call to one version (queued, not redistributed, while its subset connects). */
function allTo(version: 'v1' | 'v2'): string {
  return JSON.stringify(
    serviceConfig(
      trafficSplit()
        .subset('v1', { version: 'v1' })
        .subset('v2', { version: 'v2' })
        .defaultRoute({ [version]: 100 })
        .onEmptySubset('fail'),
    ),
  );
}

/** `consul kv put <key> <text>`: the text as the value, as is (api() would JSON-encode it). */
async function putKey(c: Consul, key: string, text: string): Promise<void> {
  const result = await httpRequest(`${c.url}/v1/kv/${key}`, {
    method: 'PUT',
    body: text,
    timeoutMs: 10_000,
  });
  assert.equal(result.status, 200, result.body);
}

function client(service: string, key: string, observer: LoadBalancerObserver, own?: string) {
  return new Greeter(`${SCHEME}:///${service}?config=${encodeURIComponent(key)}`, insecure, {
    'grpc.use_local_subchannel_pool': 1,
    'grpc-lb.max_refresh_backoff_ms': 1_000,
    [OBSERVER_OPTION]: observer,
    ...(own !== undefined ? { 'grpc.service_config': own } : {}),
  });
}

/** `calls` calls, 5 at a time; replies counted by the answering backend's version. */
async function versions(greeter: GreeterClient, calls: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (issued < calls) {
      issued++;
      const reply = await sayHello(greeter, 'kv', { deadlineMs: 5_000 });
      const version = reply.labels['version'] ?? '?';
      counts[version] = (counts[version] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: 5 }, worker));
  return counts;
}

/** The source of the config `target`'s channel follows (observer.serviceConfigs()). */
function followed(observer: LoadBalancerObserver): string | undefined {
  return observer.serviceConfigs()[0]?.source;
}

/** The ModifyIndex Consul gave `key`. */
async function modifyIndex(c: Consul, key: string): Promise<number> {
  const result = await c.api('GET', `/v1/kv/${key}`);
  return (result.json as { ModifyIndex: number }[])[0]!.ModifyIndex;
}

describe('consul: service config from Consul KV (real agent, real backends)', () => {
  test('a new document moves calls 100% v1 → 100% v2 → v1 with no new connection', async (t) => {
    const e = await env(t);
    if (!e) return;
    await consul.logged(async () => {
      await registerAll(e, 'kv-switch');
      await putKey(e.c, 'grpc-lb/kv-switch', allTo('v1'));
      const observer = new LoadBalancerObserver();
      const greeter = client('kv-switch', 'grpc-lb/kv-switch', observer);
      try {
        assert.deepEqual(await versions(greeter, 40), { v1: 40 });
        const first = await modifyIndex(e.c, 'grpc-lb/kv-switch');
        assert.equal(followed(observer), `Consul KV grpc-lb/kv-switch (index ${first})`);
        // Every backend connected once: v2's subset is connected too, though it gets no call.
        await waitFor(
          async () =>
            (await Promise.all(e.b.map((b) => b.stats()))).every((s) => s.connectionsOpen === 1),
          { timeoutMs: 10_000, message: 'one connection to each backend' },
        );
        const writtenAt = performance.now();
        await putKey(e.c, 'grpc-lb/kv-switch', allTo('v2'));
        const second = await modifyIndex(e.c, 'grpc-lb/kv-switch');
        await waitFor(
          () => followed(observer) === `Consul KV grpc-lb/kv-switch (index ${second})`,
          {
            timeoutMs: 5_000,
            message: 'the channel follows the new document',
          },
        );
        const writeToAppliedMs = Math.round(performance.now() - writtenAt);
        assert.deepEqual(await versions(greeter, 40), { v2: 40 });
        await putKey(e.c, 'grpc-lb/kv-switch', allTo('v1'));
        const third = await modifyIndex(e.c, 'grpc-lb/kv-switch');
        await waitFor(() => followed(observer) === `Consul KV grpc-lb/kv-switch (index ${third})`, {
          timeoutMs: 5_000,
          message: 'the channel follows the third document',
        });
        assert.deepEqual(await versions(greeter, 40), { v1: 40 });
        for (const b of e.b) {
          const stats = await b.stats();
          assert.equal(stats.connectionsAccepted, 1, `${b.name}: connected once, never again`);
          assert.equal(stats.peers.length, 1, `${b.name}: one client peer`);
        }
        t.diagnostic(JSON.stringify({ writeToAppliedMs }));
      } finally {
        greeter.close();
      }
    });
  });

  test('the first resolution comes with the document: 100% v2 from the first call', async (t) => {
    const e = await env(t);
    if (!e) return;
    await consul.logged(async () => {
      await registerAll(e, 'kv-first');
      await putKey(e.c, 'grpc-lb/kv-first', allTo('v2'));
      const observer = new LoadBalancerObserver();
      const applied: string[] = [];
      observer.on('config', (event) => applied.push(`${event.status} ${event.source}`));
      // No channel config: a channel that started before the document would round-robin over all
      // four at once.
      const greeter = client('kv-first', 'grpc-lb/kv-first', observer);
      try {
        assert.deepEqual(await versions(greeter, 50), { v2: 50 });
        const index = await modifyIndex(e.c, 'grpc-lb/kv-first');
        // The channel never took the default config first, not even for a moment.
        assert.deepEqual(applied, [`applied Consul KV grpc-lb/kv-first (index ${index})`]);
      } finally {
        greeter.close();
      }
    });
  });

  test('a non-JSON document and one with a bad field keep the last good config, warning with the key and the field; deletion returns to the channel config', async (t) => {
    const e = await env(t);
    if (!e) return;
    await consul.logged(async () => {
      await registerAll(e, 'kv-bad');
      const key = 'grpc-lb/kv-bad';
      await putKey(e.c, key, allTo('v1'));
      const observer = new LoadBalancerObserver();
      const rejected: ConfigEvent[] = [];
      observer.on('config', (event) => {
        if (event.status === 'rejected') rejected.push(event);
      });
      const greeter = client('kv-bad', key, observer, allTo('v2'));
      try {
        assert.deepEqual(await versions(greeter, 20), { v1: 20 });
        const good = followed(observer);

        await putKey(e.c, key, '{"loadBalancingConfig": [');
        const notJson = await modifyIndex(e.c, key);
        await waitFor(() => rejected.length === 1, {
          timeoutMs: 5_000,
          message: 'the non-JSON document is rejected',
        });
        assert.equal(rejected[0]!.source, `Consul KV ${key} (index ${notJson})`);
        assert.ok(rejected[0]!.status === 'rejected');
        assert.match(rejected[0]!.error, /not valid JSON/);
        assert.ok(
          warnings.some(
            (w) => w.includes(`Consul KV ${key} (index ${notJson})`) && /not valid JSON/.test(w),
          ),
          warnings.join('\n'),
        );
        assert.deepEqual(await versions(greeter, 20), { v1: 20 }, 'the last good config');
        assert.equal(followed(observer), good);

        const badField = JSON.parse(allTo('v2')) as {
          loadBalancingConfig: Record<string, { routes: { split: { weight: unknown }[] }[] }>[];
        };
        badField.loadBalancingConfig[0]!['grpc-lb.traffic_split']!.routes[0]!.split[0]!.weight =
          'lots';
        await putKey(e.c, key, JSON.stringify(badField));
        const bad = await modifyIndex(e.c, key);
        await waitFor(() => rejected.length === 2, {
          timeoutMs: 5_000,
          message: 'the document with a bad field is rejected',
        });
        const error = rejected[1]!.status === 'rejected' ? rejected[1]!.error : '';
        assert.equal(rejected[1]!.source, `Consul KV ${key} (index ${bad})`);
        assert.match(error, /weight/, 'names the field');
        assert.ok(
          warnings.some((w) => w.includes(`Consul KV ${key} (index ${bad})`) && /weight/.test(w)),
          warnings.join('\n'),
        );
        assert.deepEqual(await versions(greeter, 20), { v1: 20 }, 'still the last good config');

        const deleted = await e.c.api('DELETE', `/v1/kv/${key}`);
        assert.equal(deleted.status, 200, deleted.body);
        await waitFor(() => followed(observer) === 'the channel option "grpc.service_config"', {
          timeoutMs: 5_000,
          message: "back to the channel's own config",
        });
        assert.deepEqual(await versions(greeter, 20), { v2: 20 });
        t.diagnostic(
          JSON.stringify({ rejected: rejected.map((r) => r.status === 'rejected' && r.error) }),
        );
      } finally {
        greeter.close();
      }
    });
  });

  test('an absent key: calls follow the channel config; the document applies once written', async (t) => {
    const e = await env(t);
    if (!e) return;
    await consul.logged(async () => {
      await registerAll(e, 'kv-absent');
      const observer = new LoadBalancerObserver();
      const greeter = client('kv-absent', 'grpc-lb/kv-absent', observer, allTo('v1'));
      try {
        assert.deepEqual(await versions(greeter, 20), { v1: 20 });
        assert.equal(followed(observer), 'the channel option "grpc.service_config"');
        await putKey(e.c, 'grpc-lb/kv-absent', allTo('v2'));
        await waitFor(() => /^Consul KV grpc-lb\/kv-absent/.test(followed(observer) ?? ''), {
          timeoutMs: 5_000,
          message: 'the written document applies',
        });
        assert.deepEqual(await versions(greeter, 20), { v2: 20 });
      } finally {
        greeter.close();
      }
    });
  });

  test('client.close() ends both blocking queries: no connection to the agent is left', async (t) => {
    const e = await env(t);
    if (!e) return;
    await consul.logged(async () => {
      await registerAll(e, 'kv-close');
      await putKey(e.c, 'grpc-lb/kv-close', allTo('v1'));
      await waitFor(() => openSocketsTo(e.c.httpPort) === 0, {
        timeoutMs: 10_000,
        message: 'no connection to the agent before the test',
      });
      const greeter = client('kv-close', 'grpc-lb/kv-close', new LoadBalancerObserver());
      try {
        assert.deepEqual(await versions(greeter, 5), { v1: 5 });
        await waitFor(() => openSocketsTo(e.c.httpPort) === 2, {
          timeoutMs: 5_000,
          message: 'two connections to the agent: the health and the KV blocking queries',
        });
      } finally {
        greeter.close();
      }
      await waitFor(() => openSocketsTo(e.c.httpPort) === 0, {
        timeoutMs: 5_000,
        message: 'no connection to the agent after client.close()',
      });
    });
  });

  // Restarts the agent (a dev agent comes back empty): keep it last.
  test('agent outage: calls keep following the document; after the restart (key gone) the channel config applies', async (t) => {
    const e = await env(t);
    if (!e) return;
    await consul.logged(async () => {
      await registerAll(e, 'kv-outage');
      await putKey(e.c, 'grpc-lb/kv-outage', allTo('v2'));
      const observer = new LoadBalancerObserver();
      const greeter = client('kv-outage', 'grpc-lb/kv-outage', observer, allTo('v1'));
      try {
        assert.deepEqual(await versions(greeter, 20), { v2: 20 });
        const source = followed(observer);
        const warned = warnings.length;
        await e.c.stop();
        await waitFor(
          () =>
            warnings
              .slice(warned)
              .some(
                (w) => w.includes('kv-outage') && /resolution failed, keeping the last/.test(w),
              ),
          { timeoutMs: 10_000, message: 'the channel sees the outage' },
        );
        assert.deepEqual(await versions(greeter, 40), { v2: 40 }, 'still the document');
        assert.equal(followed(observer), source);
        await e.c.start();
        await registerAll(e, 'kv-outage');
        await waitFor(() => followed(observer) === 'the channel option "grpc.service_config"', {
          timeoutMs: 20_000,
          message: "the key is gone after the restart: the channel's own config",
        });
        await waitFor(
          async () =>
            (await versions(greeter, 20).catch((): Record<string, number> => ({})))['v1'] === 20,
          {
            timeoutMs: 10_000,
            message: 'calls follow the channel config',
          },
        );
      } finally {
        greeter.close();
      }
    });
  });
});
