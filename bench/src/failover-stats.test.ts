import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type RecoveryOptions,
  aggregateFailover,
  medianRecovery,
  recovery,
  retryLoad,
  shareThreshold,
  timeline,
  windowStats,
} from './failover-stats';
import { type FakeCall, FAULTY, fakeCallLog, fakeFailoverReport } from './testing';

const A = '127.0.0.2:5000';

describe('windowStats', () => {
  const log = fakeCallLog([
    { at: 10, latencyMs: 2, backend: A },
    { at: 20, latencyMs: 4, backend: FAULTY },
    { at: 100, latencyMs: 1000, code: 4 },
    { at: 110, latencyMs: 3, code: 14 },
    { at: 120, latencyMs: 5, backend: A },
    { at: 130, latencyMs: 6, backend: A },
    { at: 200, latencyMs: 1, backend: FAULTY },
  ]);

  test('takes the calls COMPLETING in [from, to), failed ones included in the latencies', () => {
    const w = windowStats(log, 100, 200, FAULTY);
    assert.equal(w.calls, 4);
    assert.equal(w.failed, 2);
    assert.deepEqual(w.failedByStatus, { DEADLINE_EXCEEDED: 1, UNAVAILABLE: 1 });
    assert.equal(w.maxMs, 1000);
    assert.equal(w.p50Ms, 5);
    assert.equal(w.p99Ms, 1000);
    // Two successful calls, neither from the faulty backend.
    assert.equal(w.badShare, 0);
  });

  test("gives the faulty backend's share of the successful calls", () => {
    const w = windowStats(log, 0, Infinity, FAULTY);
    assert.equal(w.calls, 7);
    assert.equal(w.badShare, 2 / 5);
  });

  test('an empty window has no latencies and no share', () => {
    const w = windowStats(log, 300, 400, FAULTY);
    assert.equal(w.calls, 0);
    assert.ok(Number.isNaN(w.p99Ms));
    assert.equal(w.badShare, null);
  });

  test('a faulty backend that never answered has a share of 0', () => {
    const w = windowStats(log, 0, Infinity, '127.0.0.9:5000');
    assert.equal(w.badShare, 0);
  });
});

describe('timeline', () => {
  test('puts the fault on a slice boundary and counts by completion time', () => {
    const log = fakeCallLog([
      { at: 40, latencyMs: 1, backend: A }, // before the first slice: left out
      { at: 60, latencyMs: 1, backend: FAULTY },
      { at: 149, latencyMs: 1, backend: A },
      { at: 150, latencyMs: 1, code: 14 },
      { at: 260, latencyMs: 1, backend: A },
    ]);
    const t = timeline(log, 150, 100, FAULTY);
    assert.equal(t.startMs, 50);
    assert.equal(t.faultBucket, 1);
    assert.deepEqual(t.failed, [0, 1, 0]);
    assert.deepEqual(t.ok, [2, 0, 1]);
    assert.deepEqual(t.bad, [1, 0, 0]);
  });
});

/** Calls every `everyMs` from `from` to `to`, round robin over `backends` (null = a failure). */
function steady(
  from: number,
  to: number,
  everyMs: number,
  backends: readonly (string | null)[],
): FakeCall[] {
  const calls: FakeCall[] = [];
  let i = 0;
  for (let at = from; at < to; at += everyMs) {
    const backend = backends[i++ % backends.length]!;
    calls.push(backend === null ? { at, latencyMs: 2, code: 14 } : { at, latencyMs: 2, backend });
  }
  return calls;
}

const OPTIONS: RecoveryOptions = {
  faultAtMs: 1000,
  issueEndMs: 4000,
  bucketMs: 250,
  tailMs: 1250,
  badBackend: FAULTY,
  shareThreshold: shareThreshold(4),
  minCalls: 20,
};
const HEALTHY = [A, '127.0.0.4:5000', '127.0.0.5:5000'];

