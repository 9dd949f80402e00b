/**
 * Chaos, Consul: steady load on a `consul:///` target served by real grpc-js backends registered
 * through the agent API. The agent is SIGSTOPped for 30 s and resumed, then SIGKILLed and
 * restarted. The test agent is a dev agent, which keeps its catalog in memory only: right after
 * the restart the test registers the same instances again, as a persistent agent restoring them
 * from its data dir (or registration helpers) would; the removal hold-down covers the moment the
 * restarted agent answers "no instance". No call may fail; afterwards a backend registered is
 * followed and one deregistered is dropped, without restarting the client.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { registerConsul } from '@grpc-lb/resolver-consul';
import {
  type Backend,
  type GreeterClient,
  loadGreeterService,
  startBackends,
  waitFor,
} from './harness';
import { requireConsul, startConsul, type Consul } from './support/consul';
import { startLoad, waitUntilQuiet } from './support/load';
import { serverFixture } from './support/server-fixture';
import { assertSurvived } from './support/chaos';

const Greeter = loadGreeterService();
const consul = serverFixture('consul', () => startConsul(), requireConsul);

const SERVICE = 'chaos';
const FROZEN_MS = 30_000;
const DOWN_MS = 3_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function register(c: Consul, backend: Backend): Promise<void> {
  const result = await c.api('PUT', '/v1/agent/service/register', {
    ID: `${SERVICE}-${backend.name}`,
    Name: SERVICE,
    Address: backend.host,
    Port: backend.port,
  });
  assert.equal(result.status, 200, result.body);
}

async function deregister(c: Consul, backend: Backend): Promise<void> {
  const result = await c.api('PUT', `/v1/agent/service/deregister/${SERVICE}-${backend.name}`);
  assert.equal(result.status, 200, result.body);
}

describe('chaos: Consul agent frozen 30 s, then killed and restarted, under steady load', () => {
  test('no call fails through the hang and the crash, and changes after the restart are followed within 5 s', async (t) => {
    const c = await consul.get(t);
    if (!c) return;
    registerConsul({ grpc, address: c.address, logger: { warn: () => undefined } });
    const backends = await startBackends({ count: 4 });
    const [b1, b2, b3, b4] = backends.backends;
    assert.ok(b1 && b2 && b3 && b4);
    let greeter: GreeterClient | undefined;
    try {
      await consul.logged(async () => {
        for (const b of [b1, b2, b3]) await register(c, b);
        greeter = new Greeter(`consul:///${SERVICE}`, grpc.credentials.createInsecure(), {
          'grpc.use_local_subchannel_pool': 1,
        });
        const load = startLoad(greeter, { concurrency: 3, deadlineMs: 5_000, pauseMs: 2 });
        try {
          await waitFor(() => [b1, b2, b3].every((b) => load.result.perBackend.has(b.address)), {
            timeoutMs: 10_000,
            message: 'b1, b2 and b3 take calls',
          });
          const okBeforeFreeze = load.result.ok;
          c.freeze();
          await sleep(FROZEN_MS);
          c.thaw();
          await sleep(2_000);
          const callsThroughFreeze = load.result.ok - okBeforeFreeze;
          const failedThroughFreeze = load.result.errors.length;

          await c.kill();
          await sleep(DOWN_MS);
          await c.start();
          const readyAt = performance.now();
          for (const b of [b1, b2, b3]) await register(c, b);
          const restoredMs = performance.now() - readyAt;
          await sleep(3_000); // past the 2 s hold-down
          const addedAt = performance.now();
          await register(c, b4);
          await waitFor(() => load.result.perBackend.has(b4.address), {
            timeoutMs: 15_000,
            intervalMs: 5,
            message: 'b4, registered after the restart, takes calls',
          });
          const addedMs = performance.now() - addedAt;
          const addedSinceReadyMs = performance.now() - readyAt;
          const removedAt = performance.now();
          await deregister(c, b1);
          const lastCall = await waitUntilQuiet(load, b1.address, {
            quietMs: 1_000,
            timeoutMs: 15_000,
            message: 'b1, deregistered, stops taking calls',
          });
          const removedMs = Math.max(0, lastCall - removedAt);
          const result = await load.stop();
          t.diagnostic(
            JSON.stringify({
              registry: 'consul',
              frozenMs: FROZEN_MS,
              callsThroughFreeze,
              failedThroughFreeze,
              downMs: DOWN_MS,
              reRegisteredAfterRestartMs: Math.round(restoredMs),
              calls: result.ok,
              failed: result.errors.length,
              addedFollowedMs: Math.round(addedMs),
              addedSinceAgentReadyMs: Math.round(addedSinceReadyMs),
              removedFollowedMs: Math.round(removedMs),
            }),
          );
          assertSurvived(result.errors, addedMs, removedMs);
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
