/**
 * Zone-aware routing (`zoneAware`) against real backends: six grpc-js servers on 127.0.0.2-7,
 * two in each of zones a, b and c (zones given in the static: target), a client in zone a.
 * While every backend serves, every call stays in zone a; when a zone-a backend says NOT_SERVING
 * or stops, zone a keeps what it can carry and the rest spills to b and c in proportion to their
 * spare capacity; no call fails throughout. Inside a traffic split, each subset stays local.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { register, roundRobin, serviceConfig, trafficSplit } from '@grpc-lb/core';
import {
  type Backend,
  type BackendSet,
  type GreeterClient,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from './harness';
import { startLoad } from './support/load';

register({ grpc });
const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();
const ZONES = ['a', 'a', 'b', 'b', 'c', 'c'];

/** `calls` calls, 4 at a time: how many each zone answered, and the failures. */
async function zoneCounts(client: GreeterClient, calls: number) {
  const zones: Record<string, number> = {};
  const backends: Record<string, number> = {};
  let issued = 0;
  let failed = 0;
  const worker = async () => {
    while (issued < calls) {
      issued++;
      try {
        const reply = await sayHello(client, 'zone');
        const zone = reply.labels['zone'] ?? '?';
        zones[zone] = (zones[zone] ?? 0) + 1;
        backends[reply.backend] = (backends[reply.backend] ?? 0) + 1;
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return { zones, backends, failed };
}

function assertShares(zones: Record<string, number>, expected: Record<string, number>, n: number) {
  for (const [zone, share] of Object.entries(expected)) {
    const actual = (zones[zone] ?? 0) / n;
    assert.ok(
      Math.abs(actual - share) <= 0.01,
      `zone ${zone}: ${actual.toFixed(3)} of calls, expected ${share} ±0.01 (${JSON.stringify(zones)})`,
    );
  }
}

describe('zone-aware routing with real backends', () => {
  let set: BackendSet;
  let a1: Backend;
  let client: GreeterClient;

  before(async () => {
    set = await startBackends({ count: 6, labels: ZONES.map((zone) => ({ zone })) });
    a1 = set.backends[0]!;
    const target = `static:///${set.backends.map((b, i) => `${b.address};zone=${ZONES[i]}`).join(',')}`;
    client = new Greeter(target, insecure, {
      'grpc.service_config': JSON.stringify(
        serviceConfig(
          roundRobin({ healthCheck: {}, zoneAware: { localZone: 'a', minClusterSize: 4 } }),
        ),
      ),
    });
    // Until all six are connected and healthy, zone a may not yet hold its share.
    await waitFor(
      async () => {
        const { zones, backends } = await zoneCounts(client, 20);
        return zones['a'] === 20 && Object.keys(backends).length === 2;
      },
      { timeoutMs: 10_000, message: 'every call in zone a, over both of its backends' },
    );
  });

  after(async () => {
    client?.close();
    await set?.stopAll();
  });

  test('every backend serving: 100% of calls in the local zone, spread over its backends', async () => {
    const { zones, backends, failed } = await zoneCounts(client, 300);
    assert.equal(failed, 0);
    assert.deepEqual(zones, { a: 300 });
    assert.ok(Math.abs(backends['backend-1']! - 150) <= 4, JSON.stringify(backends));
  });

  test('traffic split: each subset stays in the local zone; the 50/50 split holds', async () => {
    // v1 on backends 1, 3, 5 (zones a, b, c), v2 on 2, 4, 6: one member of each subset per zone.
    const target = `static:///${set.backends
      .map((b, i) => `${b.address};zone=${ZONES[i]};version=v${(i % 2) + 1}`)
      .join(',')}`;
    const split = new Greeter(target, insecure, {
      'grpc.service_config': JSON.stringify(
        serviceConfig(
          trafficSplit()
            .subset('v1', { version: 'v1' })
            .subset('v2', { version: 'v2' })
            .defaultRoute({ v1: 50, v2: 50 })
            .resilience({ zoneAware: { localZone: 'a', minClusterSize: 3 } }),
        ),
      ),
    });
    try {
      await waitFor(async () => Object.keys((await zoneCounts(split, 20)).backends).length === 2, {
        timeoutMs: 10_000,
        message: 'both zone-a backends answer',
      });
      await waitFor(async () => (await zoneCounts(split, 20)).zones['a'] === 20, {
        timeoutMs: 10_000,
        message: 'every call in zone a',
      });
      const { zones, backends, failed } = await zoneCounts(split, 200);
      assert.equal(failed, 0);
      assert.deepEqual(zones, { a: 200 });
      assert.deepEqual(backends, { 'backend-1': 100, 'backend-2': 100 });
    } finally {
      split.close();
    }
  });

  test('a local backend NOT_SERVING: zone a keeps 60%, b and c take 20% each; no call fails', async () => {
    // Calls run throughout the change; the shares are measured once it has applied, with this
    // test's calls the only ones picking (the zone schedule is then exact over every 5 calls).
    let load = startLoad(client, { concurrency: 2 });
    await a1.setHealth('NOT_SERVING');
    await waitFor(async () => (await zoneCounts(client, 20)).backends['backend-1'] === undefined, {
      timeoutMs: 5_000,
      message: 'backend-1 out of rotation',
    });
    assert.deepEqual(
      (await load.stop()).errors.map((e) => e.details),
      [],
    );
    // In rotation a 1, b 2, c 2 of 5; clients assumed spread like the 6 listed (1/3 each):
    // zone a keeps (1/5)/(1/3) = 60%, the rest splits by spare capacity 2/5 − 1/3 in b and c.
    const { zones, backends, failed } = await zoneCounts(client, 500);
    assert.equal(failed, 0);
    assert.equal(backends['backend-1'], undefined);
    assertShares(zones, { a: 0.6, b: 0.2, c: 0.2 }, 500);
    load = startLoad(client, { concurrency: 2 });
    await a1.setHealth('SERVING');
    await waitFor(async () => (await zoneCounts(client, 20)).zones['a'] === 20, {
      timeoutMs: 5_000,
      message: 'every call in zone a again',
    });
    assert.deepEqual(
      (await load.stop()).errors.map((e) => e.details),
      [],
    );
  });

  test('a local backend stopped: the same spill; back to 100% local once it returns; no call fails', async () => {
    let load = startLoad(client, { concurrency: 2 });
    await a1.stopGracefully();
    await waitFor(async () => (await zoneCounts(client, 20)).zones['b'] !== undefined, {
      timeoutMs: 5_000,
      message: 'calls spill to zone b',
    });
    assert.deepEqual(
      (await load.stop()).errors.map((e) => e.details),
      [],
    );
    const { zones, backends, failed } = await zoneCounts(client, 500);
    assert.equal(failed, 0);
    assert.equal(backends['backend-1'], undefined);
    assertShares(zones, { a: 0.6, b: 0.2, c: 0.2 }, 500);
    load = startLoad(client, { concurrency: 2 });
    await a1.restart();
    await waitFor(
      async () => {
        const counts = await zoneCounts(client, 20);
        return counts.zones['a'] === 20 && counts.backends['backend-1'] !== undefined;
      },
      { timeoutMs: 15_000, message: 'backend-1 back and every call in zone a' },
    );
    assert.deepEqual(
      (await load.stop()).errors.map((e) => e.details),
      [],
    );
  });
});
