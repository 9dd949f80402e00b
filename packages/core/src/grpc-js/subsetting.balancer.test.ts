/**
 * The `subsetting` option through the real balancer (fake subchannels): only
 * the subset's endpoints get a subchannel, churn moves at most one of them,
 * a new subset size applies mid-flight, a failing member is not replaced,
 * and every policy picks among the members only.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { LEAST_REQUEST_POLICY } from '../least-request-config';
import { ROUND_ROBIN_POLICY } from '../service-config';
import { deterministicSubset } from '../subsetting';
import { TRAFFIC_SPLIT_POLICY } from '../traffic-split-config';
import { WEIGHTED_ROUND_ROBIN_POLICY } from '../weighted-round-robin-config';
import { CS, PolicyHarness, type EndpointInput } from './testing/fake-channel';

const addresses = (n: number, from = 1): string[] =>
  Array.from({ length: n }, (_, i) => `10.0.${(i + from) >> 8}.${(i + from) & 255}:50051`);

const ALL = addresses(30);

/** Addresses with a live subchannel (something holds it: pick_first refs what it uses). */
function connectedTo(h: PolicyHarness): string[] {
  return [...h.helper.subchannels.values()]
    .filter((s) => s.refs !== 0 || s.listenerCount !== 0)
    .map((s) => s.address)
    .sort();
}

/** Every subchannel in use that is not READY yet connects. */
async function connectNew(h: PolicyHarness): Promise<void> {
  const fresh = [...h.helper.subchannels.values()]
    .filter((s) => (s.refs !== 0 || s.listenerCount !== 0) && s.getConnectivityState() !== CS.READY)
    .map((s) => s.address);
  if (fresh.length > 0) await h.ready(...fresh);
  else await h.settle();
}

async function subsetOf(
  size: number,
  endpoints: readonly (string | EndpointInput)[] = ALL,
  policy = ROUND_ROBIN_POLICY,
  extra: Record<string, unknown> = {},
): Promise<PolicyHarness> {
  const h = PolicyHarness.create({
    policy,
    config: { subsetting: { subsetSize: size }, ...extra },
    endpoints,
  });
  await h.ready();
  assert.equal(h.stateName, 'READY');
  return h;
}

describe('subsetting: which endpoints get a subchannel', () => {
  test('only the subsetSize members get one; calls go to them only, evenly', async () => {
    const h = await subsetOf(5);
    try {
      assert.equal(new Set(h.helper.created).size, 5);
      const members = connectedTo(h);
      assert.equal(members.length, 5);
      const tally = h.pickMany(50);
      assert.deepEqual(Object.keys(tally.counts).sort(), members);
      assert.ok(Object.values(tally.counts).every((n) => n === 10));
    } finally {
      h.destroy();
    }
  });

  test('fewer endpoints than subsetSize: every endpoint', async () => {
    const h = await subsetOf(10, ALL.slice(0, 4));
    try {
      assert.deepEqual(connectedTo(h), ALL.slice(0, 4).sort());
    } finally {
      h.destroy();
    }
  });

  test('two channels (two seeds) choose different subsets of the same list', async () => {
    const subsets = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const h = await subsetOf(3);
      subsets.add(connectedTo(h).join());
      h.destroy();
    }
    assert.ok(subsets.size > 1, 'every channel chose the same subset');
  });

  test('destroy leaves no subchannel held', async () => {
    const h = await subsetOf(5);
    h.destroy();
    assert.deepEqual(h.leakedSubchannels(), []);
  });
});

