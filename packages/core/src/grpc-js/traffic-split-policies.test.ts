/**
 * Subset policies `least_request` and `random` of `grpc-lb.traffic_split`:
 * through the real balancer (fake subchannels and health servers, call
 * tracking by the balancer itself) and, for the properties, at the picker
 * level (testing/split-pickers.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { experimental } from '@grpc/grpc-js';
import fc from 'fast-check';
import { LoadBalancerObserver } from '../observer';
import { TRAFFIC_SPLIT_POLICY } from '../traffic-split-config';
import type { EndpointChild } from './endpoint-policy';
import { stubClock } from './testing/clock';
import { PolicyHarness, Status, type StartedCall } from './testing/fake-channel';
import {
  CS,
  endpoint,
  outcomeOf,
  pickArgs,
  splitConfig,
  splitPolicy,
  type State,
} from './testing/split-pickers';

const METHOD = '/helloworld.Greeter/SayHello';
const V1A = '10.0.1.1:50051';
const V1B = '10.0.1.2:50051';
const V2A = '10.0.2.1:50051';
const V2B = '10.0.2.2:50051';
const V2C = '10.0.2.3:50051';
const V1 = [V1A, V1B];
const V2 = [V2A, V2B, V2C];

type Policy = 'round_robin' | 'weighted_round_robin' | 'least_request' | 'random';

/** v1 (2 endpoints) and v2 (3 endpoints), each with its policy; SayHello split 50/50. */
function splitJson(v1: Policy, v2: Policy, extra: Record<string, unknown> = {}) {
  return {
    subsets: [
      { name: 'v1', labels: { version: 'v1' }, policy: v1 },
      { name: 'v2', labels: { version: 'v2' }, policy: v2 },
    ],
    routes: [
      {
        name: 'hello',
        match: { method: METHOD },
        split: [
          { subset: 'v1', weight: 1 },
          { subset: 'v2', weight: 1 },
        ],
      },
    ],
    panicThreshold: 0,
    ...extra,
  };
}

function harness(v1: Policy, v2: Policy, extra: Record<string, unknown> = {}) {
  return PolicyHarness.create({
    policy: TRAFFIC_SPLIT_POLICY,
    config: splitJson(v1, v2, extra),
    endpoints: [
      ...V1.map((address) => ({ address, labels: { version: 'v1' } })),
      ...V2.map((address) => ({ address, labels: { version: 'v2' } })),
    ],
  });
}

function started(h: PolicyHarness): StartedCall {
  const call = h.call({ method: METHOD });
  if (call.kind !== 'complete') return assert.fail(`expected a completed pick, got ${call.kind}`);
  return call;
}

const subsetOf = (address: string): string => (address.startsWith('10.0.1.') ? 'v1' : 'v2');

function countBySubset(order: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const a of order) counts[subsetOf(a)] = (counts[subsetOf(a)] ?? 0) + 1;
  return counts;
}

