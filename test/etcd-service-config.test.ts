/**
 * etcd: a channel's service config read from an etcd key beside the endpoint prefix
 * (`etcd:///services/x?config=services/x.config`), against a real etcd 3.4, real grpc-js
 * backends labelled version=v1/v2 and a real grpc-js client. The document is a
 * `grpc-lb.traffic_split` config: writing a new one moves calls without a reconnect, a bad one is
 * refused (the last good one stays, a warning names the key and the field), deleting it returns
 * the channel to its own config, and the first resolution already carries it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  LoadBalancerObserver,
  OBSERVER_OPTION,
  serviceConfig,
  trafficSplit,
  type ConfigEvent,
} from '@grpc-lb/core';
import { registerEndpoint, registerEtcd, type EtcdRegistration } from '@grpc-lb/resolver-etcd';
import { Etcd3 } from 'etcd3';
import {
  type BackendSet,
  type GreeterClient,
  isServiceError,
  loadGreeterService,
  sayHello,
  startBackends,
} from './harness';
import { printEtcdLogsOnFailure, requireEtcd, startEtcd, type Etcd } from './support/etcd';

/** What grpc-lb warned about, in order (the adapter's warnings about documents land here). */
const warnings: string[] = [];
registerEtcd({ grpc, logger: { warn: (message) => warnings.push(message) } });
const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();
const silent = { warn: () => undefined };

let shared: Promise<Etcd> | undefined;
let kv: Etcd3 | undefined;
let backends: BackendSet | undefined;
before(async () => {
  backends = await startBackends({
    count: 2,
    labels: [{ version: 'v1' }, { version: 'v2' }],
  });
});
after(async () => {
  kv?.close();
  await backends?.stopAll();
  if (shared) await (await shared).dispose();
});

async function etcdFor(t: TestContext): Promise<Etcd | undefined> {
  if (!requireEtcd(t)) return undefined;
  shared ??= startEtcd();
  const etcd = await shared;
  kv ??= new Etcd3({ hosts: etcd.url });
  return etcd;
}

let serial = 0;
function service(name: string): string {
  return `services/${name}-${process.pid}-${++serial}`;
}

/** Registers both backends under `svc` (leases revoked by the returned function). */
async function registerBoth(etcd: Etcd, svc: string): Promise<() => Promise<void>> {
  const registrations: EtcdRegistration[] = [];
  for (const backend of backends!.backends) {
    registrations.push(
      await registerEndpoint({
        endpoints: etcd.endpoint,
        service: svc,
        host: backend.host,
        port: backend.port,
        labels: backend.labels,
        ttlSeconds: 10,
        logger: silent,
      }),
    );
  }
  return async () => {
    for (const r of registrations) await r.deregister();
  };
}

/** The service config document sending every call to `version` (queueing while it connects). */
function allTo(version: string): string {
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

async function put(key: string, value: string): Promise<number> {
  const response = await kv!.put(key).value(value).exec();
  return Number(response.header.revision);
}

/** `calls` calls one after the other; replies counted by the backend's version label. */
async function versions(client: GreeterClient, calls: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < calls; i++) {
    const reply = await sayHello(client, 'config', { deadlineMs: 5_000 });
    const version = reply.labels['version'] ?? '?';
    counts[version] = (counts[version] ?? 0) + 1;
  }
  return counts;
}

/** Resolves with the first `config` event of `observer` that `match` accepts. */
function nextConfig(
  observer: LoadBalancerObserver,
  match: (event: ConfigEvent) => boolean,
): Promise<ConfigEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      observer.off('config', listener);
      reject(new Error('no matching config event within 10 s'));
    }, 10_000);
    const listener = (event: ConfigEvent): void => {
      if (!match(event)) return;
      clearTimeout(timer);
      observer.off('config', listener);
      resolve(event);
    };
    observer.on('config', listener);
  });
}

