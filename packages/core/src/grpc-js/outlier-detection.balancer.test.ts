/**
 * Passive outlier detection through the real balancer (fake subchannels,
 * mocked timers): what a config change does to ejections.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LoadBalancerObserver } from '../observer';
import { ROUND_ROBIN_POLICY } from '../service-config';
import { PolicyHarness, Status } from './testing/fake-channel';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';
const START = 1_000_000;

const OUTLIER = {
  outlierDetection: {
    interval: '10s',
    baseEjectionTime: '30s',
    consecutiveFailures: 1,
    maxEjectionPercent: 50,
  },
};

/** Fails one call on each endpoint in turn until one is ejected; returns its address. */
function ejectOne(h: PolicyHarness): string {
  for (let i = 0; i < 2; i++) {
    const call = h.call();
    if (call.kind !== 'complete') return assert.fail(`pick ${i}: ${call.kind}`);
    call.end({ code: Status.UNAVAILABLE });
    if (h.pickMany(4).counts[call.address] === undefined) return call.address;
  }
  return assert.fail('no endpoint was ejected');
}

describe('outlier detection removed from the config', () => {
  test('ejected endpoints return and their times-ejected multiplier resets to 0 (A50)', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: START });
    const observer = new LoadBalancerObserver();
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: OUTLIER,
      endpoints: [A, B],
      observer,
    });
    try {
      await h.ready();
      const ejected = ejectOne(h);
      assert.equal(observer.endpoint(ejected)?.timesEjected, 1);

      h.update({ config: {} });
      await h.settle();
      assert.equal(observer.endpoint(ejected)?.ejected, false, 'returned');
      assert.equal(observer.endpoint(ejected)?.timesEjected, 0, 'multiplier reset');
      assert.deepEqual(h.pickMany(4).counts, { [A]: 2, [B]: 2 });

      // Back on: the next ejection is a first one, for the base time (30 s), not twice it.
      const events: { address: string; until: number; times: number }[] = [];
      observer.on('eject', (e) =>
        events.push({ address: e.address, until: e.ejectedUntil, times: e.timesEjected }),
      );
      h.update({ config: OUTLIER });
      await h.settle();
      const again = ejectOne(h);
      assert.deepEqual(events, [{ address: again, until: Date.now() + 30_000, times: 1 }]);
    } finally {
      h.destroy();
    }
  });

  test('an endpoint that came back by its timer, not yet forgiven by an interval, also starts again from 0', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: START });
    const observer = new LoadBalancerObserver();
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { outlierDetection: { ...OUTLIER.outlierDetection, interval: '300s' } },
      endpoints: [A, B],
      observer,
    });
    try {
      await h.ready();
      const ejected = ejectOne(h);
      t.mock.timers.tick(30_000);
      await h.settle();
      assert.equal(observer.endpoint(ejected)?.ejected, false);
      assert.equal(observer.endpoint(ejected)?.timesEjected, 1, 'no interval has passed yet');

      h.update({ config: {} });
      await h.settle();
      assert.equal(observer.endpoint(ejected)?.timesEjected, 0);
    } finally {
      h.destroy();
    }
  });
});
