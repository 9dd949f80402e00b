/**
 * Zone-aware routing in the balancer, state by state, with the fake
 * subchannel kit: local share when healthy, spill-over when local endpoints
 * fail their health check or lose their connection, panic and
 * minClusterSize turning it off, a config change mid-flight, no zone known,
 * Kubernetes hints, and traffic-split subsets.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { CONSISTENT_HASH_POLICY } from '../consistent-hash-config';
import { LEAST_REQUEST_POLICY } from '../least-request-config';
import { ROUND_ROBIN_POLICY } from '../service-config';
import { TRAFFIC_SPLIT_POLICY } from '../traffic-split-config';
import { WEIGHTED_ROUND_ROBIN_POLICY } from '../weighted-round-robin-config';
import { ZONE_ENV } from '../zone-aware';
import { PolicyHarness, Status, type EndpointInput } from './testing/fake-channel';

/** Three endpoints in each of zones a, b, c: a1…a3 at 10.0.1.x, b at 10.0.2.x, c at 10.0.3.x. */
const ZONES = ['a', 'b', 'c'] as const;
const addr = (zone: string, i: number) => `10.0.${ZONES.indexOf(zone as 'a') + 1}.${i}:80`;
const A = [1, 2, 3].map((i) => addr('a', i));
const B = [1, 2, 3].map((i) => addr('b', i));
const C = [1, 2, 3].map((i) => addr('c', i));
const NINE: EndpointInput[] = ZONES.flatMap((zone) =>
  [1, 2, 3].map((i) => ({ address: addr(zone, i), zone })),
);

function byZone(counts: Record<string, number>): Record<string, number> {
  const zones: Record<string, number> = {};
  for (const [address, n] of Object.entries(counts)) {
    const zone = ZONES[Number(address.split('.')[2]) - 1] ?? '?';
    zones[zone] = (zones[zone] ?? 0) + n;
  }
  return zones;
}

async function harness(
  config: Record<string, unknown>,
  endpoints: readonly EndpointInput[] = NINE,
  policy = ROUND_ROBIN_POLICY,
): Promise<PolicyHarness> {
  const h = PolicyHarness.create({ policy, config, endpoints });
  await h.ready();
  if (config['healthCheck']) {
    for (const e of endpoints) await h.setHealth(e.address, 'SERVING');
  }
  assert.equal(h.stateName, 'READY');
  return h;
}

let savedEnv: string | undefined;
beforeEach(() => {
  savedEnv = process.env[ZONE_ENV];
  delete process.env[ZONE_ENV];
});
afterEach(() => {
  if (savedEnv === undefined) delete process.env[ZONE_ENV];
  else process.env[ZONE_ENV] = savedEnv;
});

