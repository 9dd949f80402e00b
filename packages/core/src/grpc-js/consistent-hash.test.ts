/**
 * `grpc-lb.consistent_hash` through the real balancer (fake subchannels):
 * sticky keys, the walk past endpoints out of rotation and the keys' return,
 * the fallback for calls without a key, config changes mid-flight, and the
 * same policy as a traffic-split subset.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CONSISTENT_HASH_POLICY, HASH_KEY_HEADER } from '../consistent-hash-config';
import { HashRing, MaglevTable, type HashTable } from '../hash-ring';
import { LoadBalancerObserver } from '../observer';
import { TRAFFIC_SPLIT_POLICY } from '../traffic-split-config';
import { xxh64String } from '../xxhash64';
import { hashTableFor } from './consistent-hash';
import type { EndpointChild } from './endpoint-policy';
import { PolicyHarness, Status } from './testing/fake-channel';

const ENDPOINTS = Array.from({ length: 5 }, (_, i) => `10.0.0.${i + 1}:80`);
const KEYS = Array.from({ length: 200 }, (_, i) => `user-${i}`);
const HEADER = 'x-user-id';

function harness(config: Record<string, unknown> = {}, endpoints = ENDPOINTS) {
  return PolicyHarness.create({
    policy: CONSISTENT_HASH_POLICY,
    config: { hashHeader: HEADER, ...config },
    endpoints,
  });
}

/** Where each key's calls went: one address per key, or a failure. */
function route(h: PolicyHarness, keys = KEYS, header = HEADER): Map<string, string> {
  const where = new Map<string, string>();
  for (const key of keys) {
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const call = h.call({ metadata: { [header]: key } });
      if (call.kind !== 'complete') throw new Error(`${key}: ${call.kind}`);
      seen.add(call.address);
      call.end();
    }
    assert.equal(seen.size, 1, `${key} went to ${[...seen].join(', ')}`);
    where.set(key, [...seen][0]!);
  }
  return where;
}

/** The endpoint of the first slot from the key's along the table that is not in `down`. */
function expectedOnRing(ring: HashTable, key: string, down: ReadonlySet<string>): string {
  let slot = ring.slotOf(xxh64String(key));
  for (;;) {
    const owner = ring.keys[ring.owners[slot]!]!;
    if (!down.has(owner)) return owner;
    slot = (slot + 1) % ring.owners.length;
  }
}

const EQUAL = ENDPOINTS.map((key) => ({ key, weight: 1 }));

