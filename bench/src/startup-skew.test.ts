import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BenchRun } from './bench-run';
import { formatStartupSkewTable } from './report';
import { resultsMarkdown } from './results-md';
import { NAMES } from './scenarios';
import {
  STARTUP_GRACE_CLIENT,
  STARTUP_GRACE_MS,
  STARTUP_SKEW,
  STARTUP_STAGGER_MS,
  aggregateStartupSkew,
  connectionsText,
  evenLargestShare,
  formatSortedShares,
  startupCases,
  startupClients,
  startupSkewReading,
  startupSkewWanted,
  summarizeStartupRound,
} from './startup-skew';
import { summaryLine } from './summary';
import { fakeBenchRun, fakeStartupReport } from './testing';

const TEN = Array.from({ length: 10 }, (_, i) => ({
  address: `127.0.0.${i + 2}:5000`,
  host: `127.0.0.${i + 2}`,
  port: 5000,
  labels: {},
}));
const ADDRESSES = TEN.map((b) => b.address);

describe('startup-skew selection and clients', () => {
  test('--scenarios selects the group by its name', () => {
    assert.equal(startupSkewWanted(null), true);
    assert.equal(startupSkewWanted([STARTUP_SKEW]), true);
    assert.equal(startupSkewWanted(['direct', 'failover']), false);
  });

  test('runs the whole set and its first 3 backends, each connecting together and staggered', () => {
    const cases = startupCases(TEN);
    assert.deepEqual(
      cases.map((c) => [c.backends.length, c.staggerMs]),
      [
        [10, 0],
        [10, STARTUP_STAGGER_MS],
        [3, 0],
        [3, STARTUP_STAGGER_MS],
      ],
    );
    assert.deepEqual(cases[2]!.backends, TEN.slice(0, 3));
    assert.deepEqual(
      startupCases(TEN.slice(0, 3)).map((c) => [c.backends.length, c.staggerMs]),
      [
        [3, 0],
        [3, STARTUP_STAGGER_MS],
      ],
    );
    assert.equal(connectionsText(0), 'together');
    assert.equal(connectionsText(5), '5 ms apart');
  });

  test("compares grpc-lb's round robin on static:, without and with a startup grace, with grpc-js's round_robin on ipv4:", () => {
    const [ours, grace, grpcJs] = startupClients(TEN);
    assert.equal(ours!.name, NAMES.ours);
    assert.ok(ours!.target.startsWith('static:///127.0.0.2:5000,'));
    assert.deepEqual(ours!.channelOptions, {});
    assert.equal(grace!.name, STARTUP_GRACE_CLIENT);
    assert.equal(grace!.name, 'grpc-lb-round_robin+grace');
    assert.equal(grace!.target, ours!.target);
    assert.deepEqual(JSON.parse(String(grace!.channelOptions['grpc.service_config'])), {
      loadBalancingConfig: [{ 'grpc-lb.round_robin': { startupGraceMs: STARTUP_GRACE_MS } }],
    });
    // Covers 10 backends connecting STARTUP_STAGGER_MS apart, with room to spare.
    assert.ok(STARTUP_GRACE_MS >= 2 * 9 * STARTUP_STAGGER_MS);
    assert.equal(grpcJs!.name, NAMES.grpcJsRoundRobin);
    assert.equal(grpcJs!.target, `ipv4:${ADDRESSES.join(',')}`);
    assert.deepEqual(JSON.parse(String(grpcJs!.channelOptions['grpc.service_config'])), {
      loadBalancingConfig: [{ round_robin: {} }],
    });
  });
});

