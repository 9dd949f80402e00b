/**
 * Observer events as the balancer emits them: state first, then the event;
 * a listener that throws never changes what the balancer does and never
 * escapes into grpc-js.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LoadBalancerObserver } from '../observer';
import { ROUND_ROBIN_POLICY } from '../service-config';
import { PolicyHarness, Status } from './testing/fake-channel';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';

function throwingObserver(): LoadBalancerObserver {
  const observer = new LoadBalancerObserver();
  for (const event of ['eject', 'return', 'health', 'panic'] as const) {
    observer.on(event, () => {
      throw new Error(`${event} listener bug`);
    });
  }
  return observer;
}

describe('observer events from the balancer', () => {
  test('a throwing eject listener: the ejection still ends, nothing escapes, the logger hears once', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
    const observer = throwingObserver();
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: {
        outlierDetection: {
          interval: '10s',
          baseEjectionTime: '30s',
          consecutiveFailures: 1,
          maxEjectionPercent: 50,
        },
      },
      endpoints: [A, B],
      observer,
    });
    try {
      await h.ready();
      let failedOn: string | undefined;
      for (let i = 0; i < 2 && failedOn === undefined; i++) {
        const call = h.call();
        assert.equal(call.kind, 'complete');
        if (call.kind !== 'complete') return;
        failedOn = call.address;
        assert.doesNotThrow(() => call.end({ code: Status.UNAVAILABLE }));
      }
      assert.equal(observer.endpoint(failedOn!)?.ejected, true);
      const other = failedOn === A ? B : A;
      assert.deepEqual(h.pickMany(4).counts, { [other]: 4 });
      t.mock.timers.tick(30_000);
      await h.settle();
      assert.equal(observer.endpoint(failedOn!)?.ejected, false, 'back after the ejection time');
      assert.deepEqual(h.pickMany(4).counts, { [A]: 2, [B]: 2 });
      assert.deepEqual(
        h.warnings.filter((w) => /listener threw/.test(w)).map((w) => /"(\w+)"/.exec(w)?.[1]),
        ['eject', 'return'],
      );
    } finally {
      h.destroy();
    }
  });

  test('a throwing health or panic listener: health still applies and panic still switches', async () => {
    const observer = throwingObserver();
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { healthCheck: {}, panicThreshold: 50 },
      endpoints: [A, B],
      observer,
    });
    try {
      await h.ready();
      await h.setHealth(A, 'SERVING');
      await h.setHealth(B, 'SERVING');
      assert.deepEqual(h.pickMany(4).counts, { [A]: 2, [B]: 2 });
      await h.setHealth(B, 'NOT_SERVING');
      assert.deepEqual(h.pickMany(4).counts, { [A]: 4 });
      await h.setHealth(A, 'NOT_SERVING');
      // 0 of 2 healthy is below 50%: panic, every connected endpoint takes calls.
      assert.deepEqual(h.pickMany(4).counts, { [A]: 2, [B]: 2 });
      assert.deepEqual(
        h.warnings.filter((w) => /listener threw/.test(w)).map((w) => /"(\w+)"/.exec(w)?.[1]),
        ['health', 'panic'],
      );
    } finally {
      h.destroy();
    }
  });

  test('the eject event comes after the endpoint left rotation', async () => {
    const observer = new LoadBalancerObserver();
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { outlierDetection: { consecutiveFailures: 1, maxEjectionPercent: 50 } },
      endpoints: [A, B],
      observer,
    });
    try {
      await h.ready();
      const seen: string[] = [];
      observer.on('eject', (e) => {
        const picks = h.pickMany(4).counts;
        seen.push(`${e.address} ejected; picks ${JSON.stringify(picks)}`);
        assert.equal(picks[e.address], undefined);
      });
      const call = h.call();
      if (call.kind === 'complete') call.end({ code: Status.UNAVAILABLE });
      assert.equal(seen.length, 1);
      assert.deepEqual(h.warnings, []);
    } finally {
      h.destroy();
    }
  });
});
