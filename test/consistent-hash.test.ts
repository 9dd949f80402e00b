/**
 * grpc-lb.consistent_hash against 10 real grpc-js backends (child processes
 * on 127.0.0.x, one port), endpoints from a `manual:` target: stickiness
 * over 10,000 calls and across a resolver update that leaves the endpoint
 * set alone, the share of keys that move when one backend is removed, a
 * backend ejected or NOT_SERVING (its keys to the next on the ring and
 * back), Maglev keyed per call by the application, and an Istio
 * DestinationRule's consistentHash translated.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  CONSISTENT_HASH_POLICY,
  HashRing,
  LoadBalancerObserver,
  ManualEndpoints,
  OBSERVER_OPTION,
  register,
  setHashKey,
  xxh64String,
} from '@grpc-lb/core';
import { translateIstio } from '@grpc-lb/istio';
import {
  type Backend,
  type BackendSet,
  type GreeterClient,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from './harness';

register({ grpc });
const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();
const HEADER = 'x-user-id';
const KEYS = Array.from({ length: 1000 }, (_, i) => `user-${i}`);
/**
 * For the share moved on a removal: the ring's arcs depend on the backends' random port, and the
 * removed backend's share of 1,000 keys varies by about 1.2 points from port to port (1.5% of
 * ports outside ±3); of 10,000 keys, by about 0.9 (about 0.1% of ports outside).
 */
const MANY_KEYS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

function endpointsOf(backends: readonly Backend[], labels: Record<string, string> = {}) {
  return backends.map((b) => ({ host: b.host, port: b.port, labels }));
}

function hashedClient(
  target: string,
  config: Record<string, unknown> = {},
  observer?: LoadBalancerObserver,
): GreeterClient {
  return new Greeter(target, insecure, {
    'grpc.service_config': JSON.stringify({
      loadBalancingConfig: [{ [CONSISTENT_HASH_POLICY]: { hashHeader: HEADER, ...config } }],
    }),
    ...(observer ? { [OBSERVER_OPTION]: observer } : {}),
  });
}

/** Where `key` goes on the default ring (1024 – 4096 entries) of `addresses` when `out` is not in rotation. */
function nextOnRing(addresses: readonly string[], key: string, out: string): string {
  const ring = new HashRing(
    addresses.map((address) => ({ key: address, weight: 1 })),
    1024,
    4096,
  );
  const { owners, keys } = ring;
  for (let slot = ring.slotOf(xxh64String(key)), n = 0; n < owners.length; n++) {
    const owner = keys[owners[slot]!]!;
    if (owner !== out) return owner;
    slot = (slot + 1) % owners.length;
  }
  throw new Error('no endpoint on the ring');
}

function keyed(key: string, header = HEADER): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set(header, key);
  return metadata;
}

/** `calls` calls, 20 at a time, call i keyed `keys[i % keys.length]`; the backends each key reached. */
async function drive(
  client: GreeterClient,
  calls: number,
  metadataFor: (key: string) => grpc.Metadata = keyed,
  keys: readonly string[] = KEYS,
): Promise<Map<string, Set<string>>> {
  const reached = new Map<string, Set<string>>();
  let issued = 0;
  const worker = async () => {
    while (issued < calls) {
      const key = keys[issued++ % keys.length]!;
      const reply = await sayHello(client, 'test', { metadata: metadataFor(key) });
      let set = reached.get(key);
      if (!set) reached.set(key, (set = new Set()));
      set.add(reply.address);
    }
  };
  await Promise.all(Array.from({ length: 20 }, worker));
  return reached;
}

/** Each key's only backend; fails naming a key that reached more than one. */
function stickyMap(reached: Map<string, Set<string>>): Map<string, string> {
  const map = new Map<string, string>();
  for (const [key, set] of reached) {
    assert.equal(set.size, 1, `${key} reached ${[...set].join(', ')}`);
    map.set(key, [...set][0]!);
  }
  return map;
}