describe('summarizeStartupRound', () => {
  test('sorts the shares, counts idle backends and names the busiest', () => {
    const r = summarizeStartupRound({
      round: 2,
      calls: 100,
      backends: ADDRESSES,
      perBackend: { [ADDRESSES[3]!]: 91, [ADDRESSES[0]!]: 9 },
      statusCounts: { '0': 100 },
      totalMs: 12,
    });
    assert.equal(r.shares.length, 10);
    assert.deepEqual(r.shares.slice(0, 3), [0.91, 0.09, 0]);
    assert.equal(r.largestShare, 0.91);
    assert.equal(r.busiestBackend, ADDRESSES[3]);
    assert.equal(r.idleBackends, 8);
    assert.equal(r.perBackend[ADDRESSES[9]!], 0);
    assert.equal(r.failed, 0);
    assert.deepEqual(r.failedByStatus, {});
  });

  test('shares are of the answered calls; failed calls are counted by status', () => {
    const r = summarizeStartupRound({
      round: 1,
      calls: 100,
      backends: ADDRESSES.slice(0, 3),
      perBackend: { [ADDRESSES[0]!]: 30, [ADDRESSES[1]!]: 30, [ADDRESSES[2]!]: 30 },
      statusCounts: { '0': 90, '14': 6, '4': 4 },
      totalMs: 12,
    });
    assert.deepEqual(r.shares, [1 / 3, 1 / 3, 1 / 3]);
    assert.equal(r.failed, 10);
    assert.deepEqual(r.failedByStatus, { UNAVAILABLE: 6, DEADLINE_EXCEEDED: 4 });
    assert.equal(r.idleBackends, 0);
  });

  test('a round with no answer has no largest share and every backend idle', () => {
    const r = summarizeStartupRound({
      round: 1,
      calls: 100,
      backends: ADDRESSES.slice(0, 3),
      perBackend: {},
      statusCounts: { '14': 100 },
      totalMs: 12,
    });
    assert.equal(r.largestShare, null);
    assert.equal(r.busiestBackend, null);
    assert.equal(r.idleBackends, 3);
    assert.deepEqual(r.shares, [0, 0, 0]);
  });
});

describe('aggregateStartupSkew', () => {
  const round = (
    n: number,
    perBackend: Record<string, number>,
    statusCounts: Record<string, number> = { '0': 100 },
  ) =>
    summarizeStartupRound({
      round: n,
      calls: 100,
      backends: ADDRESSES,
      perBackend,
      statusCounts,
      totalMs: 10,
    });

  test('mean and worst of the largest share, the even split, idle backends, failures', () => {
    const report = aggregateStartupSkew(
      { client: NAMES.ours, title: 't', backends: 10, staggerMs: 0, calls: 100 },
      [
        round(1, { [ADDRESSES[0]!]: 100 }),
        round(2, { [ADDRESSES[0]!]: 50, [ADDRESSES[1]!]: 50 }),
        round(3, { [ADDRESSES[1]!]: 60, [ADDRESSES[0]!]: 30 }, { '0': 90, '14': 10 }),
        round(4, {}, { '14': 100 }),
      ],
    );
    assert.equal(report.evenShare, 0.1);
    assert.equal(report.largestShare.worst, 1);
    assert.ok(Math.abs(report.largestShare.mean! - (1 + 0.5 + 60 / 90) / 3) < 1e-12);
    assert.equal(report.idleBackends.worst, 10);
    assert.equal(report.idleBackends.mean, (9 + 8 + 8 + 10) / 4);
    assert.equal(report.failedCalls, 110);
    assert.deepEqual(report.failedByStatus, { UNAVAILABLE: 110 });
    assert.equal(report.busiestBackends, 2);
    assert.deepEqual(report.elapsedMs, { mean: 10, worst: 10 });
  });

  test('mean and worst of the time from the first send to the last answer', () => {
    const timed = (n: number, totalMs: number) =>
      summarizeStartupRound({
        round: n,
        calls: 100,
        backends: ADDRESSES,
        perBackend: { [ADDRESSES[0]!]: 100 },
        statusCounts: { '0': 100 },
        totalMs,
      });
    const report = aggregateStartupSkew(
      { client: STARTUP_GRACE_CLIENT, title: 't', backends: 10, staggerMs: 20, calls: 100 },
      [timed(1, 200), timed(2, 260), timed(3, 230)],
    );
    assert.deepEqual(report.elapsedMs, { mean: 230, worst: 260 });
  });

  test('with no round answered there is no largest share', () => {
    const report = aggregateStartupSkew(
      { client: NAMES.ours, title: 't', backends: 10, staggerMs: 0, calls: 100 },
      [],
    );
    assert.deepEqual(report.largestShare, { mean: null, worst: null });
    assert.deepEqual(report.idleBackends, { mean: null, worst: null });
    assert.deepEqual(report.elapsedMs, { mean: null, worst: null });
  });

  test('the even split of 100 calls gives 10 % over 10 backends and 34 % over 3', () => {
    assert.equal(evenLargestShare(100, 10), 0.1);
    assert.equal(evenLargestShare(100, 3), 0.34);
    assert.ok(Number.isNaN(evenLargestShare(0, 3)));
  });
});