describe('consistent_hash through the balancer', () => {
  test('the same key goes to the same endpoint; keys spread over every endpoint', async () => {
    const h = harness();
    try {
      await h.ready();
      const where = route(h);
      assert.deepEqual(new Set(where.values()), new Set(ENDPOINTS));
      // The table is the pure ring over the same endpoints: every client agrees.
      const ring = new HashRing(
        ENDPOINTS.map((key) => ({ key, weight: 1 })),
        1024,
        4096,
      );
      for (const [key, address] of where)
        assert.equal(address, expectedOnRing(ring, key, new Set()));
    } finally {
      h.destroy();
    }
  });

  test('the call’s own key (x-grpc-lb-hash-key) wins over the header; several values are joined by ","', async () => {
    const h = harness();
    try {
      await h.ready();
      const byOwn = route(h, KEYS, HASH_KEY_HEADER);
      const both = KEYS.map((key) => {
        const call = h.call({ metadata: { [HASH_KEY_HEADER]: key, [HEADER]: 'other' } });
        if (call.kind !== 'complete') throw new Error(call.kind);
        call.end();
        return call.address;
      });
      assert.deepEqual(
        both,
        KEYS.map((k) => byOwn.get(k)),
      );

      const joined = route(h, ['a,b'])[Symbol.iterator]().next().value![1];
      const args = h.pickArgs();
      args.metadata.add(HEADER, 'a');
      args.metadata.add(HEADER, 'b');
      const picked = h.picker.pick(args);
      assert.equal(picked.subchannel?.getAddress(), joined);
    } finally {
      h.destroy();
    }
  });

  for (const { algorithm, table } of [
    { algorithm: 'ring_hash', table: new HashRing(EQUAL, 1024, 4096) },
    { algorithm: 'maglev', table: new MaglevTable(EQUAL, 65537) },
  ]) {
    test(`${algorithm}: an endpoint leaving rotation: its keys go to the next one along the table, the others stay; back when it returns`, async () => {
      const h = harness({ algorithm });
      try {
        await h.ready();
        const before = route(h);
        for (const [key, address] of before)
          assert.equal(address, expectedOnRing(table, key, new Set()));
        const down = ENDPOINTS[2]!;
        const other = ENDPOINTS[3]!;
        const steps: ['TRANSIENT_FAILURE' | 'CONNECTING' | 'READY' | 'IDLE', string[], string[]][] =
          [
            ['TRANSIENT_FAILURE', [down], [down]],
            ['CONNECTING', [down], [down]],
            ['READY', [down], []],
            ['TRANSIENT_FAILURE', [down, other], [down, other]],
            ['READY', [other], [down]],
            ['IDLE', [other], [down, other]],
            ['READY', [down, other], []],
          ];
        for (const [state, addresses, outList] of steps) {
          await h.setState(state, addresses);
          const out = new Set(outList);
          const now = route(h);
          for (const key of KEYS) {
            const expected = out.has(before.get(key)!)
              ? expectedOnRing(table, key, out)
              : before.get(key);
            assert.equal(now.get(key), expected, `${key} after ${addresses.join(',')} ${state}`);
          }
          // Only the keys of endpoints out of rotation moved.
          for (const [key, address] of now)
            if (address !== before.get(key)) assert.ok(out.has(before.get(key)!), key);
        }
        assert.deepEqual(route(h), before);
      } finally {
        h.destroy();
      }
    });
  }

  test('every endpoint out of rotation: calls queue while one connects and fail when all fail, as other policies', async () => {
    const h = harness();
    try {
      await h.ready();
      await h.setState('CONNECTING', ENDPOINTS);
      assert.equal(h.stateName, 'CONNECTING');
      assert.equal(h.call({ metadata: { [HEADER]: 'k' } }).kind, 'queue');
      await h.setState('TRANSIENT_FAILURE', ENDPOINTS, 'connection refused');
      const failed = h.call({ metadata: { [HEADER]: 'k' } });
      assert.equal(failed.kind, 'fail');
      if (failed.kind === 'fail') assert.equal(failed.code, Status.UNAVAILABLE);
      await h.ready();
      assert.equal(route(h).size, KEYS.length);
    } finally {
      h.destroy();
    }
  });

  test('an ejected endpoint’s keys move and come back; a throwing observer listener changes nothing', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
    const observer = new LoadBalancerObserver();
    observer.on('eject', () => {
      throw new Error('eject listener bug');
    });
    observer.on('return', () => {
      throw new Error('return listener bug');
    });
    const h = PolicyHarness.create({
      policy: CONSISTENT_HASH_POLICY,
      config: {
        hashHeader: HEADER,
        outlierDetection: {
          interval: '10s',
          baseEjectionTime: '30s',
          consecutiveFailures: 1,
          maxEjectionPercent: 50,
        },
      },
      endpoints: ENDPOINTS,
      observer,
    });
    try {
      await h.ready();
      const before = route(h);
      const key = KEYS[0]!;
      const victim = before.get(key)!;
      const call = h.call({ metadata: { [HEADER]: key } });
      assert.ok(call.kind === 'complete' && call.address === victim);
      assert.doesNotThrow(() => call.end({ code: Status.UNAVAILABLE }));
      await h.settle();
      assert.equal(observer.endpoint(victim)?.ejected, true);
      const during = route(h);
      assert.notEqual(during.get(key), victim);
      const ring = new HashRing(EQUAL, 1024, 4096);
      for (const [k, address] of before)
        assert.equal(
          during.get(k),
          address === victim ? expectedOnRing(ring, k, new Set([victim])) : address,
          k,
        );

      t.mock.timers.tick(40_000);
      await h.settle();
      assert.equal(observer.endpoint(victim)?.ejected, false);
      assert.deepEqual(route(h), before);
    } finally {
      h.destroy();
    }
  });

  test('calls without a key: random by default, in turn with fallback round_robin', async () => {
    const h = harness();
    try {
      await h.ready();
      const random = h.pickMany(500);
      assert.equal(Object.keys(random.counts).length, ENDPOINTS.length);
      h.update({ config: { hashHeader: HEADER, fallback: 'round_robin' } });
      await h.settle();
      const { order } = h.pickMany(10);
      assert.deepEqual(order.slice(5), order.slice(0, 5));
      assert.equal(new Set(order).size, ENDPOINTS.length);
    } finally {
      h.destroy();
    }
  });

  test('a config change mid-flight (ring → maglev, another header): calls in flight end, keys stick under the new table', async () => {
    const h = harness();
    try {
      await h.ready();
      const inFlight = h.call({ metadata: { [HEADER]: 'k' } });
      h.update({ config: { algorithm: 'maglev', hashHeader: 'x-tenant' } });
      await h.settle();
      assert.equal(h.stateName, 'READY');
      if (inFlight.kind === 'complete') assert.doesNotThrow(() => inFlight.end());
      const maglev = route(h, KEYS, 'x-tenant');
      assert.equal(new Set(maglev.values()).size, ENDPOINTS.length);
      assert.deepEqual(route(h, KEYS, 'x-tenant'), maglev);
    } finally {
      h.destroy();
    }
    assert.deepEqual(h.leakedSubchannels(), []);
  });

  test('weights: an endpoint of weight 3 gets about 3× the keys; weight 0 none; only weight 0 ready fails', async () => {
    const h = harness({}, []);
    try {
      h.update({
        endpoints: [
          { address: ENDPOINTS[0]!, weight: 1 },
          { address: ENDPOINTS[1]!, weight: 3 },
          { address: ENDPOINTS[2]!, weight: 0 },
        ],
      });
      await h.ready();
      const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`);
      const counts: Record<string, number> = {};
      for (const address of route(h, keys).values()) counts[address] = (counts[address] ?? 0) + 1;
      assert.equal(counts[ENDPOINTS[2]!], undefined);
      const ratio = counts[ENDPOINTS[1]!]! / counts[ENDPOINTS[0]!]!;
      assert.ok(ratio > 2.2 && ratio < 4, `weight 3 : weight 1 = ${ratio}`);

      await h.setState('TRANSIENT_FAILURE', [ENDPOINTS[0]!, ENDPOINTS[1]!]);
      const failed = h.call({ metadata: { [HEADER]: 'k' } });
      assert.equal(failed.kind, 'fail');
      if (failed.kind === 'fail') assert.match(failed.details, /no endpoint with a weight above 0/);
    } finally {
      h.destroy();
    }
  });

  for (const { name, config, endpoints, warning, reached } of [
    {
      name: 'a ring capped below the endpoint count',
      config: { minRingSize: 3, maxRingSize: 3 },
      endpoints: ENDPOINTS.map((address) => ({ address })),
      warning:
        '2 of 5 endpoints have no entry on the ring of at most 3: they get no keyed call (raise maxRingSize)',
      reached: 3,
    },
    {
      name: 'a Maglev table with fewer slots than endpoints',
      config: { algorithm: 'maglev', tableSize: 3 },
      endpoints: ENDPOINTS.map((address) => ({ address })),
      warning:
        '2 of 5 endpoints have no slot in the Maglev table of 3: they get no keyed call (raise tableSize)',
      reached: 3,
    },
    {
      name: 'a Maglev table filled before a light endpoint’s turn',
      config: { algorithm: 'maglev', tableSize: 7 },
      endpoints: [
        { address: ENDPOINTS[0]!, weight: 1000 },
        { address: ENDPOINTS[1]!, weight: 1 },
      ],
      warning:
        '1 of 2 endpoints have no slot in the Maglev table of 7: they get no keyed call (raise tableSize)',
      reached: 1,
    },
  ]) {
    test(`endpoints without a slot are named in one warning per table, not per picker: ${name}`, async () => {
      const h = harness(config, []);
      try {
        h.update({ endpoints });
        await h.ready();
        const before = route(h);
        assert.equal(new Set(before.values()).size, reached);
        // Pickers are made again as an endpoint leaves and returns; the table, and its warning, are not.
        const first = endpoints[0]!.address;
        await h.setState('TRANSIENT_FAILURE', [first]);
        route(h);
        await h.ready(first);
        assert.deepEqual(route(h), before);
        assert.deepEqual(h.warnings, [`grpc-lb.consistent_hash for test:///svc: ${warning}`]);

        // Only endpoints without a slot in rotation: keyed calls go to them (the fallback), not fail.
        const placed = [...new Set(before.values())];
        await h.setState('TRANSIENT_FAILURE', placed);
        for (const key of KEYS.slice(0, 20)) {
          const call = h.call({ metadata: { [HEADER]: key } });
          assert.equal(call.kind, 'complete', key);
          if (call.kind === 'complete') {
            assert.ok(!placed.includes(call.address), `${key} went to ${call.address}`);
            call.end();
          }
        }
      } finally {
        h.destroy();
      }
    });
  }

  test('a list that keeps changing while some endpoints have no slot warns once, and again after they all had one', async () => {
    const h = harness({ minRingSize: 3, maxRingSize: 3 }, []);
    const warned = () => h.warnings.filter((w) => w.includes('no entry on the ring')).length;
    try {
      for (const [n, warnings] of [
        [5, 1],
        [4, 1],
        [5, 1],
        [3, 1],
        [4, 2],
      ] as const) {
        h.update({ endpoints: ENDPOINTS.slice(0, n) });
        await h.ready();
        route(h);
        assert.equal(warned(), warnings, `${n} endpoints`);
      }
    } finally {
      h.destroy();
    }
  });

  test('a table where every endpoint has a slot warns nothing', async () => {
    const h = harness({ algorithm: 'maglev', tableSize: 7 });
    try {
      await h.ready();
      assert.equal(new Set(route(h).values()).size, ENDPOINTS.length);
      assert.deepEqual(h.warnings, []);
    } finally {
      h.destroy();
    }
  });

  test('the table is built once per endpoint set and weights, not per picker', () => {
    const memo = new Map<string, unknown>();
    const child = (key: string, weight = 1) =>
      ({ key, info: { weight } }) as unknown as EndpointChild;
    const config = { ...h0().config };
    const a = hashTableFor(config, [child('a:1'), child('b:1')], memo, 's');
    assert.equal(hashTableFor(config, [child('b:1'), child('a:1')], memo, 's'), a);
    assert.notEqual(hashTableFor(config, [child('a:1'), child('b:1', 2)], memo, 's'), a);
    assert.notEqual(
      hashTableFor(
        { ...config, minRingSize: 8, maxRingSize: 8 },
        [child('a:1'), child('b:1', 2)],
        memo,
        's',
      ),
      a,
    );
  });
});