describe('traffic_split subset policy least_request, through the balancer', () => {
  test('only the subset picks by least request, yet its calls are counted: a call held open on one endpoint sends the subset elsewhere; the route split stays exact', async (t) => {
    stubClock(t);
    // No observer and no outlier detection: nothing but the least_request subset needs tracking.
    const h = harness('least_request', 'round_robin');
    try {
      await h.ready();
      // One answered call on each v1 endpoint gives both a 1 ms latency estimate.
      for (let i = 0; i < 4; i++) started(h).end({ latencyMs: 1 });

      // Hold calls open on whichever v1 endpoint is picked first.
      const order: string[] = [];
      let held: StartedCall | undefined;
      for (let i = 0; i < 40; i++) {
        const call = started(h);
        order.push(call.address);
        if (subsetOf(call.address) === 'v1' && held === undefined) held = call;
        else call.end({ latencyMs: 1 });
      }
      assert.ok(held, 'v1 took a call');
      const other = held.address === V1A ? V1B : V1A;
      // The route's split is the subsets' business: exactly 1:1.
      assert.deepEqual(countBySubset(order), { v1: 20, v2: 20 });
      // While the first call is in flight, the other v1 endpoint is cheaper: it takes every
      // later v1 call (with both endpoints sampled, P2C always compares these two).
      const v1After = order.filter((a) => subsetOf(a) === 'v1').slice(1);
      assert.deepEqual(new Set(v1After), new Set([other]));
      // v2 is round robin: 20 calls over 3 endpoints.
      const v2Counts = countBySubset(order.filter((a) => subsetOf(a) === 'v2'));
      assert.equal(v2Counts['v2'], 20);

      // Once it answers (fast), both endpoints take calls again.
      held.end({ latencyMs: 1 });
      const after = h.pickMany(200, { method: METHOD, latencyMs: 1 });
      assert.ok(
        (after.counts[V1A] ?? 0) > 10 && (after.counts[V1B] ?? 0) > 10,
        JSON.stringify(after.counts),
      );
    } finally {
      h.destroy();
    }
  });

  test('a slow endpoint gets fewer calls of the subset than a fast one', async (t) => {
    stubClock(t);
    const h = harness('least_request', 'random');
    try {
      await h.ready();
      const counts: Record<string, number> = {};
      for (let i = 0; i < 400; i++) {
        const call = started(h);
        counts[call.address] = (counts[call.address] ?? 0) + 1;
        call.end({ latencyMs: call.address === V1A ? 50 : 1 });
      }
      assert.equal((counts[V1A] ?? 0) + (counts[V1B] ?? 0), 200);
      assert.ok((counts[V1A] ?? 0) < 20, `slow ${counts[V1A]}, fast ${counts[V1B]}`);
    } finally {
      h.destroy();
    }
  });

  test('a connecting endpoint and an ejected one are skipped; the subset uses what is left', async () => {
    const h = harness('least_request', 'random', {
      outlierDetection: {
        interval: '10s',
        baseEjectionTime: '30s',
        consecutiveFailures: 1,
        maxEjectionPercent: 50,
      },
    });
    try {
      await h.ready();
      await h.setState('CONNECTING', [V1A]);
      const connecting = h.pickMany(100, { method: METHOD });
      assert.equal(connecting.counts[V1A], undefined);
      assert.equal(connecting.counts[V1B], 50);

      await h.setState('READY', [V1A]);
      // One failed call ejects its endpoint (consecutiveFailures 1).
      let ejected: string | undefined;
      for (let i = 0; i < 10 && ejected === undefined; i++) {
        const call = started(h);
        call.end({ code: Status.UNAVAILABLE });
        if (subsetOf(call.address) === 'v1') ejected = call.address;
      }
      assert.ok(ejected);
      await h.settle();
      const after = h.pickMany(100, { method: METHOD });
      assert.equal(
        after.counts[ejected],
        undefined,
        `${ejected} is ejected: ${JSON.stringify(after.counts)}`,
      );
      assert.equal(countBySubset(after.order)['v1'], 50);
    } finally {
      h.destroy();
    }
  });

  test('config change mid-flight: calls started under round robin end under least_request without upsetting the counts', async (t) => {
    stubClock(t);
    const h = harness('round_robin', 'round_robin');
    try {
      await h.ready();
      // Started while nothing tracks calls.
      const early = [started(h), started(h), started(h), started(h)];
      h.update({ config: splitJson('least_request', 'round_robin') });
      await h.settle();
      // They end under least_request: the counter must not go below 0 (V1A/V1B take new calls).
      for (const call of early) call.end({ latencyMs: 1 });
      const held = started(h);
      const v1 = subsetOf(held.address) === 'v1' ? held : started(h);
      const next = h.pickMany(20, { method: METHOD, latencyMs: 1 });
      const v1Next = next.order.filter((a) => subsetOf(a) === 'v1');
      assert.ok(v1Next.length >= 9);
      assert.ok(
        v1Next.every((a) => a !== v1.address),
        `the endpoint with a call in flight is avoided: ${v1Next.join(' ')}`,
      );
      v1.end({ latencyMs: 1 });
      if (held !== v1) held.end({ latencyMs: 1 });

      // And back to round robin: strict alternation in v1 again.
      h.update({ config: splitJson('round_robin', 'round_robin') });
      await h.settle();
      const rr = h.pickMany(40, { method: METHOD }).order.filter((a) => subsetOf(a) === 'v1');
      assert.equal(rr.length, 20);
      for (let i = 1; i < rr.length; i++) assert.notEqual(rr[i], rr[i - 1]);
    } finally {
      h.destroy();
    }
  });
});

describe('traffic_split subset policy random, through the balancer', () => {
  test('picks every in-rotation endpoint of the subset, about equally; the route split stays exact', async () => {
    const h = harness('round_robin', 'random');
    try {
      await h.ready();
      const tally = h.pickMany(6000, { method: METHOD });
      assert.deepEqual(countBySubset(tally.order), { v1: 3000, v2: 3000 });
      assert.equal(tally.counts[V1A], 1500);
      // 3000 draws over 3 endpoints: each expects 1000 (σ ≈ 26); 800 is 7.7 σ away.
      for (const a of V2) {
        const n = tally.counts[a] ?? 0;
        assert.ok(n > 800 && n < 1200, `${a}: ${n} of 3000`);
      }
      // Not a rotation: somewhere the same endpoint is drawn twice in a row.
      const v2Order = tally.order.filter((a) => subsetOf(a) === 'v2');
      assert.ok(v2Order.some((a, i) => i > 0 && a === v2Order[i - 1]));
    } finally {
      h.destroy();
    }
  });

  test('a connecting endpoint and one answering NOT_SERVING are skipped', async () => {
    const h = harness('round_robin', 'random', { healthCheck: { serviceName: 'hello' } });
    try {
      await h.ready();
      for (const a of [...V1, ...V2]) await h.setHealth(a, 'SERVING');
      await h.setState('CONNECTING', [V2A]);
      await h.setHealth(V2B, 'NOT_SERVING');
      const tally = h.pickMany(200, { method: METHOD });
      assert.equal(tally.counts[V2C], 100);
      assert.equal(tally.counts[V2A], undefined);
      assert.equal(tally.counts[V2B], undefined);
    } finally {
      h.destroy();
    }
  });
});

