/**
 * Active health checks as the channel sees them: which answers take an
 * endpoint out, how long a missing answer may hold calls, what a failed call
 * says, and config changes reaching endpoints already watched.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ROUND_ROBIN_POLICY } from '../service-config';
import { TRAFFIC_SPLIT_POLICY } from '../traffic-split-config';
import { createEndpointPolicy, type EndpointChild } from './endpoint-policy';
import { HEALTH_ANSWER_WAIT_MS } from './health-watcher';
import { RoundRobinPicker } from './pickers';
import { CS, PolicyHarness, type ServingStatusName } from './testing/fake-channel';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';
const C = '10.0.0.3:80';

const config = (serviceName: string, extra: Record<string, unknown> = {}) => ({
  healthCheck: { serviceName },
  panicThreshold: 0,
  ...extra,
});

function failedDetails(h: PolicyHarness): string {
  const outcome = h.call();
  assert.equal(outcome.kind, 'fail', `expected the pick to fail, got ${outcome.kind}`);
  return outcome.kind === 'fail' ? outcome.details : '';
}

describe('active health checks, as the channel sees them', () => {
  const notServing: ServingStatusName[] = ['NOT_SERVING', 'SERVICE_UNKNOWN', 'UNKNOWN'];
  for (const status of notServing) {
    test(`every endpoint answering ${status}: TRANSIENT_FAILURE at once, naming the health check`, async () => {
      const h = PolicyHarness.create({
        policy: ROUND_ROBIN_POLICY,
        config: config('x'),
        endpoints: [A, B],
      });
      try {
        await h.ready();
        await h.setHealth(A, status);
        await h.setHealth(B, status);
        assert.equal(h.stateName, 'TRANSIENT_FAILURE');
        const expected = `grpc-lb: no endpoint of test:///svc can take calls: 2 of 2 connected endpoints failed their health check (service "x": ${status})`;
        assert.equal(h.error, expected);
        assert.equal(failedDetails(h), expected);
      } finally {
        h.destroy();
      }
    });
  }

  test('different answers are each named once', async () => {
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: config('x'),
      endpoints: [A, B, C],
    });
    try {
      await h.ready();
      await h.setHealth(A, 'NOT_SERVING');
      await h.setHealth(B, 'SERVICE_UNKNOWN');
      await h.setHealth(C, 'NOT_SERVING');
      assert.equal(
        failedDetails(h),
        'grpc-lb: no endpoint of test:///svc can take calls: 3 of 3 connected endpoints failed their health check (service "x": NOT_SERVING, SERVICE_UNKNOWN)',
      );
    } finally {
      h.destroy();
    }
  });

  test('no answer: calls wait a bounded time, then fail saying the health check did not answer', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: config('x'),
      endpoints: [A, B],
    });
    try {
      await h.ready();
      assert.equal(h.stateName, 'CONNECTING');
      assert.equal(h.call().kind, 'queue');
      t.mock.timers.tick(HEALTH_ANSWER_WAIT_MS);
      await h.settle();
      assert.equal(h.stateName, 'TRANSIENT_FAILURE');
      assert.equal(
        failedDetails(h),
        `grpc-lb: no endpoint of test:///svc can take calls: 2 of 2 connected endpoints failed their health check (service "x": no answer within ${HEALTH_ANSWER_WAIT_MS / 1000} s)`,
      );
      await h.setHealth(B, 'SERVING');
      assert.equal(h.stateName, 'READY');
      assert.deepEqual(h.pickMany(3).counts, { [B]: 3 });
    } finally {
      h.destroy();
    }
  });

  test('UNIMPLEMENTED (no health service) stays healthy', async () => {
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: config('x'),
      endpoints: [A],
    });
    try {
      h.health.server(A).mode = 'unimplemented';
      await h.ready();
      assert.equal(h.stateName, 'READY');
    } finally {
      h.destroy();
    }
  });
});

describe('an endpoint connected with its first health answer pending', () => {
  test('is CONNECTING to the policy, not TRANSIENT_FAILURE', async () => {
    let seen: Record<string, string> = {};
    const capture = (rt: Parameters<typeof createEndpointPolicy>[0]) =>
      createEndpointPolicy(rt, {
        name: 'test.capture',
        parse: () => ({}),
        makePicker: ({ children, ready, memo }) => {
          seen = Object.fromEntries(children.map((c: EndpointChild) => [c.key, CS[c.state]]));
          return new RoundRobinPicker(ready, memo, 'all');
        },
      });
    const h = PolicyHarness.create({ policy: capture, config: config('x'), endpoints: [A, B, C] });
    try {
      await h.ready(A, B);
      await h.setHealth(A, 'SERVING');
      h.pickMany(1);
      assert.deepEqual(seen, { [A]: 'READY', [B]: 'CONNECTING', [C]: 'CONNECTING' });
      await h.setHealth(B, 'NOT_SERVING');
      h.pickMany(1);
      assert.equal(seen[B], 'TRANSIENT_FAILURE');
    } finally {
      h.destroy();
    }
  });

  test('in a traffic split, a subset made only of such endpoints is waiting, not empty', async () => {
    const h = PolicyHarness.create({
      policy: TRAFFIC_SPLIT_POLICY,
      config: {
        ...config('x'),
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          { name: 'v2', labels: { version: 'v2' } },
        ],
        routes: [
          {
            name: 'all',
            split: [
              { subset: 'v1', weight: 50 },
              { subset: 'v2', weight: 50 },
            ],
          },
        ],
        onEmptySubset: 'fail',
      },
      endpoints: [
        { address: A, labels: { version: 'v1' } },
        { address: B, labels: { version: 'v2' } },
      ],
    });
    try {
      await h.ready();
      await h.setHealth(A, 'SERVING');
      const tally = h.pickMany(10, { method: '/svc.S/M' });
      assert.deepEqual(tally.failed, [], 'no call fails while v2 awaits its first answer');
    } finally {
      h.destroy();
    }
  });
});

describe('health-check config changes reach endpoints already watched', () => {
  test('a new serviceName: the watch is reopened for it on the same connection', async () => {
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: config('a'),
      endpoints: [A, B],
    });
    try {
      await h.ready();
      await h.setHealth(A, 'SERVING', 'a');
      await h.setHealth(B, 'SERVING', 'a');
      await h.setHealth(A, 'NOT_SERVING', 'b');
      await h.setHealth(B, 'SERVING', 'b');
      const created = h.helper.created.length;
      const connects = [A, B].map((a) => h.subchannel(a).startConnectingCalls);
      h.update({ config: config('b') });
      await h.settle();
      assert.deepEqual(
        h.health
          .server(A)
          .openWatches()
          .map((w) => w.service),
        ['b'],
      );
      assert.deepEqual(h.pickMany(4).counts, { [B]: 4 });
      assert.equal(h.helper.created.length, created, 'no new subchannel');
      assert.deepEqual(
        [A, B].map((a) => h.subchannel(a).startConnectingCalls),
        connects,
        'no reconnect',
      );
    } finally {
      h.destroy();
    }
  });

  test('a new checkInterval applies to endpoints polled with Check', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { healthCheck: { serviceName: 'a', checkInterval: '60s' }, panicThreshold: 0 },
      endpoints: [A],
    });
    try {
      const server = h.health.server(A);
      server.watchUnimplemented = true;
      server.setStatus('SERVING');
      await h.ready();
      assert.equal(server.checks.length, 1);
      h.update({
        config: { healthCheck: { serviceName: 'a', checkInterval: '1s' }, panicThreshold: 0 },
      });
      await h.settle();
      for (let i = 0; i < 3; i++) {
        t.mock.timers.tick(1_000);
        await h.settle();
      }
      assert.ok(server.checks.length >= 4, `${server.checks.length} checks`);
      assert.equal(h.stateName, 'READY');
    } finally {
      h.destroy();
    }
  });

  test('health checks switched off, then on again', async () => {
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: config('a'),
      endpoints: [A, B],
    });
    try {
      await h.ready();
      await h.setHealth(A, 'SERVING');
      await h.setHealth(B, 'NOT_SERVING');
      assert.deepEqual(h.pickMany(2).counts, { [A]: 2 });
      h.update({ config: { panicThreshold: 0 } });
      await h.settle();
      assert.deepEqual(h.health.server(B).openWatches(), [], 'watches cancelled');
      assert.deepEqual(h.pickMany(2).counts, { [A]: 1, [B]: 1 });
      h.update({ config: config('a') });
      await h.settle();
      assert.deepEqual(
        h.health
          .server(B)
          .openWatches()
          .map((w) => w.service),
        ['a'],
      );
      assert.deepEqual(h.pickMany(2).counts, { [A]: 2 });
      assert.equal(h.helper.created.length, 2, 'never a new subchannel');
    } finally {
      h.destroy();
    }
  });
});
