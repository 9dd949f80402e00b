/**
 * etcd: end to end — real grpc-js backends registered in a real etcd 3.4 under leases, a grpc-js
 * client on an `etcd://` target, steady load while backends come, go, crash, and etcd itself
 * crashes and comes back.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { LoadBalancerObserver, OBSERVER_OPTION, register } from '@grpc-lb/core';
import {
  createEtcdResolverFactory,
  registerEndpoint,
  registerEtcd,
  type EtcdRegistration,
} from '@grpc-lb/resolver-etcd';
import {
  type Backend,
  type GreeterClient,
  isServiceError,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from './harness';
import { startLoad } from './support/load';
import { printEtcdLogsOnFailure, requireEtcd, startEtcd, type Etcd } from './support/etcd';
import type {
  RegisteredBackendConfig,
  RegisteredBackendReady,
} from './support/etcd-registered-backend';

registerEtcd({ grpc });
const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();
const silent = { warn: () => undefined };

let shared: Promise<Etcd> | undefined;
after(async () => {
  if (shared) await (await shared).dispose();
});

async function etcdFor(t: TestContext): Promise<Etcd | undefined> {
  if (!requireEtcd(t)) return undefined;
  shared ??= startEtcd();
  return shared;
}

let serial = 0;
function service(name: string): string {
  return `services/${name}-${process.pid}-${++serial}`;
}

function client(etcd: Etcd, svc: string, observer: LoadBalancerObserver): GreeterClient {
  return new Greeter(`etcd://${etcd.endpoint}/${svc}`, insecure, {
    'grpc.use_local_subchannel_pool': 1,
    'grpc-lb.max_refresh_backoff_ms': 1_000,
    [OBSERVER_OPTION]: observer,
  });
}

function register1(etcd: Etcd, svc: string, backend: Backend, ttlSeconds = 10) {
  return registerEndpoint({
    endpoints: etcd.endpoint,
    service: svc,
    host: backend.host,
    port: backend.port,
    labels: backend.labels,
    ttlSeconds,
    logger: silent,
  });
}

function inRotation(observer: LoadBalancerObserver): string[] {
  return observer
    .endpoints()
    .map((e) => e.address)
    .sort();
}

/** A child process that serves Greeter and registers itself (test/support/etcd-registered-backend). */
async function startRegisteredBackend(
  config: RegisteredBackendConfig,
): Promise<{ child: ChildProcess; ready: RegisteredBackendReady }> {
  const main = path.join(__dirname, 'support', 'etcd-registered-backend.js');
  const child = spawn(process.execPath, [main, JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = await new Promise<RegisteredBackendReady>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ready line; stderr: ${stderr}`)), 15_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as RegisteredBackendReady);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${String(code)} before ready; stderr: ${stderr}`));
    });
  });
  return { child, ready };
}

