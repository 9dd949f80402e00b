/**
 * State-level tests of what every grpc-lb policy shares (the endpoint
 * policy base), driven through round robin and weighted round robin with
 * fake subchannels and fake health servers.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ROUND_ROBIN_POLICY } from '../service-config';
import { WEIGHTED_ROUND_ROBIN_POLICY } from '../weighted-round-robin-config';
import {
  PolicyHarness,
  Status,
  TimerTracker,
  type ServingStatusName,
  type StateName,
} from './testing/fake-channel';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';
const C = '10.0.0.3:80';

const POLICIES = [ROUND_ROBIN_POLICY, WEIGHTED_ROUND_ROBIN_POLICY];

/** One step of a scenario: connectivity of some endpoints, or a health answer. */
type Step =
  | readonly [StateName, ...string[]]
  | readonly ['health', string, ServingStatusName]
  | readonly ['fail', string, ...string[]];

async function run(h: PolicyHarness, steps: readonly Step[]): Promise<void> {
  for (const step of steps) {
    if (step[0] === 'health') {
      await h.setHealth(step[1], step[2]);
    } else if (step[0] === 'fail') {
      const [, error, ...addresses] = step;
      await h.fail(error, ...addresses);
    } else {
      const [state, ...addresses] = step;
      await h.setState(state, addresses);
    }
  }
}

interface Expected {
  readonly state: StateName;
  /** Where 12 picks go (completed calls per address); `queue` or `fail` when no pick completes. */
  readonly picks: Readonly<Record<string, number>> | 'queue' | 'fail';
}

interface Scenario {
  readonly name: string;
  readonly config?: Record<string, unknown>;
  readonly endpoints: readonly string[];
  readonly steps: readonly Step[];
  readonly expected: Expected;
}

const HEALTH = { healthCheck: { serviceName: 'svc' }, panicThreshold: 0 };

const scenarios: readonly Scenario[] = [
  {
    name: 'before any connection: CONNECTING, calls queue',
    endpoints: [A, B],
    steps: [],
    expected: { state: 'CONNECTING', picks: 'queue' },
  },
  {
    name: 'all READY: READY, calls spread evenly',
    endpoints: [A, B, C],
    steps: [
      ['CONNECTING', A, B, C],
      ['READY', A, B, C],
    ],
    expected: { state: 'READY', picks: { [A]: 4, [B]: 4, [C]: 4 } },
  },
  {
    name: 'one READY, one CONNECTING: READY, calls to the READY one',
    endpoints: [A, B],
    steps: [
      ['CONNECTING', A, B],
      ['READY', A],
    ],
    expected: { state: 'READY', picks: { [A]: 12 } },
  },
  {
    name: 'one READY, one TRANSIENT_FAILURE: READY, calls to the READY one',
    endpoints: [A, B],
    steps: [
      ['CONNECTING', A, B],
      ['READY', A],
      ['fail', 'connection refused', B],
    ],
    expected: { state: 'READY', picks: { [A]: 12 } },
  },
  {
    name: 'one CONNECTING, one TRANSIENT_FAILURE: CONNECTING, calls queue',
    endpoints: [A, B],
    steps: [
      ['CONNECTING', A, B],
      ['fail', 'connection refused', B],
    ],
    expected: { state: 'CONNECTING', picks: 'queue' },
  },
  {
    name: 'all TRANSIENT_FAILURE: TRANSIENT_FAILURE, calls fail',
    endpoints: [A, B],
    steps: [['fail', 'connection refused', A, B]],
    expected: { state: 'TRANSIENT_FAILURE', picks: 'fail' },
  },
  {
    name: 'a READY endpoint drops: out of rotation',
    endpoints: [A, B],
    steps: [
      ['CONNECTING', A, B],
      ['READY', A, B],
      ['IDLE', B],
    ],
    expected: { state: 'READY', picks: { [A]: 12 } },
  },
  {
    name: 'health checked, connected, no answer yet: CONNECTING, calls queue',
    config: HEALTH,
    endpoints: [A, B],
    steps: [
      ['CONNECTING', A, B],
      ['READY', A, B],
    ],
    expected: { state: 'CONNECTING', picks: 'queue' },
  },
  {
    name: 'health checked: only SERVING endpoints take calls',
    config: HEALTH,
    endpoints: [A, B, C],
    steps: [
      ['CONNECTING', A, B, C],
      ['READY', A, B, C],
      ['health', A, 'SERVING'],
      ['health', B, 'NOT_SERVING'],
    ],
    expected: { state: 'READY', picks: { [A]: 12 } },
  },
  {
    name: 'health checked: every endpoint NOT_SERVING (panic off): TRANSIENT_FAILURE',
    config: HEALTH,
    endpoints: [A, B],
    steps: [
      ['CONNECTING', A, B],
      ['READY', A, B],
      ['health', A, 'NOT_SERVING'],
      ['health', B, 'NOT_SERVING'],
    ],
    expected: { state: 'TRANSIENT_FAILURE', picks: 'fail' },
  },
  {
    name: 'health checked: an endpoint goes back to SERVING',
    config: HEALTH,
    endpoints: [A, B],
    steps: [
      ['CONNECTING', A, B],
      ['READY', A, B],
      ['health', A, 'NOT_SERVING'],
      ['health', B, 'NOT_SERVING'],
      ['health', B, 'SERVING'],
    ],
    expected: { state: 'READY', picks: { [B]: 12 } },
  },
];

