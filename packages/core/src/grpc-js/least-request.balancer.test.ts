/**
 * `grpc-lb.least_request` through the real balancer (fake subchannels): the
 * latency of each call is measured by the balancer's own call tracking
 * (onCallStarted / onCallEnded), on a clock the test moves by hand.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LEAST_REQUEST_POLICY } from '../least-request-config';
import { stubClock } from './testing/clock';
import { PolicyHarness } from './testing/fake-channel';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';

describe('least_request through the balancer: two equal endpoints, one slow call', () => {
  test('the endpoint that served it is avoided at once, and gets calls again after 30 s', async (t) => {
    const clock = stubClock(t);
    const h = PolicyHarness.create({ policy: LEAST_REQUEST_POLICY, endpoints: [A, B] });
    try {
      await h.ready();
      assert.equal(h.stateName, 'READY');

      const first = h.call();
      assert.equal(first.kind, 'complete');
      if (first.kind !== 'complete') return;
      const slow = first.address;
      const fast = slow === A ? B : A;
      first.end({ latencyMs: 1_000 });
      clock.now += 1_000;

      // Avoided at once: one call a second, each answered in 1 ms, for just under 30 s.
      const avoided: Record<string, number> = {};
      for (let s = 0; s < 29; s++) {
        const { counts } = h.pickMany(1, { latencyMs: 1 });
        for (const [address, n] of Object.entries(counts))
          avoided[address] = (avoided[address] ?? 0) + n;
        clock.now += 1_000;
      }
      assert.deepEqual(avoided, { [fast]: 29 });

      // 30 s after its slow answer the estimate is forgotten: the next call probes it.
      clock.now += 1_000;
      assert.deepEqual(h.pickMany(1, { latencyMs: 1 }).counts, { [slow]: 1 });

      // Both now answer in 1 ms: they share the calls (ties broken at random).
      const after = h.pickMany(200, { latencyMs: 1 });
      assert.ok(
        (after.counts[slow] ?? 0) >= 50 && (after.counts[fast] ?? 0) >= 50,
        `shares after the probe: ${JSON.stringify(after.counts)}`,
      );
    } finally {
      h.destroy();
    }
  });

  test('with no calls at all in between, it is back after 30 s idle', async (t) => {
    const clock = stubClock(t);
    const h = PolicyHarness.create({ policy: LEAST_REQUEST_POLICY, endpoints: [A, B] });
    try {
      await h.ready();
      const first = h.call();
      if (first.kind !== 'complete') return assert.fail(`first pick: ${first.kind}`);
      const slow = first.address;
      first.end({ latencyMs: 1_000 });
      clock.now += 1_000;
      assert.equal(h.pickMany(100, { latencyMs: 1 }).counts[slow], undefined);

      clock.now += 30_000;
      const after = h.pickMany(200, { latencyMs: 1 });
      assert.ok(
        (after.counts[slow] ?? 0) >= 50,
        `shares after 30 s idle: ${JSON.stringify(after.counts)}`,
      );
    } finally {
      h.destroy();
    }
  });
});
