import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LoadBalancerObserver } from '../../observer';
import { ROUND_ROBIN_POLICY } from '../../service-config';
import { WEIGHTED_ROUND_ROBIN_POLICY } from '../../weighted-round-robin-config';
import { PolicyHarness, Status, TimerTracker } from './fake-channel';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';
const C = '10.0.0.3:80';

describe('the fake channel kit', () => {
  test('a first update creates one fake subchannel per endpoint and pick_first starts connecting each', async () => {
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: [A, B] });
    await h.settle();
    assert.deepEqual([...h.helper.subchannels.keys()], [A, B]);
    for (const address of [A, B]) assert.equal(h.subchannel(address).startConnectingCalls, 1);
    assert.equal(h.stateName, 'CONNECTING');
    assert.equal(h.call().kind, 'queue');
    h.destroy();
  });

  test('READY subchannels take calls, counted per address', async () => {
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: [A, B, C] });
    await h.ready();
    assert.equal(h.stateName, 'READY');
    const tally = h.pickMany(30);
    assert.deepEqual(tally.counts, { [A]: 10, [B]: 10, [C]: 10 });
    assert.equal(tally.queued, 0);
    assert.deepEqual(tally.failed, []);
    h.destroy();
  });

  test('endpoint weights from the resolver reach the policy', async () => {
    const h = PolicyHarness.create({
      policy: WEIGHTED_ROUND_ROBIN_POLICY,
      endpoints: [
        { address: A, weight: 1 },
        { address: B, weight: 3, labels: { v: '2' } },
      ],
    });
    await h.ready();
    assert.deepEqual(h.pickMany(40).counts, { [A]: 10, [B]: 30 });
    h.destroy();
  });

  test('the health servers answer the watcher: silent until a status is set, then per service name', async () => {
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { healthCheck: { serviceName: 'svc' } },
      endpoints: [A],
    });
    await h.ready(A);
    const server = h.health.server(A);
    assert.deepEqual(
      server.openWatches().map((w) => w.service),
      ['svc'],
    );
    assert.equal(h.stateName, 'CONNECTING', 'no answer yet');
    await h.setHealth(A, 'SERVING');
    assert.equal(h.stateName, 'READY');
    h.destroy();
    assert.deepEqual(server.openWatches(), [], 'destroy cancels the watch');
  });

  test('a call ended with a latency reaches the endpoint counters; performance.now is restored', async () => {
    const observer = new LoadBalancerObserver();
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: [A], observer });
    await h.ready();
    const call = h.call();
    assert.equal(call.kind, 'complete');
    if (call.kind !== 'complete') return;
    assert.equal(observer.endpoint(A)?.outstanding, 1);
    call.end({ code: Status.UNAVAILABLE, latencyMs: 40 });
    assert.equal(Object.getOwnPropertyDescriptor(performance, 'now'), undefined);
    const snapshot = observer.endpoint(A)!;
    assert.equal(snapshot.outstanding, 0);
    assert.equal(snapshot.calls, 1);
    assert.equal(snapshot.failures, 1);
    assert.ok(Math.abs(snapshot.latencyEwmaMs - 40) < 1e-6, String(snapshot.latencyEwmaMs));
    h.pickMany(3, { latencyMs: 100 });
    assert.ok(Math.abs(observer.endpoint(A)!.latencyEwmaMs - 100) < 1e-6);
    h.destroy();
  });

  test('after destroy no subchannel is held or listened to and no timer of ours is pending', async () => {
    const timers = TimerTracker.install();
    try {
      const h = PolicyHarness.create({
        policy: ROUND_ROBIN_POLICY,
        config: {
          healthCheck: {},
          outlierDetection: { interval: '1s' },
          slowStart: { window: '10s' },
        },
        endpoints: [A, B],
      });
      await h.ready(A);
      await h.setHealth(A, 'SERVING');
      assert.ok(timers.pending().length > 0, 'the outlier interval and slow start timers run');
      assert.deepEqual(timers.refed(), [], 'every timer is unref()ed');
      h.destroy();
      assert.deepEqual(h.leakedSubchannels(), []);
      assert.deepEqual(
        timers.pending().map((t) => `${t.kind} ${t.caller}`),
        [],
      );
    } finally {
      timers.uninstall();
    }
  });
});