describe('zone-aware routing (balancer state)', () => {
  test('every endpoint healthy: 100% local, the local endpoints in turn', async () => {
    const h = await harness({ zoneAware: { localZone: 'a' } });
    const tally = h.pickMany(300);
    assert.deepEqual(byZone(tally.counts), { a: 300 });
    for (const a of A) assert.equal(tally.counts[a], 100);
    assert.deepEqual(tally.failed, []);
  });

  test('one local endpoint NOT_SERVING: local keeps 75%, 12.5% spills to each other zone', async () => {
    // In rotation 2/3/3 of 8; clients assumed like the listed endpoints (3/3/3):
    // local (2/8)/(3/9) = 0.75; residual b, c 3/8 − 1/3 each.
    const h = await harness({ zoneAware: { localZone: 'a' }, healthCheck: {} });
    await h.setHealth(A[0]!, 'NOT_SERVING');
    const tally = h.pickMany(800);
    assert.deepEqual(byZone(tally.counts), { a: 600, b: 100, c: 100 });
    assert.equal(tally.counts[A[0]!], undefined);
    assert.deepEqual(tally.failed, []);
    // Back to SERVING: all local again.
    await h.setHealth(A[0]!, 'SERVING');
    assert.deepEqual(byZone(h.pickMany(90).counts), { a: 90 });
  });

  test('a local endpoint ejected by outlier detection: the same spill as NOT_SERVING; back local when it returns', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
    const h = await harness({
      zoneAware: { localZone: 'a' },
      outlierDetection: { consecutiveFailures: 1, baseEjectionTime: '30s', maxEjectionPercent: 50 },
    });
    // Fail calls on whatever local endpoint they reach until A[0] has failed one.
    for (let i = 0; i < 3; i++) {
      const call = h.call();
      assert.equal(call.kind, 'complete');
      if (call.kind !== 'complete') return;
      call.end(call.address === A[0] ? { code: Status.UNAVAILABLE } : {});
      if (call.address === A[0]) break;
    }
    await h.settle();
    const tally = h.pickMany(800);
    assert.equal(tally.counts[A[0]!], undefined, 'ejected');
    assert.deepEqual(byZone(tally.counts), { a: 600, b: 100, c: 100 });
    t.mock.timers.tick(30_000);
    await h.settle();
    assert.deepEqual(byZone(h.pickMany(90).counts), { a: 90 });
  });

  test('two local endpoints lose their connection: local 1/7 of capacity for 1/3 of clients', async () => {
    const h = await harness({ zoneAware: { localZone: 'a' } });
    await h.fail('connection refused', A[0]!, A[1]!);
    // local (1/7)/(1/3) = 3/7; b and c split the rest: 2/7 each.
    const tally = h.pickMany(700);
    assert.deepEqual(byZone(tally.counts), { a: 300, b: 200, c: 200 });
    assert.deepEqual(tally.failed, []);
  });

  test('spill goes only to zones with spare capacity', async () => {
    // b has a failing endpoint too: only c has capacity beyond its clients' share.
    const h = await harness({ zoneAware: { localZone: 'a' } });
    await h.fail('down', A[0]!, B[0]!);
    // in rotation a2 b2 c3 of 7: local (2/7)/(1/3) = 6/7; residual: c 3/7 − 1/3 = 2/21, b none.
    const tally = h.pickMany(700);
    assert.deepEqual(byZone(tally.counts), { a: 600, c: 100 });
  });

  test('every local endpoint gone: every zone, no call fails', async () => {
    const h = await harness({ zoneAware: { localZone: 'a' } });
    await h.fail('down', ...A);
    const tally = h.pickMany(60);
    assert.deepEqual(byZone(tally.counts), { b: 30, c: 30 });
    assert.deepEqual(tally.failed, []);
  });

  test('panic mode turns it off: every connected endpoint of every zone', async () => {
    const h = await harness({
      zoneAware: { localZone: 'a' },
      healthCheck: {},
      panicThreshold: 50,
    });
    for (const e of [...A, B[0]!, B[1]!]) await h.setHealth(e, 'NOT_SERVING');
    const tally = h.pickMany(90);
    assert.deepEqual(byZone(tally.counts), { a: 30, b: 30, c: 30 });
  });

  test('fewer endpoints in rotation than minClusterSize (default 6): every zone', async () => {
    const four: EndpointInput[] = [
      { address: A[0]!, zone: 'a' },
      { address: A[1]!, zone: 'a' },
      { address: B[0]!, zone: 'b' },
      { address: B[1]!, zone: 'b' },
    ];
    const h = await harness({ zoneAware: { localZone: 'a' } }, four);
    assert.deepEqual(byZone(h.pickMany(40).counts), { a: 20, b: 20 });
    h.update({ config: { zoneAware: { localZone: 'a', minClusterSize: 4 } } });
    await h.settle();
    assert.deepEqual(byZone(h.pickMany(40).counts), { a: 40 });
    // Six endpoints listed, one fails: five in rotation, below the default 6.
    const h6 = await harness({ zoneAware: { localZone: 'a' } }, NINE.slice(0, 6));
    assert.deepEqual(byZone(h6.pickMany(60).counts), { a: 60 });
    await h6.fail('down', B[0]!);
    assert.deepEqual(byZone(h6.pickMany(50).counts), { a: 30, b: 20 });
  });

  test('config change mid-flight: on, off, on again, another zone', async () => {
    const h = await harness({});
    assert.deepEqual(byZone(h.pickMany(90).counts), { a: 30, b: 30, c: 30 });
    h.update({ config: { zoneAware: { localZone: 'b' } } });
    await h.settle();
    assert.deepEqual(byZone(h.pickMany(90).counts), { b: 90 });
    h.update({ config: {} });
    await h.settle();
    assert.deepEqual(byZone(h.pickMany(90).counts), { a: 30, b: 30, c: 30 });
    h.update({ config: { zoneAware: { localZone: 'c' } } });
    await h.settle();
    assert.deepEqual(byZone(h.pickMany(90).counts), { c: 90 });
    assert.equal(h.helper.created.length, 9, 'no reconnection');
  });

  test('no zone known: one warning per channel, calls go to every zone', async () => {
    const h = await harness({ zoneAware: {} });
    assert.deepEqual(byZone(h.pickMany(90).counts), { a: 30, b: 30, c: 30 });
    await h.fail('down', A[0]!);
    await h.ready(A[0]!);
    h.update({ config: { zoneAware: { minClusterSize: 3 } } });
    await h.settle();
    const warnings = h.warnings.filter((w) => w.includes('zone'));
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(
      warnings[0]!,
      /zoneAware.localZone, register\(\{ zone \}\) or the GRPC_LB_ZONE environment variable/,
    );
  });

  test('register({ zone }) names the zone when the config does not, before GRPC_LB_ZONE', async () => {
    process.env[ZONE_ENV] = 'c';
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { zoneAware: {} },
      endpoints: NINE,
    });
    h.rt.zone = 'b';
    await h.ready();
    assert.deepEqual(byZone(h.pickMany(30).counts), { b: 30 });
    h.update({ config: { zoneAware: { localZone: 'a' } } });
    await h.settle();
    assert.deepEqual(byZone(h.pickMany(30).counts), { a: 30 }, 'the config’s localZone first');
  });

  test('GRPC_LB_ZONE names the zone when the config does not', async () => {
    process.env[ZONE_ENV] = 'c';
    const h = await harness({ zoneAware: {} });
    assert.deepEqual(byZone(h.pickMany(30).counts), { c: 30 });
    assert.deepEqual(h.warnings, []);
  });

  test('no endpoint carries a zone (a DNS target): one warning, every endpoint', async () => {
    const plain = NINE.map((e) => ({ address: e.address }));
    const h = await harness({ zoneAware: { localZone: 'a' } }, plain);
    assert.deepEqual(byZone(h.pickMany(90).counts), { a: 30, b: 30, c: 30 });
    await h.fail('down', A[0]!);
    h.pickMany(8);
    const warnings = h.warnings.filter((w) => w.includes('zone'));
    assert.deepEqual(warnings, [
      'test:///svc: zoneAware is set but none of the 9 endpoints carries a zone (its resolver gives none): calls go to every zone',
    ]);
  });

  test('a local zone with no endpoint: every zone', async () => {
    const h = await harness({ zoneAware: { localZone: 'z' } });
    assert.deepEqual(byZone(h.pickMany(90).counts), { a: 30, b: 30, c: 30 });
  });

  test('clientShares: a client fleet mostly in zone a spills even when every endpoint is healthy', async () => {
    // Clients a 2/3, b 1/6, c 1/6; endpoints 1/3 each: local 1/2, b and c 1/4 each.
    const h = await harness({ zoneAware: { localZone: 'a', clientShares: { a: 4, b: 1, c: 1 } } });
    assert.deepEqual(byZone(h.pickMany(400).counts), { a: 200, b: 100, c: 100 });
  });

  test('endpoints without a zone: never local, they take the spill', async () => {
    const endpoints: EndpointInput[] = [
      ...NINE.slice(0, 6),
      { address: C[0]! },
      { address: C[1]! },
    ];
    const h = await harness(
      { zoneAware: { localZone: 'a', clientShares: { a: 1, b: 1 } } },
      endpoints,
    );
    // in rotation a3 b3 none2 of 8, clients a½ b½: local (3/8)/(1/2) = 3/4, the rest to no-zone.
    const tally = h.pickMany(400);
    assert.deepEqual(byZone(tally.counts), { a: 300, c: 100 });
  });

  test('routingEnabled 0: no call is routed by zone', async () => {
    const h = await harness({ zoneAware: { localZone: 'a', routingEnabled: 0 } });
    assert.deepEqual(byZone(h.pickMany(90).counts), { a: 30, b: 30, c: 30 });
  });

  test('weighted round robin keeps its weights inside the local zone', async () => {
    const endpoints = NINE.map((e, i) => ({ ...e, weight: i === 0 ? 3 : 1 }));
    const h = await harness(
      { zoneAware: { localZone: 'a' } },
      endpoints,
      WEIGHTED_ROUND_ROBIN_POLICY,
    );
    const tally = h.pickMany(500);
    assert.deepEqual(tally.counts, { [A[0]!]: 300, [A[1]!]: 100, [A[2]!]: 100 });
  });

  test('least request: only local endpoints while they can carry the load', async () => {
    const h = await harness({ zoneAware: { localZone: 'b' } }, NINE, LEAST_REQUEST_POLICY);
    assert.deepEqual(Object.keys(byZone(h.pickMany(50).counts)), ['b']);
  });
});

