/**
 * etcd outages seen from clients on an `etcd://` target, end to end (real etcd, real backends,
 * steady load):
 *
 * - Mass lease expiry: three backends registered under 2 s leases, etcd frozen (SIGSTOP) for
 *   longer than the TTL. On resume etcd expires every lease and deletes every key before the
 *   registration helpers write them again; the removal hold-down keeps the connected backends in
 *   rotation meanwhile, so no call fails. A second client with the hold-down off, under the same
 *   load, shows what happens without it (reported; the race can go either way).
 * - A registry that comes back: etcd killed for 10 s, restarted, and a backend registered at once;
 *   the client follows it within the outage retry cap (1.5 s) plus one list.
 */
import assert from 'node:assert/strict';
import { after, describe, test, type TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { LoadBalancerObserver, OBSERVER_OPTION } from '@grpc-lb/core';
import { registerEndpoint, registerEtcd, type EtcdRegistration } from '@grpc-lb/resolver-etcd';
import { type GreeterClient, loadGreeterService, startBackends, waitFor } from './harness';
import { startLoad } from './support/load';
import { printEtcdLogsOnFailure, requireEtcd, startEtcd, type Etcd } from './support/etcd';

const warnings: string[] = [];
registerEtcd({ grpc, logger: { warn: (message) => warnings.push(message) } });
const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();

const TTL_SECONDS = 2;
const FROZEN_MS = 5_000;

let shared: Promise<Etcd> | undefined;
after(async () => {
  if (shared) await (await shared).dispose();
});

async function etcdFor(t: TestContext): Promise<Etcd | undefined> {
  if (!requireEtcd(t)) return undefined;
  shared ??= startEtcd();
  return shared;
}

function client(
  etcd: Etcd,
  svc: string,
  observer: LoadBalancerObserver,
  holdDownMs?: number,
): GreeterClient {
  const policy = holdDownMs === undefined ? {} : { removalHoldDownMs: holdDownMs };
  return new Greeter(`etcd://${etcd.endpoint}/${svc}`, insecure, {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.service_config': JSON.stringify({
      loadBalancingConfig: [{ 'grpc-lb.round_robin': policy }],
    }),
    [OBSERVER_OPTION]: observer,
  });
}