function client(
  etcd: Etcd,
  target: string,
  observer: LoadBalancerObserver,
  options: grpc.ChannelOptions = {},
): GreeterClient {
  return new Greeter(`etcd://${etcd.endpoint}/${target}`, insecure, {
    'grpc.use_local_subchannel_pool': 1,
    [OBSERVER_OPTION]: observer,
    ...options,
  });
}

describe('service config from an etcd key (real etcd, real backends)', () => {
  test('the first resolution carries the document: with 100% v2 stored, the first 50 calls all go to v2', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    await printEtcdLogsOnFailure(etcd, async () => {
      const svc = service('first');
      const key = `${svc}.config`;
      const deregister = await registerBoth(etcd, svc);
      const revision = await put(key, allTo('v2'));
      const observer = new LoadBalancerObserver();
      const applied = nextConfig(observer, (e) => e.status === 'applied');
      const c = client(etcd, `${svc}?config=${key}`, observer);
      try {
        assert.deepEqual(await versions(c, 50), { v2: 50 });
        const first = await applied;
        assert.equal(first.source, `etcd key ${key} (revision ${revision})`);
        const followed = observer.serviceConfigs();
        assert.equal(followed.length, 1);
        assert.equal(followed[0]!.source, `etcd key ${key} (revision ${revision})`);
        assert.match(followed[0]!.target, new RegExp(`\\?config=${key.replace(/\//g, '\\/')}$`));
      } finally {
        c.close();
        await deregister();
      }
    });
  });

  test('a new document moves calls at once, over the same connections (100% v1 → 100% v2 → back)', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    await printEtcdLogsOnFailure(etcd, async () => {
      const svc = service('live');
      const key = `${svc}.config`;
      const deregister = await registerBoth(etcd, svc);
      await put(key, allTo('v1'));
      for (const b of backends!.backends) await b.resetStats();
      const observer = new LoadBalancerObserver();
      const c = client(etcd, `${svc}?config=${key}`, observer);
      try {
        assert.deepEqual(await versions(c, 50), { v1: 50 });
        const delays: number[] = [];
        for (const version of ['v2', 'v1', 'v2']) {
          const written = performance.now();
          const applied = nextConfig(
            observer,
            (e) => e.status === 'applied' && e.source.startsWith(`etcd key ${key} `),
          );
          const revision = await put(key, allTo(version));
          const event = await applied;
          delays.push(performance.now() - written);
          assert.equal(event.source, `etcd key ${key} (revision ${revision})`);
          // Every call started after the event follows the new document.
          assert.deepEqual(await versions(c, 50), { [version]: 50 });
        }
        t.diagnostic(`write → applied: ${delays.map((d) => `${d.toFixed(0)} ms`).join(', ')}`);
        // No reconnect: one connection from the client per backend, one peer each.
        for (const b of backends!.backends) {
          const stats = await b.stats();
          assert.equal(stats.connectionsAccepted, 1, `${b.name}: ${JSON.stringify(stats)}`);
          assert.equal(stats.peers.length, 1, `${b.name}: ${JSON.stringify(stats.peers)}`);
        }
        assert.deepEqual(
          warnings.filter((w) => w.includes(key)),
          [],
        );
      } finally {
        c.close();
        await deregister();
      }
    });
  });

  test('absent → written → not JSON → a bad field → deleted: the channel config, the document, kept with a warning naming the key and the field, the channel config again', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    await printEtcdLogsOnFailure(etcd, async () => {
      const svc = service('bad');
      const key = `${svc}.config`;
      const deregister = await registerBoth(etcd, svc);
      const observer = new LoadBalancerObserver();
      // The channel's own config: everything to v2.
      const c = client(etcd, `${svc}?config=${key}`, observer, {
        'grpc.service_config': allTo('v2'),
      });
      try {
        assert.deepEqual(await versions(c, 30), { v2: 30 });
        assert.equal(
          observer.serviceConfigs()[0]?.source,
          'the channel option "grpc.service_config"',
        );

        // The document appears: it replaces the channel's config.
        let applied = nextConfig(observer, (e) => e.status === 'applied');
        const good = await put(key, allTo('v1'));
        assert.equal((await applied).source, `etcd key ${key} (revision ${good})`);
        assert.deepEqual(await versions(c, 30), { v1: 30 });

        // Not JSON: refused, the last good document stays, one warning naming the key.
        let rejected = nextConfig(observer, (e) => e.status === 'rejected');
        const notJson = await put(key, '{"loadBalancingConfig": [');
        let event = await rejected;
        assert.equal(event.source, `etcd key ${key} (revision ${notJson})`);
        assert.match(event.status === 'rejected' ? event.error : '', /not valid JSON/);
        assert.deepEqual(await versions(c, 30), { v1: 30 });
        let warned = warnings.filter((w) => w.includes(`etcd key ${key} (revision ${notJson})`));
        assert.equal(warned.length, 1, warnings.join('\n'));
        assert.match(
          warned[0]!,
          /not valid JSON.*; keeping the previous service config \(etcd key .* \(revision \d+\)\)/,
        );

        // Valid JSON, a bad field: refused the same way, the warning names the field.
        rejected = nextConfig(observer, (e) => e.status === 'rejected');
        const badField = await put(key, allTo('v2').replace('"weight":100', '"weight":"all"'));
        event = await rejected;
        assert.equal(event.source, `etcd key ${key} (revision ${badField})`);
        assert.deepEqual(await versions(c, 30), { v1: 30 });
        warned = warnings.filter((w) => w.includes(`etcd key ${key} (revision ${badField})`));
        assert.equal(warned.length, 1, warnings.join('\n'));
        t.diagnostic(warned[0]!);
        assert.match(
          warned[0]!,
          /traffic_split\.routes\[0\]\.split\[0\]\.weight: expected an integer/,
        );
        assert.match(warned[0]!, /keeping the previous service config/);
        const state = observer.serviceConfigs()[0]!;
        assert.equal(state.source, `etcd key ${key} (revision ${good})`);
        assert.equal(state.rejected?.source, `etcd key ${key} (revision ${badField})`);

        // Deleted: back to the channel's own config.
        applied = nextConfig(observer, (e) => e.status === 'applied');
        await kv!.delete().key(key).exec();
        assert.equal((await applied).source, 'the channel option "grpc.service_config"');
        assert.deepEqual(await versions(c, 30), { v2: 30 });
      } catch (error) {
        if (isServiceError(error)) t.diagnostic(warnings.join('\n'));
        throw error;
      } finally {
        c.close();
        await deregister();
      }
    });
  });

  test('a bad document at start and no earlier config: calls fail UNAVAILABLE naming the key and the field; fixed, they succeed', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    await printEtcdLogsOnFailure(etcd, async () => {
      const svc = service('bad-start');
      const key = `${svc}.config`;
      const deregister = await registerBoth(etcd, svc);
      const bad = await put(key, allTo('v2').replace('"weight":100', '"weight":-1'));
      const observer = new LoadBalancerObserver();
      const c = client(etcd, `${svc}?config=${key}`, observer);
      try {
        const error = await sayHello(c, 'config', { deadlineMs: 5_000 }).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(isServiceError(error), String(error));
        assert.equal(error.code, grpc.status.UNAVAILABLE);
        t.diagnostic(error.details);
        assert.match(
          error.details,
          new RegExp(
            `service config from etcd key ${key.replace(/\//g, '\\/')} \\(revision ${bad}\\): .*split\\[0\\]\\.weight`,
          ),
        );
        const applied = nextConfig(observer, (e) => e.status === 'applied');
        const good = await put(key, allTo('v2'));
        assert.equal((await applied).source, `etcd key ${key} (revision ${good})`);
        assert.deepEqual(await versions(c, 20), { v2: 20 });
      } finally {
        c.close();
        await deregister();
      }
    });
  });
});