describe('startup-skew text', () => {
  test('shares are whole percentages, a run of equal ones written once with its count', () => {
    assert.equal(formatSortedShares([0.91, 0.09, 0, 0, 0, 0, 0, 0, 0, 0]), '91 9 0×8');
    assert.equal(formatSortedShares([1, 0, 0]), '100 0×2');
    assert.equal(formatSortedShares([0.34, 0.33, 0.33]), '34 33×2');
    assert.equal(formatSortedShares([]), '');
  });

  test('the reading gives each client per case against the even split, and a verdict', () => {
    const reports = [
      fakeStartupReport(NAMES.ours, 10, [0.1, 0.1]),
      fakeStartupReport(NAMES.grpcJsRoundRobin, 10, [1, 1]),
      fakeStartupReport(NAMES.ours, 10, [1, 0.9], 5),
      fakeStartupReport(NAMES.grpcJsRoundRobin, 10, [1, 1], 5),
    ];
    assert.equal(
      startupSkewReading(reports),
      'Largest share of the first 100 calls of a new channel (worst; time from the first send ' +
        'to the last answer), mean over rounds — ' +
        '10 backends connecting together: `grpc-lb-round_robin` 10 % (worst 10 %; 20 ms), ' +
        '`grpc-js-round_robin` 100 % (worst 100 %; 20 ms), even split 10 %; ' +
        '10 backends connecting 5 ms apart: `grpc-lb-round_robin` 95 % (worst 100 %; 20 ms), ' +
        '`grpc-js-round_robin` 100 % (worst 100 %; 20 ms), even split 10 % — so ' +
        '`grpc-lb-round_robin` sent most of it to one backend when connecting 5 ms apart ' +
        '(10 backends); ' +
        '`grpc-js-round_robin` sent most of the burst to one backend in every case.',
    );
    assert.match(
      startupSkewReading([
        ...reports,
        fakeStartupReport(NAMES.ours, 3, [0.34]),
        fakeStartupReport(NAMES.ours, 3, [1], 5),
      ]),
      /`grpc-lb-round_robin` sent most of it to one backend when connecting 5 ms apart \(10 and 3 backends\);/,
    );
    assert.match(
      startupSkewReading([fakeStartupReport(NAMES.ours, 10, [0.1])]),
      /— so `grpc-lb-round_robin` spread it in every case\.$/,
    );
    assert.equal(startupSkewReading([]), 'Not measured.');
  });

  test('with the grace client beside the plain one, the reading says what the grace buys and costs', () => {
    const reports = [
      fakeStartupReport(NAMES.ours, 10, [0.3, 0.1], 0, 15),
      fakeStartupReport(STARTUP_GRACE_CLIENT, 10, [0.1, 0.1], 0, 25),
      fakeStartupReport(NAMES.grpcJsRoundRobin, 10, [1, 1], 0, 14),
      fakeStartupReport(NAMES.ours, 10, [1, 0.9], 20, 30),
      fakeStartupReport(STARTUP_GRACE_CLIENT, 10, [0.1, 0.11], 20, 230),
      fakeStartupReport(NAMES.grpcJsRoundRobin, 10, [1, 1], 20, 31),
    ];
    const reading = startupSkewReading(reports);
    assert.match(
      reading,
      /10 backends connecting 20 ms apart: `grpc-lb-round_robin` 95 % \(worst 100 %; 30 ms\), `grpc-lb-round_robin\+grace` 11 % \(worst 11 %; 230 ms\), `grpc-js-round_robin` 100 % \(worst 100 %; 31 ms\), even split 10 %/,
    );
    assert.match(reading, /`grpc-lb-round_robin\+grace` spread it in every case;/);
    assert.match(
      reading,
      /; the grace \(`startupGraceMs` 500\) buys an even spread at the price of a later start — the first calls wait until every connection has settled or the grace has ended: the 100 calls took 200 ms longer \(mean\) than on `grpc-lb-round_robin` with 10 backends connecting 20 ms apart, the most of any case\.$/,
    );
    const skewedGrace = startupSkewReading([
      fakeStartupReport(NAMES.ours, 3, [1], 20, 30),
      fakeStartupReport(STARTUP_GRACE_CLIENT, 3, [1], 20, 530),
    ]);
    assert.match(skewedGrace, /is meant to buy an even spread/);
    assert.match(
      skewedGrace,
      /took 500 ms longer \(mean\) than on `grpc-lb-round_robin` with 3 backends/,
    );
    // Without the plain client beside it there is nothing to compare with.
    assert.ok(
      !startupSkewReading([fakeStartupReport(STARTUP_GRACE_CLIENT, 10, [0.1])]).includes('grace ('),
    );
  });
});