describe('subsetting under churn (random: at most one member moves per change)', () => {
  test('a sequence of single adds and removes: each moves at most one member, and the subset stays full', async () => {
    let list = [...ALL];
    const h = await subsetOf(5, list);
    try {
      let members = connectedTo(h);
      const extra = addresses(20, 100);
      // Remove members and non-members, add new endpoints, re-add removed ones.
      const steps: ({ add: string } | { remove: 'member' | 'other' })[] = [
        { remove: 'member' },
        { add: extra[0]! },
        { remove: 'other' },
        { add: extra[1]! },
        { remove: 'member' },
        { add: extra[2]! },
        { add: extra[3]! },
        { remove: 'member' },
        { remove: 'other' },
        { add: extra[4]! },
      ];
      for (const step of steps) {
        if ('add' in step) {
          list = [...list, step.add];
        } else {
          const pool =
            step.remove === 'member' ? members : list.filter((a) => !members.includes(a)).sort();
          list = list.filter((a) => a !== pool[0]);
        }
        const before = h.helper.created.length;
        h.update({ endpoints: list });
        await connectNew(h);
        const now = connectedTo(h);
        const left = members.filter((a) => !now.includes(a));
        const joined = now.filter((a) => !members.includes(a));
        const label = JSON.stringify(step);
        assert.equal(now.length, 5, label);
        assert.ok(left.length <= 1 && joined.length <= 1, `${label}: left ${left.join()}`);
        assert.deepEqual(
          [...new Set(h.helper.created.slice(before))].sort(),
          joined,
          `${label}: subchannels asked for`,
        );
        if ('remove' in step) {
          assert.equal(left.length, step.remove === 'member' ? 1 : 0, label);
        }
        assert.deepEqual(Object.keys(h.pickMany(10).counts).sort(), now, label);
        members = now;
      }
    } finally {
      h.destroy();
    }
  });

  test('a member that fails is not replaced: the others take its calls', async () => {
    const h = await subsetOf(3);
    try {
      const [down, ...up] = connectedTo(h) as [string, ...string[]];
      await h.setState('TRANSIENT_FAILURE', [down], 'connection refused');
      assert.equal(h.helper.subchannels.size, 3, 'no subchannel for another endpoint');
      assert.equal(connectedTo(h).length, 3);
      const tally = h.pickMany(20);
      assert.deepEqual(tally.failed, []);
      assert.deepEqual(Object.keys(tally.counts).sort(), up);
    } finally {
      h.destroy();
    }
  });
});

describe('subsetting: config changes mid-flight', () => {
  test('subsetSize 3 → 6 adds 3 members and keeps the first 3 connected (same seed)', async () => {
    const h = await subsetOf(3);
    try {
      const before = connectedTo(h);
      const created = h.helper.subchannels.size;
      h.update({ config: { subsetting: { subsetSize: 6 } } });
      await connectNew(h);
      const after = connectedTo(h);
      assert.equal(after.length, 6);
      assert.ok(
        before.every((a) => after.includes(a)),
        'the first members stay',
      );
      assert.equal(h.helper.subchannels.size - created, 3);
      assert.deepEqual(Object.keys(h.pickMany(60).counts).sort(), after);
    } finally {
      h.destroy();
    }
  });

  test('subsetSize 6 → 2 (removalHoldDownMs 0): 4 members leave at once, 2 of the 6 stay', async () => {
    const h = await subsetOf(6, ALL, ROUND_ROBIN_POLICY, { removalHoldDownMs: 0 });
    try {
      const before = connectedTo(h);
      h.update({ config: { subsetting: { subsetSize: 2 }, removalHoldDownMs: 0 } });
      await h.settle();
      const after = connectedTo(h);
      assert.equal(after.length, 2);
      assert.ok(after.every((a) => before.includes(a)));
      assert.deepEqual(Object.keys(h.pickMany(10).counts).sort(), after);
    } finally {
      h.destroy();
    }
  });

  test('subsetSize 6 → 2 with the default hold-down: a mass removal, held (calls keep flowing)', async () => {
    const h = await subsetOf(6);
    try {
      h.update({ config: { subsetting: { subsetSize: 2 } } });
      await h.settle();
      assert.ok(
        h.warnings.some((w) => /removed 4 of 6 connected endpoints at once/.test(w)),
        h.warnings.join('\n'),
      );
      assert.equal(h.stateName, 'READY');
      assert.deepEqual(h.pickMany(12).failed, []);
    } finally {
      h.destroy();
    }
  });

  test('subsetting removed: every endpoint gets a subchannel; added again: back to a subset', async () => {
    const h = await subsetOf(4, ALL, ROUND_ROBIN_POLICY, { removalHoldDownMs: 0 });
    try {
      h.update({ config: { removalHoldDownMs: 0 } });
      await connectNew(h);
      assert.equal(connectedTo(h).length, 30);
      h.update({ config: { subsetting: { subsetSize: 4 }, removalHoldDownMs: 0 } });
      await h.settle();
      assert.equal(connectedTo(h).length, 4);
      assert.equal(h.helper.subchannels.size, 30, 'no new subchannel');
    } finally {
      h.destroy();
    }
  });
});