describe('zone-aware routing with Kubernetes hints', () => {
  const hinted = (zoneFor: (e: EndpointInput) => string[] | undefined) =>
    NINE.map((e) => {
      const forZones = zoneFor(e);
      return forZones ? { ...e, forZones } : e;
    });

  test('every endpoint hinted: the endpoints hinted for this zone, below minClusterSize too', async () => {
    // The controller gave zone a one endpoint of zone b as well.
    const endpoints = hinted((e) => (e.address === B[0] ? ['a'] : [e.zone!]));
    const h = await harness({ zoneAware: { localZone: 'a', minClusterSize: 100 } }, endpoints);
    const tally = h.pickMany(400);
    assert.deepEqual(Object.keys(tally.counts).sort(), [...A, B[0]!].sort());
    assert.deepEqual(byZone(tally.counts), { a: 300, b: 100 });
  });

  test('one endpoint without a hint: hints ignored, zone shares as usual', async () => {
    const endpoints = hinted((e) =>
      e.address === C[2] ? undefined : e.address === B[0] ? ['a'] : [e.zone!],
    );
    const h = await harness({ zoneAware: { localZone: 'a' } }, endpoints);
    assert.deepEqual(byZone(h.pickMany(90).counts), { a: 90 });
  });

  test('kubernetesHints false: hints ignored', async () => {
    const endpoints = hinted((e) => (e.address === B[0] ? ['a'] : [e.zone!]));
    const h = await harness({ zoneAware: { localZone: 'a', kubernetesHints: false } }, endpoints);
    assert.deepEqual(byZone(h.pickMany(90).counts), { a: 90 });
  });

  test('the endpoints hinted for this zone all out of rotation: zone shares over the others', async () => {
    const endpoints = hinted((e) => [e.zone!]);
    const h = await harness({ zoneAware: { localZone: 'a' } }, endpoints);
    await h.fail('down', ...A);
    const tally = h.pickMany(60);
    assert.deepEqual(byZone(tally.counts), { b: 30, c: 30 });
    assert.deepEqual(tally.failed, []);
  });
});

