/**
 * The panic threshold at 0 (off: gRPC's behaviour, NOT_SERVING is out) and
 * at 50 (Envoy's: below half healthy, every connected endpoint takes calls).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LoadBalancerObserver, type PanicEvent } from '../observer';
import { ROUND_ROBIN_POLICY } from '../service-config';
import { HEALTH_ANSWER_WAIT_MS } from './health-watcher';
import { PolicyHarness, type ServingStatusName } from './testing/fake-channel';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';
const C = '10.0.0.3:80';

interface Case {
  readonly name: string;
  readonly threshold: number;
  readonly health: Readonly<Record<string, ServingStatusName>>;
  readonly state: string;
  /** Where 6 picks go, or 'fail'. */
  readonly picks: Readonly<Record<string, number>> | 'fail';
  readonly panic: boolean;
}

const cases: readonly Case[] = [
  {
    name: 'one NOT_SERVING backend of one, threshold 0: out, calls fail',
    threshold: 0,
    health: { [A]: 'NOT_SERVING' },
    state: 'TRANSIENT_FAILURE',
    picks: 'fail',
    panic: false,
  },
  {
    name: 'one NOT_SERVING backend of one, threshold 50: panic, it still takes calls',
    threshold: 50,
    health: { [A]: 'NOT_SERVING' },
    state: 'READY',
    picks: { [A]: 6 },
    panic: true,
  },
  {
    name: '2 draining of 3, threshold 0: only the serving one',
    threshold: 0,
    health: { [A]: 'SERVING', [B]: 'NOT_SERVING', [C]: 'NOT_SERVING' },
    state: 'READY',
    picks: { [A]: 6 },
    panic: false,
  },
  {
    name: '2 draining of 3, threshold 50: panic, all three share',
    threshold: 50,
    health: { [A]: 'SERVING', [B]: 'NOT_SERVING', [C]: 'NOT_SERVING' },
    state: 'READY',
    picks: { [A]: 2, [B]: 2, [C]: 2 },
    panic: true,
  },
  {
    name: '1 draining of 3, threshold 50: no panic, the two serving share',
    threshold: 50,
    health: { [A]: 'SERVING', [B]: 'SERVING', [C]: 'NOT_SERVING' },
    state: 'READY',
    picks: { [A]: 3, [B]: 3 },
    panic: false,
  },
  {
    name: '1 draining of 2, threshold 50: exactly half healthy is not below the threshold',
    threshold: 50,
    health: { [A]: 'SERVING', [B]: 'NOT_SERVING' },
    state: 'READY',
    picks: { [A]: 6 },
    panic: false,
  },
];

describe('panic threshold', () => {
  for (const c of cases) {
    test(c.name, async () => {
      const observer = new LoadBalancerObserver();
      const events: PanicEvent[] = [];
      observer.on('panic', (e) => events.push(e));
      const endpoints = Object.keys(c.health);
      const h = PolicyHarness.create({
        policy: ROUND_ROBIN_POLICY,
        config: { healthCheck: {}, panicThreshold: c.threshold },
        endpoints,
        observer,
      });
      try {
        await h.ready();
        for (const [address, status] of Object.entries(c.health))
          await h.setHealth(address, status);
        assert.equal(h.stateName, c.state);
        const tally = h.pickMany(6);
        if (c.picks === 'fail') assert.equal(tally.failed.length, 6);
        else assert.deepEqual(tally.counts, c.picks);
        assert.equal(events.at(-1)?.active ?? false, c.panic);
        if (c.panic) assert.equal(events.at(-1)?.thresholdPercent, c.threshold);
      } finally {
        h.destroy();
      }
    });
  }

  test('leaving panic when endpoints serve again', async () => {
    const observer = new LoadBalancerObserver();
    const events: boolean[] = [];
    observer.on('panic', (e) => events.push(e.active));
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { healthCheck: {}, panicThreshold: 50 },
      endpoints: [A, B],
      observer,
    });
    try {
      await h.ready();
      await h.setHealth(A, 'NOT_SERVING');
      await h.setHealth(B, 'NOT_SERVING');
      assert.deepEqual(h.pickMany(4).counts, { [A]: 2, [B]: 2 });
      await h.setHealth(A, 'SERVING');
      assert.deepEqual(h.pickMany(4).counts, { [A]: 4 });
      assert.deepEqual(events, [true, false]);
    } finally {
      h.destroy();
    }
  });

  test('endpoints waiting for their first health answer count as healthy until the wait is over', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
    const observer = new LoadBalancerObserver();
    const events: boolean[] = [];
    observer.on('panic', (e) => events.push(e.active));
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { healthCheck: {}, panicThreshold: 50 },
      endpoints: [A, B],
      observer,
    });
    try {
      await h.ready();
      assert.equal(h.stateName, 'CONNECTING', 'no panic while the answers are awaited');
      assert.deepEqual(events, []);
      t.mock.timers.tick(HEALTH_ANSWER_WAIT_MS);
      await h.settle();
      assert.deepEqual(events, [true], 'no answer in time: not healthy, so panic');
      assert.deepEqual(h.pickMany(4).counts, { [A]: 2, [B]: 2 });
    } finally {
      h.destroy();
    }
  });
});