describe('startup-skew outputs', () => {
  const reports = [
    fakeStartupReport(NAMES.ours, 10, [1, 0.9, 1]),
    fakeStartupReport(STARTUP_GRACE_CLIENT, 10, [0.1, 0.1, 0.1], 0, 230),
    fakeStartupReport(NAMES.grpcJsRoundRobin, 10, [1, 1, 1]),
    fakeStartupReport(NAMES.ours, 3, [1, 1, 1]),
    fakeStartupReport(STARTUP_GRACE_CLIENT, 3, [0.34, 0.34, 0.34], 0, 60),
    fakeStartupReport(NAMES.grpcJsRoundRobin, 3, [1, 1, 1]),
  ];
  const run = fakeBenchRun({ startup: reports });
  /** A run stored before the group existed: no `startup` at all. */
  const old = (): BenchRun => {
    const stored: Partial<BenchRun> = fakeBenchRun();
    delete stored.startup;
    return stored as BenchRun;
  };

  test('the console table has a row per client × set with its rounds', () => {
    const lines = formatStartupSkewTable(reports).split('\n');
    assert.equal(lines.length, 2 + reports.length);
    assert.match(
      lines[0]!,
      /client\s+backends\s+connecting\s+rounds\s+largest share mean\s+worst\s+even split\s+idle mean\/worst\s+failed\s+elapsed ms mean\/worst\s+shares/,
    );
    assert.match(
      lines[2]!,
      /^grpc-lb-round_robin\s+10\s+together\s+3\s+96\.7 %\s+100\.0 %\s+10\.0 %\s+6\.0\/9\s+0\s+20\/20\s+100 0×9 \| 90 2 1×8 \| 100 0×9$/,
    );
    assert.match(
      lines[3]!,
      /^grpc-lb-round_robin\+grace\s+10\s+together\s+3\s+10\.0 %\s+10\.0 %\s+10\.0 %\s+0\.0\/0\s+0\s+230\/230\s+10×10 \| 10×10 \| 10×10$/,
    );
  });

  test('the last JSON line has a compact `startup` entry per client × set', () => {
    const line = JSON.parse(JSON.stringify(summaryLine(run))) as Record<string, unknown>;
    const startup = line['startup'] as Record<string, unknown>[];
    assert.equal(startup.length, 6);
    assert.deepEqual(startup[0], {
      client: NAMES.ours,
      backends: 10,
      staggerMs: 0,
      rounds: 3,
      calls: 100,
      largestShareMean: 0.9667,
      largestShareWorst: 1,
      largestShares: [1, 0.9, 1],
      evenShare: 0.1,
      idleBackendsMean: 6,
      idleBackendsWorst: 9,
      failedCalls: 0,
      elapsedMsMean: 20,
      elapsedMsWorst: 20,
    });
    assert.equal(startup[1]!['client'], STARTUP_GRACE_CLIENT);
    assert.equal(startup[1]!['elapsedMsMean'], 230);
    assert.equal(startup[3]!['evenShare'], 0.34);
    const before = JSON.parse(JSON.stringify(summaryLine(old()))) as Record<string, unknown>;
    assert.deepEqual(before['startup'], []);
  });

  test('RESULTS.md has a Startup skew section with the table and one sentence of reading', () => {
    const md = resultsMarkdown(run, 'results/x.svg', 'results/x.json');
    assert.match(md, /## Startup skew: the first 100 calls of a new channel/);
    assert.match(
      md,
      /\| `grpc-js-round_robin` \| 3 \| together \| 3 \| \*\*100\.0 %\*\* \| 100\.0 % \| 34\.0 % \| 2\.0 \/ 2 \| 0 \| 20 \/ 20 \| 100 0×2; 100 0×2; 100 0×2 \|/,
    );
    assert.match(
      md,
      /\| `grpc-lb-round_robin\+grace` \| 10 \| together \| 3 \| \*\*10\.0 %\*\* \| 10\.0 % \| 10\.0 % \| 0\.0 \/ 0 \| 0 \| 230 \/ 230 \| 10×10; 10×10; 10×10 \|/,
    );
    assert.match(
      md,
      /`grpc-lb-round_robin\+grace` is grpc-lb's round robin with `startupGraceMs` 500/,
    );
    assert.match(
      md,
      /the grace \(`startupGraceMs` 500\) buys an even spread at the price of a later start/,
    );
    assert.match(
      md,
      /\nLargest share of the first 100 calls of a new channel \(worst; time from the first send to the last answer\), mean over rounds — /,
    );
  });

  test('a run stored without the group renders without the section', () => {
    const md = resultsMarkdown(old(), 'results/x.svg', 'results/x.json');
    assert.ok(!md.includes('## Startup skew'));
  });
});
