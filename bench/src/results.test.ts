import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { aggregate, otherLoad, roundOtherLoad, roundShares, summarizeRound } from './results';
import { BACKENDS, fakeDef, fakeRecord, fakeReport } from './testing';

describe('summarizeRound', () => {
  test('gives CPU per call of each process and the load of everything else', () => {
    const record = fakeRecord(1, {
      rps: 1000,
      latencyMs: 5,
      clientCpuUs: 200,
      proxyCpuUs: 50,
      backendCpuUs: 100,
    });
    // The machine was busy for 0.5 s more than the run's own processes, in a 1 s window.
    record.machineCpuMs = 200 + 50 + 100 + 500;
    const round = summarizeRound(record, BACKENDS);
    assert.equal(round.clientCpuUs, 200);
    assert.equal(round.proxyCpuUs, 50);
    assert.equal(round.backendCpuUs, 100);
    assert.equal(round.otherCores, 0.5);
    assert.equal(roundOtherLoad([record, fakeRecord(1, { rps: 10, latencyMs: 1 })]), 0.5);
  });
});

describe('aggregate', () => {
  test('takes medians over the rounds it is given and keeps discarded rounds apart', () => {
    const def = fakeDef('grpc-lb-round_robin');
    const report = aggregate(
      def,
      { mode: 'closed', concurrency: 50, rate: null },
      [1000, 3000, 2000].map((rps, i) => fakeRecord(i + 1, { rps, latencyMs: 1 })),
      [fakeRecord(4, { rps: 10, latencyMs: 100 })],
    );
    assert.equal(report.median.rps, 2000);
    assert.equal(report.median.p99Ms, 1);
    assert.equal(report.merged.count, 6000);
    assert.deepEqual(
      report.discardedRounds.map((r) => r.round),
      [4],
    );
    assert.deepEqual(report.statusCounts, { OK: 6000 });
    assert.equal(otherLoad([report])?.median, 0);
  });
});

describe('roundShares', () => {
  test('is infinite when any round left a backend idle, even if the rounds together look even', () => {
    const report = fakeReport('haproxy-tcp', [
      { rps: 30, latencyMs: 1, perBackend: { [BACKENDS[0]!]: 30 } },
      { rps: 30, latencyMs: 1, perBackend: { [BACKENDS[1]!]: 30 } },
      { rps: 30, latencyMs: 1, perBackend: { [BACKENDS[2]!]: 30 } },
    ]);
    assert.equal(report.shares.maxMinShare, 1);
    const shares = roundShares(report);
    assert.equal(shares.maxMinShare, null);
    assert.equal(shares.busiestShare, 1);
    assert.equal(shares.idleBackends, 2);
  });
});
