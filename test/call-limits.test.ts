/**
 * `limits` and `retryBudget` against real backends: calls over a limit fail
 * fast (wait-for-ready ones too) while the backends hold the calls in
 * flight; a backend failing every call with retryPolicy maxAttempts 5 gets
 * 5 attempts a call without a budget and at most 20 % extra with one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  LoadBalancerObserver,
  OBSERVER_OPTION,
  register,
  roundRobin,
  serviceConfig,
  type LimitEvent,
  type ResilienceOptions,
} from '@grpc-lb/core';
import {
  type BackendSet,
  type GreeterClient,
  isServiceError,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from './harness';

register({ grpc });
const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();

interface Outcome {
  readonly code: grpc.status;
  readonly details: string;
}

async function outcome(call: Promise<unknown>): Promise<Outcome> {
  try {
    await call;
    return { code: grpc.status.OK, details: '' };
  } catch (e) {
    if (!isServiceError(e)) throw e;
    return { code: e.code, details: e.details };
  }
}

function client(
  set: BackendSet,
  options: ResilienceOptions,
  extra: grpc.ChannelOptions = {},
  methodConfig: Record<string, unknown>[] = [],
): GreeterClient {
  return new Greeter(`static:///${set.addresses.join(',')}`, insecure, {
    'grpc.service_config': JSON.stringify(serviceConfig(roundRobin(options), { methodConfig })),
    'grpc.use_local_subchannel_pool': 1,
    ...extra,
  });
}

async function inFlight(set: BackendSet): Promise<number[]> {
  return Promise.all(set.backends.map(async (b) => (await b.stats()).inFlight));
}

describe('limits against hung backends (calls stay in flight until released)', () => {
  let set: BackendSet;
  before(async () => {
    set = await startBackends({ count: 3 });
  });
  after(() => set.stopAll());

  async function hangAll(on: boolean): Promise<void> {
    await Promise.all(set.backends.map((b) => b.hang(on)));
  }

  test('maxRequests 4: 4 calls reach the backends, the other 6 fail fast with UNAVAILABLE naming the limit (wait-for-ready ones too)', async () => {
    const observer = new LoadBalancerObserver();
    const events: LimitEvent[] = [];
    observer.on('limit', (e) => events.push(e));
    const c = client(set, { limits: { maxRequests: 4 } }, { [OBSERVER_OPTION]: observer });
    try {
      await sayHello(c, 'warm', { waitForReady: true });
      await hangAll(true);
      const calls = Array.from({ length: 10 }, (_, i) =>
        outcome(sayHello(c, `n${i}`, { waitForReady: i % 2 === 1, deadlineMs: 20_000 })),
      );
      // The six over the limit end while the four others are still held by the backends.
      await waitFor(() => events.length === 6, { timeoutMs: 5000, message: 'six rejected' });
      await waitFor(async () => (await inFlight(set)).reduce((a, b) => a + b, 0) === 4, {
        timeoutMs: 5000,
        message: 'four calls in flight on the backends',
      });
      await hangAll(false);
      const outcomes = await Promise.all(calls);
      const failed = outcomes.filter((o) => o.code !== grpc.status.OK);
      assert.equal(failed.length, 6);
      for (const f of failed) {
        assert.equal(f.code, grpc.status.UNAVAILABLE);
        assert.match(f.details, /call limit maxRequests \(4\) reached: 4 calls in flight/);
      }
      // Slots are free again once the calls ended.
      assert.equal((await outcome(sayHello(c, 'after'))).code, grpc.status.OK);
    } finally {
      await hangAll(false);
      c.close();
    }
  });

  test('maxRequestsPerEndpoint 2 over 3 backends: 2 calls each, the 7th fails fast', async () => {
    const c = client(set, { limits: { maxRequestsPerEndpoint: 2 } });
    try {
      await sayHello(c, 'warm', { waitForReady: true });
      await hangAll(true);
      const held = Array.from({ length: 6 }, (_, i) =>
        outcome(sayHello(c, `n${i}`, { deadlineMs: 20_000 })),
      );
      await waitFor(async () => (await inFlight(set)).join() === '2,2,2', {
        timeoutMs: 5000,
        message: 'two calls in flight on each backend',
      });
      const seventh = await outcome(sayHello(c, 'seventh', { waitForReady: true }));
      assert.equal(seventh.code, grpc.status.UNAVAILABLE);
      assert.match(seventh.details, /call limit maxRequestsPerEndpoint \(2\) reached/);
      await hangAll(false);
      assert.deepEqual(
        (await Promise.all(held)).map((o) => o.code),
        Array.from({ length: 6 }, () => grpc.status.OK),
      );
    } finally {
      await hangAll(false);
      c.close();
    }
  });

  test('onLimit "queue", maxPending 2: one call in flight, two wait and then succeed, the fourth fails fast', async () => {
    const c = client(set, { limits: { maxRequests: 1, onLimit: 'queue', maxPending: 2 } });
    try {
      await sayHello(c, 'warm', { waitForReady: true });
      await hangAll(true);
      const first = outcome(sayHello(c, 'first', { deadlineMs: 20_000 }));
      await waitFor(async () => (await inFlight(set)).reduce((a, b) => a + b, 0) === 1, {
        timeoutMs: 5000,
        message: 'the first call in flight',
      });
      const waiting = [
        outcome(sayHello(c, 'w1', { deadlineMs: 20_000 })),
        outcome(sayHello(c, 'w2', { deadlineMs: 20_000 })),
      ];
      // Let both waiting calls be picked (and queued) before the fourth.
      await new Promise((resolve) => setImmediate(resolve));
      const fourth = await outcome(sayHello(c, 'fourth'));
      assert.equal(fourth.code, grpc.status.UNAVAILABLE);
      assert.match(fourth.details, /call limit maxPending \(2\) reached/);
      await hangAll(false);
      assert.deepEqual(
        [await first, ...(await Promise.all(waiting))].map((o) => o.code),
        [grpc.status.OK, grpc.status.OK, grpc.status.OK],
      );
    } finally {
      await hangAll(false);
      c.close();
    }
  });
});

describe('retryBudget: a backend failing every call, retryPolicy maxAttempts 5', () => {
  let set: BackendSet;
  before(async () => {
    set = await startBackends({ count: 1 });
  });
  after(() => set.stopAll());

  const retrying = [
    {
      name: [{ service: 'grpclb.test.Greeter', method: 'SayHello' }],
      retryPolicy: {
        maxAttempts: 5,
        initialBackoff: '0.001s',
        maxBackoff: '0.002s',
        backoffMultiplier: 2,
        retryableStatusCodes: ['UNAVAILABLE'],
      },
    },
  ];
  const CALLS = 50;

  async function run(
    options: ResilienceOptions,
  ): Promise<{ attempts: number; outcomes: Outcome[] }> {
    const backend = set.backends[0]!;
    const c = client(set, options, {}, retrying);
    try {
      await sayHello(c, 'warm', { waitForReady: true });
      await backend.setFailRate(1);
      await backend.resetStats();
      const outcomes: Outcome[] = [];
      for (let i = 0; i < CALLS; i++) outcomes.push(await outcome(sayHello(c, `n${i}`)));
      return { attempts: (await backend.stats()).calls.SayHello, outcomes };
    } finally {
      await backend.setFailRate(0);
      c.close();
    }
  }

  test('without a budget: 5 attempts per call', async () => {
    const { attempts, outcomes } = await run({});
    assert.equal(attempts, 5 * CALLS);
    assert.ok(outcomes.every((o) => o.code === grpc.status.UNAVAILABLE));
  });

  test('ratio 0.2 (no minimum, a 60 s window the run fits in): extra attempts ≤ 20 % of calls; every call returns its own failure', async () => {
    const { attempts, outcomes } = await run({
      retryBudget: { ratio: 0.2, minRetriesPerSecond: 0, ttl: '60s' },
    });
    const extra = attempts - CALLS;
    assert.ok(extra <= 0.2 * CALLS, `${extra} extra attempts for ${CALLS} calls`);
    assert.ok(extra >= 0.2 * CALLS - 1, `the budget is used: ${extra} extra attempts`);
    assert.ok(outcomes.every((o) => o.code === grpc.status.UNAVAILABLE));
    const refused = outcomes.filter((o) => /not retried: retry budget/.test(o.details));
    assert.ok(refused.length >= CALLS - extra, `${refused.length} calls refused a retry`);
  });

  test('ratio 0.2 with minRetriesPerSecond 1 over a 60 s window: at most 20 % + 60 extra attempts', async () => {
    const { attempts } = await run({
      retryBudget: { ratio: 0.2, minRetriesPerSecond: 1, ttl: '60s' },
    });
    const extra = attempts - CALLS;
    assert.ok(extra <= 0.2 * CALLS + 60, `${extra} extra attempts`);
    assert.ok(extra > 0.2 * CALLS, `the minimum allowance is used: ${extra}`);
  });
});
