/**
 * `grpc-lb.traffic_split` through the real balancer (fake subchannels and
 * health servers): a subset that is connecting, or connected with its first
 * health answer pending, never stalls the route, and the shares are exact
 * again from the moment it can take calls.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TRAFFIC_SPLIT_POLICY } from '../traffic-split-config';
import { PolicyHarness, type PickTally } from './testing/fake-channel';

const METHOD = '/helloworld.Greeter/SayHello';
const V1A = '10.0.1.1:50051';
const V1B = '10.0.1.2:50051';
const V3 = '10.0.3.1:50051';
const V1 = [V1A, V1B];

type Mode = 'redistribute' | 'fail';

function splitConfig(mode: Mode, extra: Record<string, unknown> = {}) {
  return {
    subsets: [
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'v3', labels: { version: 'v3' } },
    ],
    routes: [
      {
        name: 'hello',
        match: { method: METHOD },
        split: [
          { subset: 'v1', weight: 90 },
          { subset: 'v3', weight: 10 },
        ],
      },
    ],
    onEmptySubset: mode,
    panicThreshold: 0,
    ...extra,
  };
}

function harness(mode: Mode, extra: Record<string, unknown> = {}): PolicyHarness {
  return PolicyHarness.create({
    policy: TRAFFIC_SPLIT_POLICY,
    config: splitConfig(mode, extra),
    endpoints: [
      { address: V1A, labels: { version: 'v1' } },
      { address: V1B, labels: { version: 'v1' } },
      { address: V3, labels: { version: 'v3' } },
    ],
  });
}

/** Every 10 consecutive completed calls (not only aligned windows) hold exactly 9 on v1 and 1 on v3. */
function assertNineToOne(tally: PickTally): void {
  assert.equal(tally.queued, 0);
  assert.deepEqual(tally.failed, []);
  const subsets = tally.order.map((address) => (address === V3 ? 'v3' : 'v1'));
  for (let start = 0; start + 10 <= subsets.length; start++) {
    const window = subsets.slice(start, start + 10);
    assert.deepEqual(
      { v1: window.filter((s) => s === 'v1').length, v3: window.filter((s) => s === 'v3').length },
      { v1: 9, v3: 1 },
      `calls ${start}-${start + 9}: ${window.join(' ')}`,
    );
  }
}

describe('traffic_split through the balancer: v1 90% (2 READY) / v3 10% (1 endpoint)', () => {
  test('v3 CONNECTING (redistribute): 100 calls all complete on v1, none queued; v3 READY: exactly 9:1 in every 10 calls', async () => {
    const h = harness('redistribute');
    try {
      await h.ready(...V1);
      await h.setState('CONNECTING', [V3]);
      assert.equal(h.stateName, 'READY');
      const during = h.pickMany(100, { method: METHOD });
      assert.deepEqual(during.counts, { [V1A]: 50, [V1B]: 50 });
      assert.equal(during.queued, 0);
      assert.deepEqual(during.failed, []);

      await h.setState('READY', [V3]);
      assertNineToOne(h.pickMany(200, { method: METHOD }));
    } finally {
      h.destroy();
    }
  });

  test('v3 CONNECTING (fail): only v3 share queues, v1 takes its 90, none fails; v3 READY: exactly 9:1', async () => {
    const h = harness('fail');
    try {
      await h.ready(...V1);
      await h.setState('CONNECTING', [V3]);
      const during = h.pickMany(100, { method: METHOD });
      assert.deepEqual(during.counts, { [V1A]: 45, [V1B]: 45 });
      assert.equal(during.queued, 10);
      assert.deepEqual(during.failed, []);

      await h.setState('READY', [V3]);
      assertNineToOne(h.pickMany(200, { method: METHOD }));
    } finally {
      h.destroy();
    }
  });

  for (const mode of ['redistribute', 'fail'] as const) {
    test(`(${mode}) v3 connected, its first health answer pending: waiting, not empty; SERVING: exactly 9:1`, async () => {
      const h = harness(mode, { healthCheck: { serviceName: 'hello' } });
      try {
        await h.ready();
        await h.setHealth(V1A, 'SERVING');
        await h.setHealth(V1B, 'SERVING');
        assert.equal(h.stateName, 'READY');
        const during = h.pickMany(100, { method: METHOD });
        assert.deepEqual(during.failed, [], 'no call fails while v3 awaits its first answer');
        if (mode === 'redistribute') {
          assert.deepEqual(during.counts, { [V1A]: 50, [V1B]: 50 });
          assert.equal(during.queued, 0);
        } else {
          assert.deepEqual(during.counts, { [V1A]: 45, [V1B]: 45 });
          assert.equal(during.queued, 10);
        }

        await h.setHealth(V3, 'SERVING');
        assertNineToOne(h.pickMany(200, { method: METHOD }));
      } finally {
        h.destroy();
      }
    });
  }

  test('(fail) v3 answering NOT_SERVING is empty: its share fails fast naming the subset, v1 keeps its 90', async () => {
    const h = harness('fail', { healthCheck: { serviceName: 'hello' } });
    try {
      await h.ready();
      await h.setHealth(V1A, 'SERVING');
      await h.setHealth(V1B, 'SERVING');
      await h.setHealth(V3, 'NOT_SERVING');
      const tally = h.pickMany(100, { method: METHOD });
      assert.deepEqual(tally.counts, { [V1A]: 45, [V1B]: 45 });
      assert.equal(tally.queued, 0);
      assert.equal(tally.failed.length, 10);
      assert.match(tally.failed[0]!, /subset "v3"/);
    } finally {
      h.destroy();
    }
  });
});