describe('etcd outages (real etcd, real backends)', () => {
  test('every lease expired by a hang longer than the TTL: the removal hold-down keeps every call succeeding while the keys are written again', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    const svc = `services/holddown-${process.pid}`;
    const backends = await startBackends({ count: 3 });
    const all = backends.backends;
    const registrations: EtcdRegistration[] = [];
    const observed = new LoadBalancerObserver();
    const control = new LoadBalancerObserver();
    let greeter: GreeterClient | undefined;
    let unprotected: GreeterClient | undefined;
    try {
      await printEtcdLogsOnFailure(etcd, async () => {
        for (const backend of all) {
          registrations.push(
            await registerEndpoint({
              endpoints: etcd.endpoint,
              service: svc,
              host: backend.host,
              port: backend.port,
              ttlSeconds: TTL_SECONDS,
              logger: { warn: () => undefined },
            }),
          );
        }
        const firstLeases = registrations.map((r) => r.leaseId);
        greeter = client(etcd, svc, observed);
        unprotected = client(etcd, svc, control, 0);
        const load = startLoad(greeter, { concurrency: 4, deadlineMs: 5_000 });
        const controlLoad = startLoad(unprotected, { concurrency: 4, deadlineMs: 5_000 });
        try {
          await waitFor(() => all.every((b) => load.result.perBackend.has(b.address)), {
            timeoutMs: 10_000,
            message: 'every backend takes calls',
          });
          await waitFor(() => all.every((b) => controlLoad.result.perBackend.has(b.address)), {
            timeoutMs: 10_000,
            message: 'every backend takes calls of the client without hold-down',
          });
          const okBefore = load.result.ok;
          etcd.freeze();
          const frozenAt = performance.now();
          await new Promise((resolve) => setTimeout(resolve, FROZEN_MS));
          etcd.thaw();
          const thawedAt = performance.now();
          await waitFor(
            () =>
              registrations.every(
                (r, i) => r.registered && r.leaseId !== undefined && r.leaseId !== firstLeases[i],
              ),
            { timeoutMs: 15_000, message: 'every backend registered again under a new lease' },
          );
          const reRegisteredMs = performance.now() - thawedAt;
          // Past the hold-down (2 s by default), so that a held endpoint not re-added would be gone.
          await new Promise((resolve) => setTimeout(resolve, 3_000));
          const result = await load.stop();
          const controlResult = await controlLoad.stop();
          const held = warnings.filter((w) => /connected endpoints at once/.test(w));
          t.diagnostic(
            `etcd frozen ${FROZEN_MS} ms (TTL ${TTL_SECONDS} s); every key written again ${Math.round(reRegisteredMs)} ms after the thaw; ` +
              `with the hold-down: ${result.ok} calls, ${result.errors.length} failed (${result.ok - okBefore} during and after the hang); ` +
              `without: ${controlResult.ok} calls, ${controlResult.errors.length} failed; ` +
              `mass removals held: ${held.length}; frozen for ${Math.round(thawedAt - frozenAt)} ms`,
          );
          assert.deepEqual(
            result.errors.map((e) => `${e.code}: ${e.details}`),
            [],
            'no call fails with the hold-down',
          );
          if (controlResult.errors.length > 0) {
            assert.ok(held.length > 0, 'the keys were deleted: the hold-down must have held them');
          }
          assert.deepEqual(
            observed
              .endpoints()
              .map((e) => e.address)
              .sort(),
            all.map((b) => b.address).sort(),
            'every backend in rotation afterwards',
          );
        } finally {
          await load.stop();
          await controlLoad.stop();
        }
      });
    } finally {
      greeter?.close();
      unprotected?.close();
      await Promise.allSettled(registrations.map((r) => r.deregister()));
      await backends.stopAll();
    }
  });
  test('etcd killed for 10 s and restarted: a backend registered right after is followed within ~2 s, and no call failed meanwhile', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    const svc = `services/comeback-${process.pid}`;
    const backends = await startBackends({ count: 2 });
    const [b1, b2] = backends.backends;
    assert.ok(b1 && b2);
    const observer = new LoadBalancerObserver();
    let greeter: GreeterClient | undefined;
    try {
      await printEtcdLogsOnFailure(etcd, async () => {
        await etcd.etcdctl('put', `${svc}/b1`, JSON.stringify({ Op: 0, Addr: b1.address }));
        greeter = client(etcd, svc, observer);
        const load = startLoad(greeter, { concurrency: 2, deadlineMs: 5_000 });
        try {
          await waitFor(() => load.result.perBackend.has(b1.address), {
            timeoutMs: 10_000,
            message: 'b1 takes calls',
          });
          await etcd.kill();
          // Long enough for a backoff without the outage cap to have grown to several seconds.
          await new Promise((resolve) => setTimeout(resolve, 10_000));
          await etcd.start();
          const readyAt = performance.now();
          await etcd.etcdctl('put', `${svc}/b2`, JSON.stringify({ Op: 0, Addr: b2.address }));
          await waitFor(() => observer.endpoint(b2.address) !== undefined, {
            timeoutMs: 15_000,
            intervalMs: 5,
            message: 'the client follows the change made after the restart',
          });
          const followedMs = performance.now() - readyAt;
          await waitFor(() => load.result.perBackend.has(b2.address), {
            timeoutMs: 10_000,
            message: 'b2 takes calls',
          });
          const result = await load.stop();
          t.diagnostic(
            `etcd down 10 s: a backend registered after the restart was followed ${Math.round(followedMs)} ms after etcd was ready; ` +
              `${result.ok} calls, ${result.errors.length} failed`,
          );
          assert.deepEqual(
            result.errors.map((e) => `${e.code}: ${e.details}`),
            [],
            'the last good set kept during the outage',
          );
          assert.ok(
            followedMs < 3_000,
            `followed ${Math.round(followedMs)} ms after etcd was ready`,
          );
        } finally {
          await load.stop();
        }
      });
    } finally {
      greeter?.close();
      await backends.stopAll();
    }
  });
});