function h0() {
  return {
    config: {
      algorithm: 'ring_hash' as const,
      hashHeader: undefined,
      minRingSize: 16,
      maxRingSize: 64,
      tableSize: 65537,
      fallback: 'random' as const,
    },
  };
}

describe('consistent_hash as a traffic-split subset policy', () => {
  test('keys stick to an endpoint of their subset, and move only inside it', async () => {
    const v1 = ['10.0.1.1:80', '10.0.1.2:80', '10.0.1.3:80'];
    const v2 = ['10.0.2.1:80'];
    const h = PolicyHarness.create({
      policy: TRAFFIC_SPLIT_POLICY,
      config: {
        consistentHash: { hashHeader: HEADER },
        subsets: [
          { name: 'v1', labels: { version: 'v1' }, policy: 'consistent_hash' },
          { name: 'v2', labels: { version: 'v2' } },
        ],
        routes: [
          {
            match: { headers: [{ name: 'x-canary', exact: '1' }] },
            split: [{ subset: 'v2', weight: 1 }],
          },
          { split: [{ subset: 'v1', weight: 1 }] },
        ],
      },
      endpoints: [
        ...v1.map((address) => ({ address, labels: { version: 'v1' } })),
        ...v2.map((address) => ({ address, labels: { version: 'v2' } })),
      ],
    });
    try {
      await h.ready();
      const before = route(h);
      assert.deepEqual(new Set(before.values()), new Set(v1));
      await h.setState('TRANSIENT_FAILURE', [v1[0]!]);
      const during = route(h);
      for (const [key, address] of before) {
        if (address === v1[0])
          assert.ok(v1.includes(during.get(key)!) && during.get(key) !== v1[0]);
        else assert.equal(during.get(key), address);
      }
      await h.ready(v1[0]!);
      assert.deepEqual(route(h), before);
    } finally {
      h.destroy();
    }
  });

  test('a subset’s endpoints left off its capped ring are named in a warning with the subset', async () => {
    const h = PolicyHarness.create({
      policy: TRAFFIC_SPLIT_POLICY,
      config: {
        subsets: [
          {
            name: 'v1',
            policy: 'consistent_hash',
            consistentHash: { hashHeader: HEADER, minRingSize: 2, maxRingSize: 2 },
          },
        ],
        routes: [{ split: [{ subset: 'v1', weight: 1 }] }],
      },
      endpoints: ENDPOINTS,
    });
    try {
      await h.ready();
      assert.equal(new Set(route(h).values()).size, 2);
      assert.equal(h.warnings.length, 1, h.warnings.join('\n'));
      assert.match(
        h.warnings[0]!,
        /v1.*3 of 5 endpoints have no entry on the ring of at most 2: they get no keyed call \(raise maxRingSize\)/,
      );
    } finally {
      h.destroy();
    }
  });

  test('a subset’s consistentHash with another policy is refused, naming the field', () => {
    const h = PolicyHarness.create({ policy: TRAFFIC_SPLIT_POLICY });
    assert.throws(
      () =>
        h.parseConfig({
          subsets: [{ name: 'v1', policy: 'random', consistentHash: {} }],
          routes: [{ split: [{ subset: 'v1', weight: 1 }] }],
        }),
      /subsets\[0\]\.consistentHash: applies to policy "consistent_hash", not "random"/,
    );
    h.destroy();
  });
});