describe('zone-aware routing inside traffic-split subsets', () => {
  const SAY = '/pkg.Svc/Say';
  // v1 in every zone (a1, b1, c1, a2, b2, c2); v2 only in zones b and c (b3, c3); a3 unlabelled.
  const endpoints: EndpointInput[] = NINE.map((e) => {
    const i = Number(e.address.split('.')[3]!.split(':')[0]);
    if (i === 3 && e.zone === 'a') return e;
    return { ...e, labels: { version: i === 3 ? 'v2' : 'v1' } };
  });
  const config = {
    subsets: [
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'v2', labels: { version: 'v2' } },
    ],
    routes: [
      {
        name: 'say',
        match: { method: SAY },
        split: [
          { subset: 'v1', weight: 50 },
          { subset: 'v2', weight: 50 },
        ],
      },
    ],
    zoneAware: { localZone: 'a', minClusterSize: 2 },
  };

  test('each subset routes over its own members’ zones; a subset with none local uses every zone', async () => {
    const h = await harness(config, endpoints, TRAFFIC_SPLIT_POLICY);
    const tally = h.pickMany(400, { method: SAY });
    assert.deepEqual(tally.failed, []);
    // v1: 200 calls, all to its zone-a members; v2: 200 calls over b3 and c3.
    assert.equal(tally.counts[A[0]!], 100);
    assert.equal(tally.counts[A[1]!], 100);
    assert.equal(tally.counts[B[2]!], 100);
    assert.equal(tally.counts[C[2]!], 100);
  });

  test('a subset’s local member failing spills within the subset', async () => {
    const h = await harness(config, endpoints, TRAFFIC_SPLIT_POLICY);
    await h.fail('down', A[0]!);
    // v1 in rotation: a2, b1, b2, c1, c2 (5) for clients like its members (2/2/2):
    // local (1/5)/(1/3) = 3/5; b and c 1/5 each.
    const tally = h.pickMany(1000, { method: SAY });
    const v1 = {
      a: tally.counts[A[1]!] ?? 0,
      b: (tally.counts[B[0]!] ?? 0) + (tally.counts[B[1]!] ?? 0),
      c: (tally.counts[C[0]!] ?? 0) + (tally.counts[C[1]!] ?? 0),
    };
    assert.deepEqual(v1, { a: 300, b: 100, c: 100 });
    assert.deepEqual(tally.failed, []);
  });

  test('calls of no route go round robin over the local zone', async () => {
    const h = await harness(config, endpoints, TRAFFIC_SPLIT_POLICY);
    const tally = h.pickMany(90, { method: '/pkg.Svc/Other' });
    assert.deepEqual(byZone(tally.counts), { a: 90 });
  });
});

