import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { resultsMarkdown } from './results-md';
import { fakeBenchRun } from './testing';

describe('checkTargets', () => {
  const run = fakeBenchRun();
  const byId = new Map(run.targets.map((t) => [t.id, t]));

  test('reads each target off the ratios: met, missed, or not measured', () => {
    assert.equal(byId.get('throughput-vs-grpc-js-round_robin')?.met, true);
    assert.equal(byId.get('throughput-vs-nginx-grpc')?.met, false);
    assert.equal(byId.get('throughput-vs-haproxy-h2')?.met, true);
    assert.equal(byId.get('p99-vs-haproxy-h2')?.met, true);
    assert.equal(byId.get('evenness')?.met, true);
    assert.equal(byId.get('l4-imbalance')?.met, true);
    assert.equal(byId.get('pick-cost')?.met, true);
    assert.equal(byId.get('update-cost')?.met, true);
    assert.equal(byId.get('traffic-split-shares')?.met, null);
  });

  test('the update cost is the applied time: a first update within 20 ms and a 1% change within 5 ms', () => {
    const met = byId.get('update-cost')!;
    assert.match(met.measured, /^9\.00 ms first update applied; 2\.50 ms with 1% changed/);
    assert.match(met.measured, /12\.00 ms until all 10,000 connections are READY/);
    const slowDiff = fakeBenchRun({
      micro: { ...fakeBenchRun().micro!, applied10kMs: { first: 9, diff: 7 } },
    });
    assert.equal(slowDiff.targets.find((t) => t.id === 'update-cost')?.met, false);
    // Results stored before applied10kMs existed: the time until all READY decides.
    const stored = { ...fakeBenchRun().micro! };
    delete stored.applied10kMs;
    const older = fakeBenchRun({ micro: stored });
    assert.equal(older.targets.find((t) => t.id === 'update-cost')?.met, true);
  });

  test('explains a missed proxy target with the CPU per call of each process', () => {
    const missed = byId.get('throughput-vs-nginx-grpc')!;
    assert.match(missed.why, /^Missed\. CPU per call: ours 200 µs \(client 100 \+ backends 100\)/);
    assert.match(missed.why, /via nginx 260 µs \(client 100 \+ proxy 60 \+ backends 100\)/);
    assert.match(missed.why, /predicts 1\.30×/);
  });

  test('says why a target was not measured', () => {
    const skipped = fakeBenchRun({
      closed: fakeBenchRun().closed.filter((s) => s.name !== 'nginx-grpc'),
      skipped: [{ name: 'nginx-grpc', reason: 'nginx missing' }],
      micro: null,
      microError: 'boom',
    });
    const ids = new Map(skipped.targets.map((t) => [t.id, t]));
    assert.equal(ids.get('throughput-vs-nginx-grpc')?.met, null);
    assert.match(ids.get('throughput-vs-nginx-grpc')!.why, /nginx missing/);
    assert.match(ids.get('pick-cost')!.why, /boom/);
  });
});

describe('resultsMarkdown', () => {
  const md = resultsMarkdown(fakeBenchRun(), 'results/2030-01-02.svg', 'results/2030-01-02.json');

  test('links the chart and the JSON, and states machine and command', () => {
    assert.ok(md.includes('![throughput, p99 and evenness per scenario](results/2030-01-02.svg)'));
    assert.ok(md.includes('(results/2030-01-02.json)'));
    assert.ok(md.includes('`npm run bench`'));
    assert.ok(md.includes('| CPU | Test CPU, 2 cores |'));
  });

  test('lists every target with met or missed and the reason', () => {
    assert.match(md, /## Targets: \d+ met, \d+ missed, 1 not measured/);
    assert.match(
      md,
      /\| ≥ 2× nginx throughput \(same concurrency\) \| 1\.50× .* \| \*\*missed\*\* \| Missed\. CPU per call/,
    );
  });

  test('has the closed-loop table, evenness and micro sections', () => {
    assert.ok(md.includes('## Closed loop: 50 calls in flight (medians of 3 rounds)'));
    assert.ok(md.includes('| `haproxy-tcp` |'));
    assert.ok(md.includes('## Evenness'));
    assert.ok(md.includes('| `grpc-lb.weighted_round_robin` | n/a | 400.0 |'));
  });
});
