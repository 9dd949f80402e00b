/**
 * `limits` and `retryBudget` through the real balancer (fake subchannels):
 * calls in flight per channel and per endpoint, calls waiting, and
 * grpc-js's retry attempts (marked `grpc-previous-rpc-attempts`) against
 * the budget, on a clock the test moves.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { experimental } from '@grpc/grpc-js';
import { ConfigError } from '../errors';
import { LEAST_REQUEST_POLICY } from '../least-request-config';
import { LoadBalancerObserver, type LimitEvent } from '../observer';
import { parseResilience } from '../resilience-config';
import { ROUND_ROBIN_POLICY } from '../round-robin-config';
import { TRAFFIC_SPLIT_POLICY } from '../traffic-split-config';
import { WEIGHTED_ROUND_ROBIN_POLICY } from '../weighted-round-robin-config';
import { PREVIOUS_ATTEMPTS_KEY, RetryBudget } from './call-limits';
import { HEDGED_PICK_KEY, METHOD_PICK_KEY } from './config-selector';
import {
  PickResultType,
  PolicyHarness,
  Status,
  TimerTracker,
  type StartedCall,
} from './testing/fake-channel';
import { stubClock } from './testing/clock';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';
const C = '10.0.0.3:80';
const D = '10.0.0.4:80';

function started(h: PolicyHarness): StartedCall {
  const outcome = h.call();
  if (outcome.kind !== 'complete') {
    assert.fail(`expected a call to start, got ${JSON.stringify(outcome)}`);
  }
  return outcome;
}

describe('limits and retryBudget: parsing (bad fields are a ConfigError naming the field)', () => {
  const cases: [string, unknown, string][] = [
    ['maxRequests 0', { limits: { maxRequests: 0 } }, 'cfg.limits.maxRequests'],
    ['maxRequests 1.5', { limits: { maxRequests: 1.5 } }, 'cfg.limits.maxRequests'],
    [
      'maxRequestsPerEndpoint "3"',
      { limits: { maxRequestsPerEndpoint: '3' } },
      'cfg.limits.maxRequestsPerEndpoint',
    ],
    ['maxPending -1', { limits: { maxPending: -1 } }, 'cfg.limits.maxPending'],
    ['onLimit "wait"', { limits: { onLimit: 'wait' } }, 'cfg.limits.onLimit'],
    ['queue without maxPending', { limits: { onLimit: 'queue' } }, 'cfg.limits.onLimit'],
    ['an unknown limit', { limits: { maxConnections: 1 } }, 'cfg.limits.maxConnections'],
    ['limits not an object', { limits: 5 }, 'cfg.limits'],
    ['ratio -0.1', { retryBudget: { ratio: -0.1 } }, 'cfg.retryBudget.ratio'],
    ['ratio "20%"', { retryBudget: { ratio: '20%' } }, 'cfg.retryBudget.ratio'],
    ['ttl 0.5s', { retryBudget: { ttl: '0.5s' } }, 'cfg.retryBudget.ttl'],
    ['ttl 61s', { retryBudget: { ttl: '61s' } }, 'cfg.retryBudget.ttl'],
    [
      'minRetriesPerSecond 1.5',
      { retryBudget: { minRetriesPerSecond: 1.5 } },
      'cfg.retryBudget.minRetriesPerSecond',
    ],
    ['an unknown budget field', { retryBudget: { percent: 20 } }, 'cfg.retryBudget.percent'],
  ];
  for (const [name, json, field] of cases) {
    test(name, () => {
      assert.throws(
        () => parseResilience(json as Record<string, unknown>, 'cfg'),
        (e) => e instanceof ConfigError && e.field === field,
      );
    });
  }

  test('defaults: off; a budget given empty is Linkerd’s (0.2, 10/s, 10 s); snake_case reads', () => {
    const none = parseResilience({}, 'cfg');
    assert.equal(none.limits, undefined);
    assert.equal(none.retryBudget, undefined);
    const r = parseResilience({ limits: { max_requests: 5 }, retry_budget: {} }, 'cfg');
    assert.deepEqual(r.limits, {
      maxRequests: 5,
      maxRequestsPerEndpoint: undefined,
      maxPending: undefined,
      onLimit: 'fail',
    });
    assert.deepEqual(r.retryBudget, { ratio: 0.2, minRetriesPerSecond: 10, ttlMs: 10_000 });
  });

  test('every policy accepts them (a traffic split too)', () => {
    for (const policy of [ROUND_ROBIN_POLICY, LEAST_REQUEST_POLICY, WEIGHTED_ROUND_ROBIN_POLICY]) {
      const h = PolicyHarness.create({ policy });
      h.parseConfig({ limits: { maxRequests: 1 }, retryBudget: { ratio: 0.1 } });
      h.destroy();
    }
    const split = PolicyHarness.create({ policy: TRAFFIC_SPLIT_POLICY });
    split.parseConfig({
      subsets: [{ name: 'all', labels: {} }],
      routes: [{ name: 'all', split: [{ subset: 'all', weight: 1 }] }],
      limits: { maxRequests: 1 },
      retryBudget: {},
    });
    split.destroy();
  });
});

describe('maxRequests: calls in flight on the channel', () => {
  test('the call over the limit fails fast (DROP, UNAVAILABLE naming the limit); one ending frees a slot', async () => {
    const observer = new LoadBalancerObserver();
    const events: LimitEvent[] = [];
    observer.on('limit', () => {
      throw new Error('a listener that throws');
    });
    observer.on('limit', (e) => events.push(e));
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [A, B, C],
      config: { limits: { maxRequests: 2 } },
      observer,
    });
    try {
      await h.ready();
      const first = started(h);
      started(h);
      const over = h.call();
      assert.equal(over.kind, 'drop');
      if (over.kind !== 'drop') return;
      assert.equal(over.code, Status.UNAVAILABLE);
      assert.match(over.details, /call limit maxRequests \(2\) reached: 2 calls in flight/);
      assert.match(over.details, /^test:\/\/\/svc: /);
      assert.deepEqual(events, [
        { target: 'test:///svc', limit: 'maxRequests', value: 2, action: 'failed' },
      ]);
      assert.equal(h.warnings.filter((w) => /"limit" listener threw/.test(w)).length, 1);
      first.end({ code: Status.UNAVAILABLE });
      assert.equal(h.call().kind, 'complete');
    } finally {
      h.destroy();
    }
  });

  test('a pick whose call never starts holds its slot until the end of the turn only', async () => {
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [A, B],
      config: { limits: { maxRequests: 2 } },
    });
    try {
      await h.ready();
      // grpc-js picks a burst of calls before any of them starts: picks count at once.
      const picked = [h.picker.pick(h.pickArgs()), h.picker.pick(h.pickArgs())];
      assert.deepEqual(
        picked.map((r) => r.pickResultType),
        [PickResultType.COMPLETE, PickResultType.COMPLETE],
      );
      assert.equal(h.picker.pick(h.pickArgs()).pickResultType, PickResultType.DROP);
      // Neither started (its subchannel went away, the call was cancelled): the slots lapse.
      await h.settle(1);
      assert.equal(h.call().kind, 'complete');
    } finally {
      h.destroy();
    }
  });

  test('config changes mid-flight: calls counted before keep counting; removed limits stop limiting', async () => {
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [A, B],
      config: { limits: { maxRequests: 1 } },
    });
    try {
      await h.ready();
      const first = started(h);
      assert.equal(h.call().kind, 'drop');
      h.update({ config: {} });
      await h.settle();
      const free = [h.call(), h.call(), h.call()];
      assert.deepEqual(
        free.map((o) => o.kind),
        ['complete', 'complete', 'complete'],
      );
      h.update({ config: { limits: { maxRequests: 2 } } });
      await h.settle();
      // `first` still counts (picked under a limit); the three picked without one do not.
      assert.equal(h.call().kind, 'complete');
      assert.equal(h.call().kind, 'drop');
      first.end();
      for (const o of free) if (o.kind === 'complete') o.end();
    } finally {
      h.destroy();
    }
  });
});

describe('maxRequestsPerEndpoint: picks skip endpoints at their limit', () => {
  for (const policy of [ROUND_ROBIN_POLICY, LEAST_REQUEST_POLICY, WEIGHTED_ROUND_ROBIN_POLICY]) {
    test(`${policy}: 4 endpoints × 2 fill exactly, the 9th call fails naming the limit`, async () => {
      const h = PolicyHarness.create({
        policy,
        endpoints: [A, B, C, D],
        config: { limits: { maxRequestsPerEndpoint: 2 } },
      });
      try {
        await h.ready();
        const calls: StartedCall[] = [];
        for (let i = 0; i < 8; i++) calls.push(started(h));
        const per: Record<string, number> = {};
        for (const c of calls) per[c.address] = (per[c.address] ?? 0) + 1;
        assert.deepEqual(per, { [A]: 2, [B]: 2, [C]: 2, [D]: 2 });
        const over = h.call();
        assert.equal(over.kind, 'drop');
        if (over.kind === 'drop') {
          assert.equal(over.code, Status.UNAVAILABLE);
          assert.match(over.details, /call limit maxRequestsPerEndpoint \(2\) reached/);
        }
        // One call of C ends: the next call goes to C, whatever the policy would have picked.
        calls.find((c) => c.address === C)!.end();
        const next = started(h);
        assert.equal(next.address, C);
      } finally {
        h.destroy();
      }
    });
  }
});

describe('onLimit "queue" and maxPending', () => {
  test('over the limit a call waits; past maxPending it fails; a call ending wakes the waiting one', async () => {
    const observer = new LoadBalancerObserver();
    const events: string[] = [];
    observer.on('limit', (e) => events.push(`${e.limit}:${e.action}`));
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [A],
      config: { limits: { maxRequests: 1, onLimit: 'queue', maxPending: 1 } },
      observer,
    });
    try {
      await h.ready();
      const first = started(h);
      const publishes = h.helper.updates.length;
      assert.equal(h.call().kind, 'queue');
      const third = h.call();
      assert.equal(third.kind, 'drop');
      if (third.kind === 'drop') assert.match(third.details, /maxPending \(1\) reached/);
      assert.deepEqual(events, ['maxRequests:queued', 'maxPending:failed']);
      first.end();
      await h.settle();
      // grpc-js re-picks every queued call on a publish: the gate published again.
      assert.equal(h.helper.updates.length, publishes + 1);
      assert.equal(h.call().kind, 'complete');
    } finally {
      h.destroy();
    }
  });

  test('while no endpoint is ready yet, at most maxPending calls wait', async () => {
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [A, B],
      config: { limits: { maxPending: 2 } },
    });
    try {
      await h.setState('CONNECTING', [A, B]);
      assert.equal(h.stateName, 'CONNECTING');
      assert.deepEqual([h.call().kind, h.call().kind, h.call().kind], ['queue', 'queue', 'drop']);
      // Every publish lets the waiting calls pick again (and count themselves again).
      await h.ready(A);
      assert.equal(h.call().kind, 'complete');
    } finally {
      h.destroy();
    }
  });
});

/** Pick arguments of a call's attempt: `options` is what all attempts of one call share. */
function attemptArgs(
  metadata: grpc.Metadata,
  attempt: number,
  extra: Record<string, string> = {},
): experimental.PickArgs {
  let m = metadata;
  if (attempt > 0) {
    m = metadata.clone();
    m.set(PREVIOUS_ATTEMPTS_KEY, String(attempt));
  }
  return { metadata: m, extraPickInfo: { [METHOD_PICK_KEY]: '/svc/M', ...extra } };
}