for (const policy of POLICIES) {
  describe(`${policy}: channel state and picks`, () => {
    for (const scenario of scenarios) {
      test(scenario.name, async () => {
        const h = PolicyHarness.create({
          policy,
          config: scenario.config ?? {},
          endpoints: scenario.endpoints,
        });
        try {
          await h.settle();
          await run(h, scenario.steps);
          assert.equal(h.stateName, scenario.expected.state);
          const tally = h.pickMany(12);
          const { picks } = scenario.expected;
          if (picks === 'queue') {
            assert.equal(tally.queued, 12);
          } else if (picks === 'fail') {
            assert.equal(tally.failed.length, 12);
          } else {
            assert.deepEqual(tally.counts, picks);
          }
        } finally {
          h.destroy();
        }
      });
    }

    test('no endpoints: TRANSIENT_FAILURE at once, calls fail UNAVAILABLE', () => {
      const h = PolicyHarness.create({ policy, endpoints: [] });
      assert.equal(h.stateName, 'TRANSIENT_FAILURE');
      const outcome = h.call();
      assert.equal(outcome.kind, 'fail');
      if (outcome.kind === 'fail') assert.equal(outcome.code, Status.UNAVAILABLE);
      h.destroy();
    });

    test('a resolver error before any endpoint: TRANSIENT_FAILURE with the error', () => {
      const h = PolicyHarness.create({ policy });
      assert.equal(h.resolverError('etcd: connection refused'), true);
      assert.equal(h.stateName, 'TRANSIENT_FAILURE');
      assert.equal(h.error, 'etcd: connection refused');
      h.destroy();
    });

    test('a resolver error with endpoints known keeps them in rotation', async () => {
      const h = PolicyHarness.create({ policy, endpoints: [A, B] });
      await h.ready();
      assert.equal(h.resolverError('etcd: connection refused'), true);
      assert.equal(h.stateName, 'READY');
      assert.deepEqual(h.pickMany(4).counts, { [A]: 2, [B]: 2 });
      h.destroy();
    });

    test('a READY endpoint that drops asks for re-resolution and leaves rotation before the next pick', async () => {
      const h = PolicyHarness.create({ policy, endpoints: [A, B] });
      await h.ready();
      const before = h.helper.reresolutionRequests;
      h.subchannel(B).setState('TRANSIENT_FAILURE', 'connection reset');
      assert.ok(h.helper.reresolutionRequests > before);
      assert.deepEqual(h.pickMany(4).counts, { [A]: 4 });
      h.destroy();
    });

    test('an endpoint whose connection goes idle is reconnected (exit idle)', async () => {
      const h = PolicyHarness.create({ policy, endpoints: [A, B] });
      await h.ready();
      const connects = h.subchannel(B).startConnectingCalls;
      await h.setState('IDLE', [B]);
      assert.ok(h.subchannel(B).startConnectingCalls > connects, 'reconnects B');
      await h.ready(B);
      assert.deepEqual(h.pickMany(4).counts, { [A]: 2, [B]: 2 });
      h.destroy();
    });

    test('an update keeps the connections of endpoints that stay', async () => {
      const h = PolicyHarness.create({ policy, endpoints: [A, B] });
      await h.ready();
      const created = h.helper.created.length;
      h.update({ endpoints: [A, B, C] });
      await h.settle();
      assert.deepEqual(h.helper.created.slice(created), [C], 'only C is new');
      await h.ready(C);
      assert.deepEqual(h.pickMany(6).counts, { [A]: 2, [B]: 2, [C]: 2 });
      h.update({ endpoints: [A, C] });
      await h.settle();
      assert.equal(h.subchannel(B).refs, 0, 'B is released');
      assert.deepEqual(h.pickMany(4).counts, { [A]: 2, [C]: 2 });
      h.destroy();
    });

    test('a key listed twice, removed and listed again: one connection per key, its weight as listed now', async () => {
      const h = PolicyHarness.create({ policy, endpoints: [A, B, A, C] });
      await h.ready();
      assert.deepEqual(h.helper.created, [A, B, C]);
      assert.deepEqual(h.pickMany(6).counts, { [A]: 2, [B]: 2, [C]: 2 });
      h.update({ endpoints: [A, C] });
      await h.settle();
      assert.equal(h.subchannel(B).refs, 0, 'B is released');
      assert.deepEqual(h.pickMany(4).counts, { [A]: 2, [C]: 2 });
      h.update({ endpoints: [C, A, B, B] });
      await h.settle();
      assert.deepEqual(h.helper.created.slice(3), [B], 'B, listed again, connects again');
      await h.ready(B);
      assert.deepEqual(h.pickMany(6).counts, { [A]: 2, [B]: 2, [C]: 2 });
      if (policy === WEIGHTED_ROUND_ROBIN_POLICY) {
        h.update({ endpoints: [A, B, { address: C, weight: 4 }] });
        await h.settle();
        assert.deepEqual(h.pickMany(12).counts, { [A]: 2, [B]: 2, [C]: 8 });
        h.update({ endpoints: [A, B, C] });
        await h.settle();
        assert.deepEqual(h.pickMany(12).counts, { [A]: 4, [B]: 4, [C]: 4 });
      }
      h.destroy();
    });

    test('a config change with calls in flight: the calls end cleanly and picks follow the new config', async () => {
      const h = PolicyHarness.create({ policy, endpoints: [A, B] });
      await h.ready();
      const inFlight = [h.call(), h.call()];
      h.update({ config: { outlierDetection: { interval: '10s', consecutiveFailures: 2 } } });
      await h.settle();
      for (const call of inFlight) {
        assert.equal(call.kind, 'complete');
        if (call.kind === 'complete') call.end({ code: Status.UNAVAILABLE });
      }
      assert.equal(h.stateName, 'READY');
      // Two failures in a row now eject an endpoint.
      for (let i = 0; i < 4; i++) {
        const call = h.call();
        if (call.kind === 'complete' && call.address === A) call.end({ code: Status.UNAVAILABLE });
        else if (call.kind === 'complete') call.end();
      }
      assert.deepEqual(h.pickMany(4).counts, { [B]: 4 });
      h.destroy();
    });

    test('health checks switched on mid-flight start watching the connected endpoints', async () => {
      const h = PolicyHarness.create({ policy, endpoints: [A, B] });
      await h.ready();
      h.update({ config: HEALTH });
      await h.settle();
      assert.deepEqual(
        h.health
          .server(A)
          .openWatches()
          .map((w) => w.service),
        ['svc'],
      );
      await h.setHealth(A, 'SERVING');
      await h.setHealth(B, 'NOT_SERVING');
      assert.deepEqual(h.pickMany(4).counts, { [A]: 4 });
      h.destroy();
    });

    test('UNIMPLEMENTED health service counts as healthy', async () => {
      const h = PolicyHarness.create({ policy, config: HEALTH, endpoints: [A] });
      h.health.server(A).mode = 'unimplemented';
      await h.ready();
      assert.equal(h.stateName, 'READY');
      assert.deepEqual(h.pickMany(2).counts, { [A]: 2 });
      h.destroy();
    });

    test('Watch unimplemented: the watcher polls Check', async () => {
      const h = PolicyHarness.create({ policy, config: HEALTH, endpoints: [A] });
      const server = h.health.server(A);
      server.watchUnimplemented = true;
      server.setStatus('SERVING');
      await h.ready();
      assert.deepEqual(server.checks, ['svc']);
      assert.equal(h.stateName, 'READY');
      h.destroy();
    });

    test('destroy leaves no timer, subchannel reference or listener behind', async () => {
      const timers = TimerTracker.install();
      try {
        const h = PolicyHarness.create({
          policy,
          config: {
            ...HEALTH,
            outlierDetection: { interval: '1s', consecutiveFailures: 1 },
            slowStart: { window: '30s' },
          },
          endpoints: [A, B, C],
        });
        await h.ready(A, B, C);
        await h.setHealth(A, 'SERVING');
        await h.setHealth(B, 'SERVING'); // C's first answer pending: its wait timer runs
        const call = h.call();
        if (call.kind === 'complete') call.end({ code: Status.UNAVAILABLE }); // an ejection timer
        h.subchannel(B).setState('IDLE'); // B reconnects: a batched state change is pending
        h.destroy();
        assert.deepEqual(h.leakedSubchannels(), []);
        assert.deepEqual(
          timers.pending().map((t) => `${t.kind} ${t.caller}`),
          [],
        );
        assert.deepEqual(h.health.server(A).openWatches(), []);
      } finally {
        timers.uninstall();
      }
    });
  });
}
