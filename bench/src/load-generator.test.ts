import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type UnaryCall, generateLoad } from './load-generator';

/** A fake channel answering after `delayMs` from `address`, tracking the calls in flight. */
function fakeChannel(address: string, delayMs: number, inFlight: { now: number; max: number }) {
  const call: UnaryCall = (done) => {
    inFlight.now++;
    inFlight.max = Math.max(inFlight.max, inFlight.now);
    const finish = () => {
      inFlight.now--;
      done(null, address);
    };
    if (delayMs > 0) setTimeout(finish, delayMs);
    else setImmediate(finish);
  };
  return call;
}

describe('closed loop', () => {
  test('keeps exactly `concurrency` calls in flight and stops at the call count', async () => {
    const inFlight = { now: 0, max: 0 };
    const outcome = await generateLoad({
      mode: 'closed',
      concurrency: 8,
      rate: 0,
      count: 1000,
      durationMs: null,
      warmupMs: 0,
      calls: [fakeChannel('a', 0, inFlight)],
    });
    assert.equal(outcome.latenciesMs.length, 1000);
    assert.equal(inFlight.max, 8);
    assert.equal(inFlight.now, 0);
    assert.deepEqual(outcome.statusCounts, { '0': 1000 });
    assert.deepEqual(outcome.perBackend, { a: 1000 });
    assert.ok(outcome.totalMs > 0);
  });

  test('alternates calls between channels and does not record the warm-up', async () => {
    const inFlight = { now: 0, max: 0 };
    const outcome = await generateLoad({
      mode: 'closed',
      concurrency: 4,
      rate: 0,
      count: 400,
      durationMs: null,
      warmupMs: 20,
      calls: [fakeChannel('a', 0, inFlight), fakeChannel('b', 0, inFlight)],
    });
    assert.equal(outcome.latenciesMs.length, 400);
    assert.equal((outcome.perBackend['a'] ?? 0) + (outcome.perBackend['b'] ?? 0), 400);
    assert.ok(Math.abs((outcome.perBackend['a'] ?? 0) - (outcome.perBackend['b'] ?? 0)) <= 4);
  });

  test('counts failures by status code and keeps a few error details', async () => {
    let n = 0;
    const failing: UnaryCall = (done) => {
      const fail = n++ % 2 === 0;
      setImmediate(() => (fail ? done({ code: 14, details: 'unavailable' }) : done(null, 'a')));
    };
    const outcome = await generateLoad({
      mode: 'closed',
      concurrency: 2,
      rate: 0,
      count: 100,
      durationMs: null,
      warmupMs: 0,
      calls: [failing],
    });
    assert.deepEqual(outcome.statusCounts, { '0': 50, '14': 50 });
    assert.deepEqual(outcome.perBackend, { a: 50 });
    assert.equal(outcome.errorSamples.length, 5);
    assert.equal(outcome.errorSamples[0], '14 unavailable');
  });

  test('stops issuing at the end of the measured duration', async () => {
    const inFlight = { now: 0, max: 0 };
    const started = performance.now();
    const outcome = await generateLoad({
      mode: 'closed',
      concurrency: 2,
      rate: 0,
      count: null,
      durationMs: 60,
      warmupMs: 0,
      calls: [fakeChannel('a', 5, inFlight)],
    });
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 60, `ran ${elapsed} ms`);
    assert.ok(outcome.latenciesMs.length > 0);
    assert.ok(outcome.totalMs >= 60);
  });
});