function runAttempt(
  h: PolicyHarness,
  args: experimental.PickArgs,
  code: number,
): experimental.PickResult {
  const result = h.picker.pick(args);
  if (result.pickResultType === PickResultType.COMPLETE) {
    result.onCallStarted?.();
    result.onCallEnded?.(code, code === 0 ? 'OK' : 'backend down', new grpc.Metadata());
  }
  return result;
}

describe('retryBudget: grpc-js retries as a share of calls', () => {
  test('ratio 0.2, no minimum: 2 retries per 10 calls; the third returns the call’s own failure', async (t) => {
    const clock = stubClock(t);
    const observer = new LoadBalancerObserver();
    const events: LimitEvent[] = [];
    observer.on('limit', (e) => events.push(e));
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [A, B],
      config: { retryBudget: { ratio: 0.2, minRetriesPerSecond: 0, ttl: '10s' } },
      observer,
    });
    try {
      await h.ready();
      const calls = Array.from({ length: 10 }, () => new grpc.Metadata());
      for (const m of calls) {
        runAttempt(h, attemptArgs(m, 0), Status.UNAVAILABLE);
        clock.now += 10;
      }
      const kinds = calls.slice(0, 3).map((m) => {
        clock.now += 10;
        return runAttempt(h, attemptArgs(m, 1), Status.UNAVAILABLE);
      });
      assert.deepEqual(
        kinds.map((r) => r.pickResultType),
        [PickResultType.COMPLETE, PickResultType.COMPLETE, PickResultType.DROP],
      );
      const dropped = kinds[2]!.status!;
      assert.equal(dropped.code, Status.UNAVAILABLE);
      assert.match(
        dropped.details,
        /^backend down \(not retried: retry budget of test:\/\/\/svc spent \(ratio 0\.2, minRetriesPerSecond 0, ttl 10s\)\)$/,
      );
      assert.deepEqual(events, [
        { target: 'test:///svc', limit: 'retryBudget', value: 0.2, action: 'failed' },
      ]);
      // First attempts always go.
      assert.equal(
        runAttempt(h, attemptArgs(new grpc.Metadata(), 0), 0).pickResultType,
        PickResultType.COMPLETE,
      );
    } finally {
      h.destroy();
    }
  });

  test('a failure code grpc-js refuses from a picker (ABORTED) comes back as UNAVAILABLE', async (t) => {
    stubClock(t);
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [A],
      config: { retryBudget: { ratio: 0, minRetriesPerSecond: 0 } },
    });
    try {
      await h.ready();
      const m = new grpc.Metadata();
      runAttempt(h, attemptArgs(m, 0), Status.ABORTED);
      const r = runAttempt(h, attemptArgs(m, 1), Status.ABORTED);
      assert.equal(r.pickResultType, PickResultType.DROP);
      assert.equal(r.status!.code, Status.UNAVAILABLE);
    } finally {
      h.destroy();
    }
  });

  test('a hedged attempt over budget waits (QUEUE) instead of ending the call', async (t) => {
    stubClock(t);
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [A],
      config: { retryBudget: { ratio: 0, minRetriesPerSecond: 0 } },
    });
    try {
      await h.ready();
      const m = new grpc.Metadata();
      const hedged = { [HEDGED_PICK_KEY]: '1' };
      assert.equal(
        h.picker.pick(attemptArgs(m, 0, hedged)).pickResultType,
        PickResultType.COMPLETE,
      );
      assert.equal(h.picker.pick(attemptArgs(m, 1, hedged)).pickResultType, PickResultType.QUEUE);
    } finally {
      h.destroy();
    }
  });

  test('minRetriesPerSecond: retries a channel with no calls may make, per window; the window slides', async (t) => {
    const clock = stubClock(t);
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [A],
      config: { retryBudget: { ratio: 0.2, minRetriesPerSecond: 1, ttl: '5s' } },
    });
    try {
      await h.ready();
      const tally = (): number => {
        let allowed = 0;
        for (let i = 0; i < 20; i++) {
          const r = runAttempt(h, attemptArgs(new grpc.Metadata(), 1), Status.UNAVAILABLE);
          if (r.pickResultType === PickResultType.COMPLETE) allowed++;
        }
        return allowed;
      };
      assert.equal(tally(), 5);
      clock.now += 5_000;
      assert.equal(tally(), 5);
    } finally {
      h.destroy();
    }
  });
});