describe('subsetting: deterministic mode', () => {
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env['GRPC_LB_CLIENT_ID'];
  });
  afterEach(() => {
    if (saved === undefined) delete process.env['GRPC_LB_CLIENT_ID'];
    else process.env['GRPC_LB_CLIENT_ID'] = saved;
  });

  test('clientId in the config: the SRE book slice of its round', async () => {
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { subsetting: { subsetSize: 5, mode: 'deterministic', clientId: 8 } },
      endpoints: ALL,
    });
    try {
      await h.ready();
      assert.deepEqual(connectedTo(h), deterministicSubset(ALL, 5, 8).sort());
      assert.deepEqual(h.warnings, []);
    } finally {
      h.destroy();
    }
  });

  test('GRPC_LB_CLIENT_ID when the config has no clientId', async () => {
    process.env['GRPC_LB_CLIENT_ID'] = '3';
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { subsetting: { subsetSize: 5, mode: 'deterministic' } },
      endpoints: ALL,
    });
    try {
      await h.ready();
      assert.deepEqual(connectedTo(h), deterministicSubset(ALL, 5, 3).sort());
    } finally {
      h.destroy();
    }
  });

  test('no usable client id: one warning naming the problem, then a random subset of the size', async () => {
    process.env['GRPC_LB_CLIENT_ID'] = 'pod-a';
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { subsetting: { subsetSize: 5, mode: 'deterministic' } },
      endpoints: ALL,
    });
    try {
      await h.ready();
      h.update({ endpoints: ALL.slice(1) });
      await connectNew(h);
      assert.equal(connectedTo(h).length, 5);
      assert.equal(h.warnings.length, 1, h.warnings.join('\n'));
      assert.match(
        h.warnings[0]!,
        /test:\/\/\/svc: deterministic subsetting needs a client id: GRPC_LB_CLIENT_ID is "pod-a", not an integer.*subsetting at random instead/,
      );
    } finally {
      h.destroy();
    }
  });
});

describe('subsetting composes with every policy', () => {
  const labelled: EndpointInput[] = ALL.slice(0, 12).map((address, i) => ({
    address,
    weight: i % 2 === 0 ? 3 : 1,
    labels: { version: i % 2 === 0 ? 'v1' : 'v2' },
  }));

  const cases: [string, Record<string, unknown>][] = [
    [ROUND_ROBIN_POLICY, {}],
    [WEIGHTED_ROUND_ROBIN_POLICY, {}],
    [LEAST_REQUEST_POLICY, {}],
    [
      TRAFFIC_SPLIT_POLICY,
      {
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          { name: 'v2', labels: { version: 'v2' } },
        ],
        routes: [
          {
            split: [
              { subset: 'v1', weight: 50 },
              { subset: 'v2', weight: 50 },
            ],
          },
        ],
        onEmptySubset: 'redistribute',
      },
    ],
  ];
  for (const [policy, own] of cases) {
    test(`${policy}: 4 of 12 endpoints connected, every call on one of them`, async () => {
      const h = await subsetOf(4, labelled, policy, own);
      try {
        const members = connectedTo(h);
        assert.equal(members.length, 4);
        const tally = h.pickMany(400, { method: '/helloworld.Greeter/SayHello' });
        assert.deepEqual(tally.failed, []);
        assert.ok(
          Object.keys(tally.counts).every((a) => members.includes(a)),
          `picked ${Object.keys(tally.counts).join()} outside ${members.join()}`,
        );
        if (policy === ROUND_ROBIN_POLICY)
          assert.deepEqual(Object.keys(tally.counts).sort(), members);
        if (policy === WEIGHTED_ROUND_ROBIN_POLICY) {
          const weightOf = (a: string) => labelled.find((e) => e.address === a)!.weight!;
          const total = members.reduce((sum, a) => sum + weightOf(a), 0);
          const counts = h.pickMany(total * 10).counts;
          for (const a of members) assert.equal(counts[a], weightOf(a) * 10, `${a} share`);
        }
      } finally {
        h.destroy();
      }
    });
  }
});