async function allConnected(backends: readonly Backend[]): Promise<void> {
  await waitFor(
    async () => {
      for (const b of backends) if ((await b.stats()).connectionsOpen !== 1) return false;
      return true;
    },
    { timeoutMs: 10_000, intervalMs: 50, message: 'every backend is connected' },
  );
}

describe('grpc-lb.consistent_hash with 10 real backends', () => {
  let set: BackendSet;
  before(async () => {
    set = await startBackends({ count: 10 });
  });
  after(async () => {
    await set.stopAll();
  });

  test('the same key lands on the same backend over 10,000 calls and across a resolver update that keeps the set', async () => {
    const manual = new ManualEndpoints(endpointsOf(set.backends));
    const client = hashedClient(manual.target);
    try {
      await sayHello(client, 'warm-up', { waitForReady: true });
      await allConnected(set.backends);
      const first = stickyMap(await drive(client, 10_000));
      assert.equal(first.size, KEYS.length);
      assert.equal(new Set(first.values()).size, 10, 'keys spread over every backend');

      // Another order and new labels: the same set, so the same table.
      manual.update(endpointsOf([...set.backends].reverse(), { version: 'v2' }));
      const second = stickyMap(await drive(client, 2_000));
      assert.deepEqual(second, first);
    } finally {
      client.close();
      manual.dispose();
    }
  });

  test('removing one of 10 backends moves about 10% of 10,000 keys (±3 points), only keys it had', async () => {
    const manual = new ManualEndpoints(endpointsOf(set.backends));
    const client = hashedClient(manual.target);
    try {
      await sayHello(client, 'warm-up', { waitForReady: true });
      await allConnected(set.backends);
      const before = stickyMap(await drive(client, MANY_KEYS.length, keyed, MANY_KEYS));
      const removed = set.backends[3]!;
      manual.update(endpointsOf(set.backends.filter((b) => b !== removed)));
      await waitFor(
        async () => {
          const reached = await drive(client, 200);
          return [...reached.values()].every((s) => !s.has(removed.address));
        },
        { timeoutMs: 5000, message: 'no call reaches the removed backend' },
      );
      const after = stickyMap(await drive(client, MANY_KEYS.length, keyed, MANY_KEYS));
      let moved = 0;
      for (const [key, address] of before) {
        if (after.get(key) === address) continue;
        moved++;
        assert.equal(address, removed.address, `${key} moved from ${address}, not the removed one`);
      }
      const share = moved / MANY_KEYS.length;
      assert.ok(share >= 0.07 && share <= 0.13, `moved ${share}`);
      assert.ok(![...after.values()].includes(removed.address));
    } finally {
      client.close();
      manual.dispose();
    }
  });

  for (const { name, config, takeOut, bringBack } of [
    {
      name: 'ejected by outlier detection (5 failures in a row)',
      config: {
        outlierDetection: {
          interval: '1s',
          consecutiveFailures: 5,
          baseEjectionTime: '6s',
          maxEjectionPercent: 10,
        },
      },
      takeOut: async (
        client: GreeterClient,
        victim: Backend,
        keysOfVictim: string[],
        observer: LoadBalancerObserver,
      ) => {
        await victim.setFailRate(1);
        try {
          await waitFor(
            async () => {
              for (const key of keysOfVictim.slice(0, 5))
                await sayHello(client, 'fail', { metadata: keyed(key) }).catch(() => undefined);
              return observer.endpoint(victim.address)?.ejected === true;
            },
            { timeoutMs: 5000, message: 'the failing backend is ejected' },
          );
        } finally {
          await victim.setFailRate(0);
        }
      },
      bringBack: async (_victim: Backend, observer: LoadBalancerObserver, address: string) => {
        await waitFor(() => observer.endpoint(address)?.inRotation === true, {
          timeoutMs: 15_000,
          message: 'the ejection ends',
        });
      },
    },
    {
      name: 'NOT_SERVING to health checks',
      config: { healthCheck: { serviceName: '' } },
      takeOut: async (
        _client: GreeterClient,
        victim: Backend,
        _keys: string[],
        observer: LoadBalancerObserver,
      ) => {
        await victim.setHealth('NOT_SERVING');
        await waitFor(() => observer.endpoint(victim.address)?.inRotation === false, {
          timeoutMs: 5000,
          message: 'the backend leaves rotation',
        });
      },
      bringBack: async (victim: Backend, observer: LoadBalancerObserver, address: string) => {
        await victim.setHealth('SERVING');
        await waitFor(() => observer.endpoint(address)?.inRotation === true, {
          timeoutMs: 5000,
          message: 'the backend is back in rotation',
        });
      },
    },
  ]) {
    test(`a backend ${name}: its keys go to the next backend on the ring, the others stay, and they come back`, async () => {
      const observer = new LoadBalancerObserver();
      const manual = new ManualEndpoints(endpointsOf(set.backends));
      const client = hashedClient(manual.target, config, observer);
      const victim = set.backends[5]!;
      try {
        await sayHello(client, 'warm-up', { waitForReady: true });
        await allConnected(set.backends);
        await waitFor(() => set.backends.every((b) => observer.endpoint(b.address)?.inRotation), {
          timeoutMs: 5000,
          message: 'every backend in rotation',
        });
        const before = stickyMap(await drive(client, 2_000));
        const keysOfVictim = KEYS.filter((k) => before.get(k) === victim.address);
        assert.ok(keysOfVictim.length > 0);

        await takeOut(client, victim, keysOfVictim, observer);
        // Calls picked before it left may still be on their way: measure from when none is.
        await waitFor(() => observer.endpoint(victim.address)?.outstanding === 0, {
          timeoutMs: 5000,
          message: 'no call in flight to the backend taken out',
        });
        const during = stickyMap(await drive(client, KEYS.length));
        assert.equal(observer.endpoint(victim.address)?.inRotation, false, 'still out');
        for (const [key, address] of before) {
          const expected =
            address === victim.address ? nextOnRing(set.addresses, key, victim.address) : address;
          assert.equal(during.get(key), expected, key);
        }
        assert.ok(new Set(keysOfVictim.map((k) => during.get(k))).size > 1, 'spread over several');

        await bringBack(victim, observer, victim.address);
        assert.deepEqual(stickyMap(await drive(client, 2_000)), before);
      } finally {
        client.close();
        manual.dispose();
        await victim.setHealth('SERVING');
        await victim.setFailRate(0);
      }
    });
  }

  test('an Istio DestinationRule with consistentHash.httpHeaderName, translated: each key on one backend, over every backend', async () => {
    const { serviceConfig, warnings } = translateIstio({
      host: 'hello',
      namespace: 'prod',
      virtualServices: [],
      destinationRules: [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'DestinationRule',
          metadata: { name: 'hello', namespace: 'prod' },
          spec: {
            host: 'hello',
            trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'X-User-Id' } } },
          },
        },
      ],
    });
    assert.deepEqual(warnings, []);
    const manual = new ManualEndpoints(endpointsOf(set.backends));
    const client = new Greeter(manual.target, insecure, {
      'grpc.service_config': JSON.stringify(serviceConfig),
    });
    try {
      await sayHello(client, 'warm-up', { waitForReady: true });
      await allConnected(set.backends);
      const map = stickyMap(await drive(client, 2_000));
      assert.equal(new Set(map.values()).size, 10);
    } finally {
      client.close();
      manual.dispose();
    }
  });

  test('maglev, keyed by the application per call (setHashKey): sticky, and spread over every backend', async () => {
    const manual = new ManualEndpoints(endpointsOf(set.backends));
    const client = hashedClient(manual.target, { algorithm: 'maglev' });
    try {
      await sayHello(client, 'warm-up', { waitForReady: true });
      await allConnected(set.backends);
      const map = stickyMap(
        await drive(client, 3_000, (key) => setHashKey(new grpc.Metadata(), key)),
      );
      assert.equal(new Set(map.values()).size, 10);
    } finally {
      client.close();
      manual.dispose();
    }
  });
});