describe('RetryBudget window (property: retries in any window stay within the budget)', () => {
  test('a random sequence of calls and retry attempts', () => {
    let seed = 7;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const budget = new RetryBudget({ ratio: 0.2, minRetriesPerSecond: 2, ttlMs: 10_000 });
    const events: { at: number; retry: boolean }[] = [];
    let now = 0;
    for (let i = 0; i < 20_000; i++) {
      now += Math.floor(random() * 20);
      if (random() < 0.5) {
        budget.called(now);
        events.push({ at: now, retry: false });
      } else if (budget.canRetry(now)) {
        budget.retried(now);
        events.push({ at: now, retry: true });
      }
    }
    // At every retry, the window the buckets keep (the current 1 s bucket and the 9 before it)
    // holds at most 0.2 × its calls + 2/s × 10 s retries, counted here from the raw events.
    let checked = 0;
    for (const [i, e] of events.entries()) {
      if (!e.retry) continue;
      const from = (Math.floor(e.at / 1_000) - 9) * 1_000;
      let calls = 0;
      let retries = 0;
      for (let j = i; j >= 0 && events[j]!.at >= from; j--) {
        if (events[j]!.retry) retries++;
        else calls++;
      }
      assert.ok(
        retries <= 0.2 * calls + 20 + 1e-9,
        `at ${e.at}: ${retries} retries, ${calls} calls`,
      );
      checked++;
    }
    assert.ok(checked > 1_000, `${checked} retries checked`);
    // And the budget was used, not just refused: close to 20 % of the calls over the run.
    const retries = events.filter((e) => e.retry).length;
    const calls = events.length - retries;
    assert.ok(retries >= 0.15 * calls, `${retries} retries for ${calls} calls`);
  });
});

describe('call limits leave nothing behind', () => {
  test('destroy() with reservations and waiting calls pending: no timer left', async () => {
    const timers = TimerTracker.install();
    try {
      const h = PolicyHarness.create({
        policy: ROUND_ROBIN_POLICY,
        endpoints: [A],
        config: { limits: { maxRequests: 1, onLimit: 'queue', maxPending: 5 } },
      });
      await h.ready();
      const first = started(h);
      h.picker.pick(h.pickArgs());
      first.end();
      h.destroy();
      await h.settle();
      assert.deepEqual(
        timers.pending().map((x) => x.caller),
        [],
      );
    } finally {
      timers.uninstall();
    }
  });
});