describe('recovery', () => {
  test('a killed backend: recovered at the last failed call after the fault', () => {
    const calls = [
      ...steady(0, 1000, 1, [...HEALTHY, FAULTY]),
      { at: 1003, latencyMs: 2, code: 14 },
      { at: 1040, latencyMs: 30, code: 14 },
      ...steady(1000, 4000, 1, HEALTHY),
    ].sort((a, b) => a.at - b.at);
    const r = recovery(fakeCallLog(calls), OPTIONS);
    assert.equal(r.lastFailureMs, 40);
    assert.equal(r.shareSettledMs, null);
    assert.equal(r.stillFailing, false);
    assert.equal(r.tailFailures, 0);
    assert.equal(r.recoveryMs, 40);
  });

  test('nothing failed and the share never rose: recovery 0', () => {
    const r = recovery(fakeCallLog(steady(0, 4000, 1, [...HEALTHY, FAULTY])), {
      ...OPTIONS,
      badBackend: '127.0.0.9:5000',
    });
    assert.equal(r.lastFailureMs, null);
    assert.equal(r.recoveryMs, 0);
  });

  test('errors to the end of the run: not recovered (still failing)', () => {
    const calls = [
      ...steady(0, 1000, 1, [...HEALTHY, FAULTY]),
      ...steady(1000, 4000, 1, [...HEALTHY, FAULTY, ...HEALTHY, null]),
    ];
    const r = recovery(fakeCallLog(calls), OPTIONS);
    assert.equal(r.stillFailing, true);
    assert.equal(r.recoveryMs, null);
  });

  test('a hung backend holding every caller: failing sends once per deadline are still failing', () => {
    // All callers stuck: 50 calls sent at 1000 and at 2000 ms fail a deadline later, and nothing
    // is sent in the last 500 ms. A tail of one deadline (+ a slice) still sees the last batch.
    const calls: FakeCall[] = [...steady(0, 1000, 1, [...HEALTHY, FAULTY])];
    for (const sent of [1000, 2000, 3000]) {
      for (let i = 0; i < 50; i++) calls.push({ at: sent + 1000, latencyMs: 1000, code: 4 });
    }
    const r = recovery(fakeCallLog(calls), OPTIONS);
    assert.equal(r.stillFailing, true);
    assert.equal(r.tailFailures, 50);
    assert.equal(r.recoveryMs, null);
    const shortTail = recovery(fakeCallLog(calls), { ...OPTIONS, tailMs: 500 });
    assert.equal(shortTail.stillFailing, false, 'why the tail must be at least a deadline');
  });

  test('a hung backend ejected after its first deadline failures: recovered one deadline later', () => {
    const calls: FakeCall[] = [
      ...steady(0, 1000, 1, [...HEALTHY, FAULTY]),
      ...steady(1000, 4000, 1, HEALTHY),
    ];
    for (let i = 0; i < 20; i++) calls.push({ at: 2000 + i * 5, latencyMs: 1000, code: 4 });
    calls.sort((a, b) => a.at - b.at);
    const r = recovery(fakeCallLog(calls), OPTIONS);
    assert.equal(r.stillFailing, false);
    assert.equal(r.recoveryMs, 1095);
  });

  test('a slow backend keeping its share: not recovered (still over its share)', () => {
    const calls = steady(0, 4000, 1, [...HEALTHY, FAULTY]);
    const r = recovery(fakeCallLog(calls), OPTIONS);
    assert.equal(r.lastFailureMs, null);
    assert.equal(r.stillOverShare, true);
    assert.equal(r.recoveryMs, null);
  });

  test('a slow backend avoided after 500 ms: recovered at the end of its last slice over the share', () => {
    const calls = [
      ...steady(0, 1500, 1, [...HEALTHY, FAULTY]),
      // 1 call in 20 (5 %) afterwards: under half its fair share of 25 %.
      ...steady(1500, 4000, 1, [
        ...HEALTHY,
        ...HEALTHY,
        ...HEALTHY,
        ...HEALTHY,
        ...HEALTHY,
        A,
        A,
        A,
        A,
        FAULTY,
      ]),
    ];
    const r = recovery(fakeCallLog(calls), OPTIONS);
    assert.equal(r.stillOverShare, false);
    assert.equal(r.shareSettledMs, 500);
    assert.equal(r.recoveryMs, 500);
  });

  test('slices with too few calls say nothing about shares', () => {
    const calls = steady(0, 4000, 100, [...HEALTHY, FAULTY]);
    const r = recovery(fakeCallLog(calls), OPTIONS);
    assert.equal(r.shareSettledMs, null);
    assert.equal(r.recoveryMs, 0);
  });
});

describe('medianRecovery', () => {
  test('"not recovered" (null) counts as infinitely late', () => {
    assert.equal(medianRecovery([100, null, 200]), 200);
    assert.equal(medianRecovery([null, null, 5]), null);
    assert.equal(medianRecovery([100, 300]), 200);
    assert.equal(medianRecovery([100, null]), null);
    assert.equal(medianRecovery([]), null);
  });
});