describe('zone-aware routing with consistent hashing', () => {
  const HEADER = 'x-user-id';
  const KEYS = Array.from({ length: 60 }, (_, i) => `user-${i}`);

  /** Where each key's calls went (every call of a key must reach one endpoint). */
  function placeKeys(h: PolicyHarness, method?: string): Map<string, string> {
    const placed = new Map<string, string>();
    for (let round = 0; round < 3; round++) {
      for (const key of KEYS) {
        const call = h.call({ metadata: { [HEADER]: key }, ...(method ? { method } : {}) });
        assert.equal(call.kind, 'complete');
        if (call.kind !== 'complete') continue;
        call.end();
        const before = placed.get(key);
        if (before !== undefined) assert.equal(call.address, before, `${key} moved`);
        placed.set(key, call.address);
      }
    }
    return placed;
  }

  test('grpc-lb.consistent_hash: keys hash over the local zone only, each sticky; over every zone when the local one is down', async () => {
    const h = await harness(
      { hashHeader: HEADER, zoneAware: { localZone: 'a' } },
      NINE,
      CONSISTENT_HASH_POLICY,
    );
    const local = placeKeys(h);
    assert.deepEqual(new Set(local.values()), new Set(A), 'every local endpoint has keys');
    await h.fail('down', ...A);
    const spilled = placeKeys(h);
    assert.ok(
      [...spilled.values()].every((a) => !A.includes(a)),
      'no key on a down zone-a endpoint',
    );
    await h.ready(...A);
    assert.deepEqual(placeKeys(h), local, 'the keys come back to where they were');
    h.destroy();
  });

  test('a consistent_hash traffic-split subset: hashed over its local members', async () => {
    const SAY = '/pkg.Svc/Say';
    const endpoints = NINE.map((e) => ({ ...e, labels: { version: 'v1' } }));
    const config = {
      subsets: [
        {
          name: 'v1',
          labels: { version: 'v1' },
          policy: 'consistent_hash',
          consistentHash: { hashHeader: HEADER },
        },
      ],
      routes: [{ name: 'say', match: { method: SAY }, split: [{ subset: 'v1', weight: 1 }] }],
      zoneAware: { localZone: 'a' },
    };
    const h = await harness(config, endpoints, TRAFFIC_SPLIT_POLICY);
    const placed = placeKeys(h, SAY);
    assert.deepEqual(new Set(placed.values()), new Set(A));
    h.destroy();
  });
});