describe('traffic_split subset policies: observer sees least_request subset calls', () => {
  test('calls in flight on a least_request subset are visible per endpoint', async (t) => {
    stubClock(t);
    const observer = new LoadBalancerObserver();
    const h = PolicyHarness.create({
      policy: TRAFFIC_SPLIT_POLICY,
      config: splitJson('least_request', 'random'),
      endpoints: V1.map((address) => ({ address, labels: { version: 'v1' } })),
      observer,
    });
    try {
      await h.ready();
      const call = started(h);
      assert.equal(observer.endpoint(call.address)?.outstanding, 1);
      call.end({ latencyMs: 2 });
      assert.equal(observer.endpoint(call.address)?.outstanding, 0);
    } finally {
      h.destroy();
    }
  });
});

describe('traffic_split subset policies least_request and random: properties (picker level)', () => {
  const policy = splitPolicy();
  const states: readonly State[] = [CS.READY, CS.CONNECTING, CS.IDLE, CS.TRANSIENT_FAILURE];

  /** Endpoints `10.0.<s+1>.<i+1>` of subset `s<s>`, in the given states and weights. */
  function children(subsets: readonly (readonly [State, number])[][]): EndpointChild[] {
    return subsets.flatMap((members, s) =>
      members.map(([state, weight], i) =>
        endpoint(`10.0.${s + 1}.${i + 1}:50051`, {
          state,
          weight,
          labels: { version: `s${s}` },
        }),
      ),
    );
  }

  const member = fc.tuple(fc.constantFrom(...states), fc.nat(3));
  const subsetArb = fc.array(member, { minLength: 0, maxLength: 4 });
  const policyArb = fc.constantFrom<Policy>('least_request', 'random');

  test('every call lands on an in-rotation endpoint of the subset the route chose, never a connecting, failing or (least_request) weight-0 one, and never outside the route', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(subsetArb, policyArb, fc.integer({ min: 1, max: 5 })), {
          minLength: 1,
          maxLength: 3,
        }),
        (subsets) => {
          const config = splitConfig({
            subsets: subsets.map(([, p], s) => ({
              name: `s${s}`,
              labels: { version: `s${s}` },
              policy: p,
            })),
            routes: [
              {
                match: { method: METHOD },
                split: subsets.map(([, , w], s) => ({ subset: `s${s}`, weight: w })),
              },
            ],
          });
          const all = [
            ...children(subsets.map(([m]) => m)),
            endpoint('10.0.99.1:50051', { state: CS.READY, labels: { version: 'outside' } }),
          ];
          const byKey = new Map(all.map((c) => [c.key, c]));
          const picker: experimental.Picker = policy.picker(config, all, new Map());
          const args = pickArgs({ method: METHOD });
          for (let i = 0; i < 50; i++) {
            const outcome = outcomeOf(picker.pick(args));
            if (outcome === 'QUEUE' || outcome.startsWith('FAIL: ')) continue;
            const child = byKey.get(outcome)!;
            const s = Number(/^10\.0\.(\d+)\./.exec(outcome)![1]) - 1;
            assert.ok(s < subsets.length, `a call left the route: ${outcome}`);
            assert.equal(child.state, CS.READY, `${outcome} is not in rotation`);
            if (subsets[s]![1] === 'least_request') {
              assert.ok((child.info?.weight ?? 1) > 0, `${outcome} has weight 0`);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('the subset policy never changes the route split: with every subset ready, each window of W calls is exact', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(policyArb, fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })),
          {
            minLength: 1,
            maxLength: 3,
          },
        ),
        (subsets) => {
          const config = splitConfig({
            subsets: subsets.map(([p], s) => ({
              name: `s${s}`,
              labels: { version: `s${s}` },
              policy: p,
            })),
            routes: [
              {
                match: { method: METHOD },
                split: subsets.map(([, w], s) => ({ subset: `s${s}`, weight: w })),
              },
            ],
          });
          const all = children(
            subsets.map(([, , n]) => Array.from({ length: n }, () => [CS.READY, 1] as const)),
          );
          const picker = policy.picker(config, all, new Map());
          const args = pickArgs({ method: METHOD });
          const total = subsets.reduce((a, [, w]) => a + w, 0);
          const labels = Array.from({ length: total * 6 }, () => {
            const outcome = outcomeOf(picker.pick(args));
            return Number(/^10\.0\.(\d+)\./.exec(outcome)![1]) - 1;
          });
          for (let start = 0; start + total <= labels.length; start++) {
            const window = labels.slice(start, start + total);
            subsets.forEach(([, w], s) => {
              assert.equal(window.filter((x) => x === s).length, w, `subset s${s} at ${start}`);
            });
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