describe('aggregateFailover', () => {
  test('medians over rounds, failures by status summed', () => {
    const one = fakeFailoverReport('errors-50', 'p', 100);
    const two = fakeFailoverReport('errors-50', 'p', 300);
    const three = fakeFailoverReport('errors-50', 'p', null);
    const rounds = [one, two, three].map((r) => r.rounds[0]!);
    const report = aggregateFailover(one, rounds);
    assert.equal(report.rounds.length, 3);
    assert.equal(report.median.failed, two.rounds[0]!.whole.failed);
    assert.equal(
      report.failedByStatus['UNAVAILABLE'],
      rounds.reduce((n, r) => n + r.whole.failed, 0),
    );
    assert.equal(report.recoveredRounds, 2);
    // Rounds recovered at ~100 and ~300 ms and one never: the median is the 300 ms one.
    assert.equal(report.median.recoveryMs, two.rounds[0]!.recovery.recoveryMs);
    assert.ok(report.median.recoveryMs !== null && report.median.recoveryMs < 300);
  });

  test('one run: the fault window holds the failures, the faulty backend drained', () => {
    const report = fakeFailoverReport('sigkill', 'p', 100);
    const round = report.rounds[0]!;
    assert.equal(round.before.failed, 0);
    assert.ok(round.window.failed > 0);
    assert.equal(round.window.failed, round.whole.failed);
    assert.equal(round.window.badShare, 0);
    assert.ok(round.before.badShare !== null && Math.abs(round.before.badShare - 0.25) < 0.01);
  });
});

describe('retryLoad: attempts the backends received against the calls the client made', () => {
  const B = '127.0.0.4:5000';
  const C = '127.0.0.5:5000';
  const cases: [string, Record<string, number>, number, number, number][] = [
    // name, attempts per backend, calls, extraShare, healthyExtraShare
    [
      'no retries: one attempt per call',
      { [A]: 250, [FAULTY]: 250, [B]: 250, [C]: 250 },
      1000,
      0,
      0,
    ],
    // Every call on the faulty backend retried once on a healthy one: its quarter spread over three.
    [
      'each failed call retried once elsewhere',
      { [A]: 333, [FAULTY]: 250, [B]: 334, [C]: 333 },
      1000,
      0.25,
      1000 / 750 - 1,
    ],
    // A budget of 20 %: 200 retries, 50 of them landing on the faulty backend again.
    ['a 20 % budget', { [A]: 300, [FAULTY]: 300, [B]: 300, [C]: 300 }, 1000, 0.2, 900 / 750 - 1],
  ];
  for (const [name, attempts, calls, extra, healthy] of cases) {
    test(name, () => {
      const load = retryLoad(calls, 7, attempts, FAULTY);
      assert.equal(load.calls, calls);
      assert.equal(load.failed, 7);
      assert.equal(
        load.attempts,
        Object.values(attempts).reduce((a, b) => a + b, 0),
      );
      assert.equal(load.badAttempts, attempts[FAULTY]);
      assert.ok(Math.abs(load.extraShare - extra) < 1e-9, `${load.extraShare}`);
      assert.ok(Math.abs(load.healthyExtraShare - healthy) < 1e-9, `${load.healthyExtraShare}`);
    });
  }

  test('no calls: the shares are NaN, not a division by zero passed off as a number', () => {
    const load = retryLoad(0, 0, { [A]: 0, [FAULTY]: 0 }, FAULTY);
    assert.ok(Number.isNaN(load.extraShare) && Number.isNaN(load.healthyExtraShare));
  });

  test('a faulty backend with no count is an error naming it', () => {
    assert.throws(() => retryLoad(10, 0, { [A]: 10 }, FAULTY), /127\.0\.0\.3:5000/);
  });

  test('aggregateFailover takes each field’s median when every round measured it, none otherwise', () => {
    const base = fakeFailoverReport('errors-100', 'p', null);
    const round = base.rounds[0]!;
    const loads = [0.1, 0.3, 0.2].map((x) =>
      retryLoad(1000, 5, { [A]: 500 * (1 + x), [FAULTY]: 500 * (1 + x) }, FAULTY),
    );
    const report = aggregateFailover(
      base,
      loads.map((load) => ({ ...round, load })),
    );
    assert.ok(Math.abs(report.load!.extraShare - 0.2) < 1e-9);
    assert.equal(report.load!.attempts, 1200);
    assert.equal(aggregateFailover(base, [{ ...round, load: loads[0]! }, round]).load, undefined);
  });
});
