/**
 * Chaos, etcd: steady load on an `etcd://` target served by real grpc-js backends registered with
 * the registration helper under the documented 10 s lease TTL. etcd is SIGSTOPped for 30 s (every
 * lease expires; on resume etcd deletes every key and the helpers write them again, the removal
 * hold-down bridging the gap), then SIGKILLed and restarted. No call may fail; afterwards a backend
 * registered is followed and one deregistered is dropped, without restarting the client.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { LoadBalancerObserver, OBSERVER_OPTION } from '@grpc-lb/core';
import { registerEndpoint, registerEtcd, type EtcdRegistration } from '@grpc-lb/resolver-etcd';
import { type GreeterClient, loadGreeterService, startBackends, waitFor } from './harness';
import { startLoad, waitUntilQuiet } from './support/load';
import { printEtcdLogsOnFailure, requireEtcd, startEtcd, type Etcd } from './support/etcd';
import { assertSurvived } from './support/chaos';

registerEtcd({ grpc, logger: { warn: () => undefined } });
const Greeter = loadGreeterService();

const TTL_SECONDS = 10;
const FROZEN_MS = 30_000;
const DOWN_MS = 3_000;

let etcd: Etcd | undefined;
after(async () => {
  await etcd?.dispose();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('chaos: etcd frozen 30 s, then killed and restarted, under steady load', () => {
  test('10 s leases (the documented default) expire in the hang: the removal hold-down keeps every call succeeding, and changes after the restart are followed within 5 s', async (t) => {
    if (!requireEtcd(t)) return;
    etcd = await startEtcd();
    const server = etcd;
    const svc = `services/chaos-${process.pid}`;
    const backends = await startBackends({ count: 4 });
    const [b1, b2, b3, b4] = backends.backends;
    assert.ok(b1 && b2 && b3 && b4);
    const registrations = new Map<string, EtcdRegistration>();
    const register = async (address: string, host: string, port: number): Promise<void> => {
      registrations.set(
        address,
        await registerEndpoint({
          endpoints: server.endpoint,
          service: svc,
          host,
          port,
          ttlSeconds: TTL_SECONDS,
          logger: { warn: () => undefined },
        }),
      );
    };
    const observer = new LoadBalancerObserver();
    let greeter: GreeterClient | undefined;
    try {
      await printEtcdLogsOnFailure(server, async () => {
        for (const b of [b1, b2, b3]) await register(b.address, b.host, b.port);
        greeter = new Greeter(
          `etcd://${server.endpoint}/${svc}`,
          grpc.credentials.createInsecure(),
          {
            'grpc.use_local_subchannel_pool': 1,
            [OBSERVER_OPTION]: observer,
          },
        );
        const load = startLoad(greeter, { concurrency: 3, deadlineMs: 5_000, pauseMs: 2 });
        try {
          await waitFor(() => [b1, b2, b3].every((b) => load.result.perBackend.has(b.address)), {
            timeoutMs: 10_000,
            message: 'b1, b2 and b3 take calls',
          });
          const okBeforeFreeze = load.result.ok;
          server.freeze();
          await sleep(FROZEN_MS);
          server.thaw();
          const thawedAt = performance.now();
          await waitFor(() => [...registrations.values()].every((r) => r.registered), {
            timeoutMs: 20_000,
            message: 'every backend registered again after the hang',
          });
          const reRegisteredMs = performance.now() - thawedAt;
          await sleep(3_000); // past the 2 s hold-down
          const okAfterFreeze = load.result.ok;
          const failedAfterFreeze = load.result.errors.length;

          await server.kill();
          await sleep(DOWN_MS);
          await server.start();
          const readyAt = performance.now();
          await register(b4.address, b4.host, b4.port);
          await waitFor(() => load.result.perBackend.has(b4.address), {
            timeoutMs: 15_000,
            intervalMs: 5,
            message: 'b4, registered after the restart, takes calls',
          });
          const addedMs = performance.now() - readyAt;
          await waitFor(() => [...registrations.values()].every((r) => r.registered), {
            timeoutMs: 20_000,
            message: 'every registration alive after the restart',
          });
          const removedAt = performance.now();
          await registrations.get(b1.address)!.deregister();
          registrations.delete(b1.address);
          const deregisteredMs = performance.now() - removedAt;
          await waitFor(() => observer.endpoint(b1.address) === undefined, {
            timeoutMs: 15_000,
            intervalMs: 5,
            message: 'b1, deregistered, leaves the set',
          });
          const leftSetMs = performance.now() - removedAt;
          const lastCall = await waitUntilQuiet(load, b1.address, {
            quietMs: 1_000,
            timeoutMs: 15_000,
            message: 'b1, deregistered, stops taking calls',
          });
          const removedMs = Math.max(0, lastCall - removedAt);
          const result = await load.stop();
          const figures = {
            registry: 'etcd',
            frozenMs: FROZEN_MS,
            ttlSeconds: TTL_SECONDS,
            reRegisteredAfterThawMs: Math.round(reRegisteredMs),
            callsThroughFreeze: okAfterFreeze - okBeforeFreeze,
            failedThroughFreeze: failedAfterFreeze,
            downMs: DOWN_MS,
            calls: result.ok,
            failed: result.errors.length,
            addedFollowedMs: Math.round(addedMs),
            removedFollowedMs: Math.round(removedMs),
            removedLeftSetMs: Math.round(leftSetMs),
            deregisterTookMs: Math.round(deregisteredMs),
          };
          t.diagnostic(JSON.stringify(figures));
          assertSurvived(result.errors, addedMs, removedMs);
        } finally {
          await load.stop();
        }
      });
    } finally {
      greeter?.close();
      await Promise.allSettled([...registrations.values()].map((r) => r.deregister()));
      await backends.stopAll();
    }
  });
});