describe('trace', () => {
  test('records each measured call: completion time, status and backend, in completion order', async () => {
    let n = 0;
    let clock = 0;
    const call: UnaryCall = (done) => {
      const i = n++;
      setImmediate(() => {
        if (i % 3 === 0) done({ code: 4, details: 'deadline' });
        else done(null, i % 3 === 1 ? 'a' : 'b');
      });
    };
    const outcome = await generateLoad({
      mode: 'closed',
      concurrency: 3,
      rate: 0,
      count: 90,
      durationMs: null,
      warmupMs: 5,
      calls: [call],
      trace: true,
      now: () => clock++,
    });
    const trace = outcome.trace!;
    assert.equal(trace.completedMs.length, 90);
    assert.equal(trace.codes.length, 90);
    assert.equal(trace.backendIndex.length, 90);
    assert.deepEqual([...trace.backends].sort(), ['a', 'b']);
    let failed = 0;
    const perBackend: Record<string, number> = {};
    for (let i = 0; i < 90; i++) {
      const code = trace.codes[i]!;
      if (code !== 0) {
        failed++;
        assert.equal(code, 4);
        assert.equal(trace.backendIndex[i], -1);
      } else {
        const address = trace.backends[trace.backendIndex[i]!]!;
        perBackend[address] = (perBackend[address] ?? 0) + 1;
      }
      if (i > 0) assert.ok(trace.completedMs[i]! >= trace.completedMs[i - 1]!);
      // Sent after the window started: latency ≤ completion time (both from the window start).
      assert.ok(outcome.latenciesMs[i]! <= trace.completedMs[i]!);
    }
    assert.equal(failed, outcome.statusCounts['4']);
    assert.deepEqual(perBackend, outcome.perBackend);
  });

  test('is absent unless asked for', async () => {
    const outcome = await generateLoad({
      mode: 'closed',
      concurrency: 1,
      rate: 0,
      count: 3,
      durationMs: null,
      warmupMs: 0,
      calls: [(done) => setImmediate(() => done(null, 'a'))],
    });
    assert.equal(outcome.trace, undefined);
  });
});

describe('open loop', () => {
  test('sends at the rate and stops at the count', async () => {
    const inFlight = { now: 0, max: 0 };
    const started = performance.now();
    const outcome = await generateLoad({
      mode: 'open',
      concurrency: 100,
      rate: 1000,
      count: 50,
      durationMs: null,
      warmupMs: 0,
      calls: [fakeChannel('a', 1, inFlight)],
    });
    const elapsed = performance.now() - started;
    assert.equal(outcome.latenciesMs.length, 50);
    // 50 calls at 1000/s are due over 49 ms; none may be sent early.
    assert.ok(elapsed >= 49, `finished after ${elapsed} ms`);
  });

  test('measures from the intended send time, so calls held back by the cap show the wait', async () => {
    const inFlight = { now: 0, max: 0 };
    // 1 call in flight, each taking 10 ms, offered 1000/s: the server keeps up with 100/s only.
    const outcome = await generateLoad({
      mode: 'open',
      concurrency: 1,
      rate: 1000,
      count: 20,
      durationMs: null,
      warmupMs: 0,
      calls: [fakeChannel('a', 10, inFlight)],
    });
    assert.equal(inFlight.max, 1);
    const latencies = [...outcome.latenciesMs];
    const last = latencies[latencies.length - 1]!;
    // The 20th call was due at 19 ms but could start only after 19 calls of ≥ 10 ms each.
    assert.ok(last >= 150, `last call measured ${last} ms`);
    assert.ok(outcome.maxSendLagMs >= 150, `max send lag ${outcome.maxSendLagMs} ms`);
  });
});

describe('options', () => {
  test('reject a run with no bound, no channel, or a zero concurrency', () => {
    const base = {
      mode: 'closed' as const,
      concurrency: 1,
      rate: 0,
      count: 1,
      durationMs: null,
      warmupMs: 0,
      calls: [(done: (e: null, a?: string) => void) => done(null)],
    };
    assert.throws(() => generateLoad({ ...base, count: null }), /at least one bound/);
    assert.throws(() => generateLoad({ ...base, calls: [] }), /calls/);
    assert.throws(() => generateLoad({ ...base, concurrency: 0 }), /concurrency/);
    assert.throws(() => generateLoad({ ...base, mode: 'open' }), /rate/);
  });
});