describe('etcd: grpc-js clients on etcd:// targets (real etcd, real backends)', () => {
  test('backends registered and deregistered under load: new ones get calls, removed ones drain, 0 failed calls', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    const svc = service('addremove');
    const backends = await startBackends({
      count: 3,
      labels: [{ version: 'v1' }, { version: 'v1' }, { version: 'v2' }],
    });
    const [b1, b2, b3] = backends.backends as [Backend, Backend, Backend];
    const registrations: EtcdRegistration[] = [];
    registrations.push(await register1(etcd, svc, b1), await register1(etcd, svc, b2));
    const observer = new LoadBalancerObserver();
    const greeter = client(etcd, svc, observer);
    const load = startLoad(greeter, { concurrency: 4 });
    try {
      await printEtcdLogsOnFailure(etcd, async () => {
        await waitFor(
          () => load.result.perBackend.has(b1.address) && load.result.perBackend.has(b2.address),
          {
            timeoutMs: 10_000,
            message: 'calls to both registered backends',
          },
        );
        const addedAt = performance.now();
        registrations.push(await register1(etcd, svc, b3));
        await waitFor(() => load.result.perBackend.has(b3.address), {
          timeoutMs: 5_000,
          message: 'calls to the new backend',
        });
        const addMs = Math.round(performance.now() - addedAt);
        assert.deepEqual(observer.endpoints().find((e) => e.address === b3.address)?.labels, {
          version: 'v2',
        });

        const removedAt = performance.now();
        await registrations[0]!.deregister();
        await waitFor(() => !inRotation(observer).includes(b1.address), {
          timeoutMs: 5_000,
          message: 'b1 out of the channel',
        });
        const removeMs = Math.round(performance.now() - removedAt);
        // Calls picked before the removal may still be answered: let them finish first.
        const settled = load.result.ok;
        await waitFor(() => load.result.ok >= settled + 20, {
          timeoutMs: 10_000,
          message: 'a round',
        });
        const before = load.result.perBackend.get(b1.address);
        const total = load.result.ok;
        await waitFor(() => load.result.ok >= total + 200, {
          timeoutMs: 10_000,
          message: 'more calls',
        });
        assert.equal(load.result.perBackend.get(b1.address), before, 'no call to b1 after removal');
        await b1.stopGracefully();
        const result = await load.stop();
        assert.equal(result.errors.length, 0, result.errors[0]?.message);
        // Deregistering ends each helper's watch of its own key, and closing the channel cancels
        // its watch: no stream is left in etcd.
        const streams = 'etcd_debugging_mvcc_watch_stream_total';
        for (const registration of registrations) await registration.deregister();
        await waitFor(async () => (await etcd.metric(streams)) === 1, {
          timeoutMs: 5_000,
          message: "only the channel's watch stream left after deregister()",
        });
        greeter.close();
        await waitFor(async () => (await etcd.metric(streams)) === 0, {
          timeoutMs: 5_000,
          message: 'no watch stream left in etcd after client.close()',
        });
        t.diagnostic(JSON.stringify({ addToFirstCallMs: addMs, deregisterToRemovedMs: removeMs }));
      });
    } finally {
      await load.stop();
      greeter.close();
      for (const r of registrations) await r.deregister().catch(() => undefined);
      await backends.stopAll();
    }
  });

  test('kill -9 a self-registered backend: its key expires with the lease and calls stop going there', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    const svc = service('crash');
    const children: ChildProcess[] = [];
    const observer = new LoadBalancerObserver();
    const greeter = client(etcd, svc, observer);
    let load: ReturnType<typeof startLoad> | undefined;
    try {
      const base = { etcd: etcd.endpoint, service: svc, ttlSeconds: 2 };
      const [one, two] = await Promise.all([
        startRegisteredBackend({ ...base, host: '127.0.0.2', name: 'r1' }),
        startRegisteredBackend({ ...base, host: '127.0.0.3', name: 'r2' }),
      ]);
      children.push(one.child, two.child);
      load = startLoad(greeter, { concurrency: 4 });
      const running = load;
      await waitFor(
        () =>
          running.result.perBackend.has(one.ready.address) &&
          running.result.perBackend.has(two.ready.address),
        { timeoutMs: 10_000, message: 'calls to both' },
      );
      const killedAt = performance.now();
      one.child.kill('SIGKILL');
      await waitFor(
        async () => (await etcd.etcdctl('get', one.ready.key, '--print-value-only')) === '',
        {
          timeoutMs: 10_000,
          intervalMs: 50,
          message: 'the key to expire',
        },
      );
      const expiredMs = Math.round(performance.now() - killedAt);
      await waitFor(
        () => JSON.stringify(inRotation(observer)) === JSON.stringify([two.ready.address]),
        {
          timeoutMs: 5_000,
          message: 'only r2 left in the channel',
        },
      );
      const removedMs = Math.round(performance.now() - killedAt);
      const before = running.result.perBackend.get(one.ready.address);
      const total = running.result.ok;
      await waitFor(() => running.result.ok >= total + 200, {
        timeoutMs: 10_000,
        message: 'more calls',
      });
      assert.equal(running.result.perBackend.get(one.ready.address), before);
      const result = await running.stop();
      // Only calls in flight on the killed process may fail.
      assert.ok(result.errors.length <= 4, result.errors.map((e) => e.message).join('\n'));
      assert.ok(expiredMs >= 1_000 && expiredMs < 6_000, `lease expiry took ${expiredMs} ms`);
      t.diagnostic(
        JSON.stringify({
          ttlSeconds: 2,
          keyExpiredMs: expiredMs,
          removedFromChannelMs: removedMs,
          failedCalls: result.errors.length,
        }),
      );

      // The survivor deregisters on SIGTERM: its key goes before it exits.
      const exited = new Promise((resolve) => two.child.once('exit', resolve));
      two.child.kill('SIGTERM');
      await exited;
      assert.equal(await etcd.etcdctl('get', two.ready.key, '--print-value-only'), '');
    } finally {
      await load?.stop();
      greeter.close();
      for (const child of children) child.kill('SIGKILL');
    }
  });

  test('etcd crashes and restarts under load: calls keep going to the last good set, then follow new registrations', async (t) => {
    if (!requireEtcd(t)) return;
    const etcd = await startEtcd();
    const svc = service('outage');
    const backends = await startBackends({ count: 3 });
    const [b1, b2, b3] = backends.backends as [Backend, Backend, Backend];
    const registrations: EtcdRegistration[] = [];
    registrations.push(await register1(etcd, svc, b1), await register1(etcd, svc, b2));
    const observer = new LoadBalancerObserver();
    const greeter = client(etcd, svc, observer);
    const load = startLoad(greeter, { concurrency: 4 });
    try {
      await printEtcdLogsOnFailure(etcd, async () => {
        await waitFor(
          () => load.result.perBackend.has(b1.address) && load.result.perBackend.has(b2.address),
          {
            timeoutMs: 10_000,
            message: 'calls to both',
          },
        );
        await etcd.kill();
        const total = load.result.ok;
        const counts = [b1, b2].map((b) => load.result.perBackend.get(b.address) ?? 0);
        await waitFor(() => load.result.ok >= total + 300, {
          timeoutMs: 10_000,
          message: 'calls during the outage',
        });
        [b1, b2].forEach((b, i) =>
          assert.ok((load.result.perBackend.get(b.address) ?? 0) > counts[i]!),
        );
        assert.deepEqual(inRotation(observer), [b1.address, b2.address].sort());

        await etcd.start();
        registrations.push(await register1(etcd, svc, b3));
        await waitFor(() => load.result.perBackend.has(b3.address), {
          timeoutMs: 15_000,
          message: 'calls to the backend registered after the restart',
        });
        await registrations[0]!.deregister();
        await waitFor(() => !inRotation(observer).includes(b1.address), {
          timeoutMs: 5_000,
          message: 'b1 out',
        });
        const result = await load.stop();
        assert.equal(result.errors.length, 0, result.errors[0]?.message);
      });
    } finally {
      await load.stop();
      greeter.close();
      for (const r of registrations) await r.deregister().catch(() => undefined);
      await backends.stopAll();
      await etcd.dispose();
    }
  });

  test('password auth: right password works; a wrong one fails calls fast with a clear reason, never the password', async (t) => {
    if (!requireEtcd(t)) return;
    const password = 'Pa55-for-app';
    const wrong = 'N0t-the-pa55';
    const etcd = await startEtcd({ auth: { username: 'app', password } });
    const backends = await startBackends({ count: 1 });
    const warnings: string[] = [];
    register({
      grpc,
      resolvers: [
        createEtcdResolverFactory({ scheme: 'etcd+good', auth: { username: 'app', password } }),
        createEtcdResolverFactory({
          scheme: 'etcd+bad',
          auth: { username: 'app', password: wrong },
        }),
      ],
      logger: { warn: (m) => warnings.push(m) },
    });
    const svc = service('auth');
    const registration = await registerEndpoint({
      endpoints: etcd.endpoint,
      auth: { username: 'app', password },
      service: svc,
      host: backends.backends[0]!.host,
      port: backends.port,
      logger: silent,
    });
    const good = new Greeter(`etcd+good://${etcd.endpoint}/${svc}`, insecure);
    const bad = new Greeter(`etcd+bad://${etcd.endpoint}/${svc}`, insecure);
    try {
      const reply = await sayHello(good, 'auth');
      assert.equal(reply.address, backends.addresses[0]);
      const started = performance.now();
      const error = await sayHello(bad, 'auth').then(
        () => assert.fail('a call with a wrong etcd password succeeded'),
        (e: unknown) => e,
      );
      assert.ok(isServiceError(error));
      assert.equal(error.code, grpc.status.UNAVAILABLE);
      assert.match(
        error.details,
        /authentication failed for user "app" \(wrong user name or password\)/,
      );
      assert.ok(performance.now() - started < 3_000, 'failed fast');
      const everything = `${error.message}\n${error.details}\n${warnings.join('\n')}`;
      assert.ok(!everything.includes(wrong) && !everything.includes(password), everything);
    } finally {
      good.close();
      bad.close();
      await registration.deregister();
      await backends.stopAll();
      await etcd.dispose();
    }
  });
});
