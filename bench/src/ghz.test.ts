import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseArgs } from './args';
import {
  type CalibrationRound,
  type CalibrationSide,
  GhzReportError,
  aggregateCalibration,
  calibrationRatios,
  ghzArgs,
  ghzSide,
  ghzWanted,
  parseGhzReport,
  perRoundRatios,
  waitedChildrenTicks,
} from './ghz';
import { formatGhzCalibration } from './report';
import { resultsMarkdown } from './results-md';
import { summaryLine } from './summary';
import { fakeBenchRun } from './testing';

/** The shape ghz 0.121.0 prints with --format json (details cut short; durations in ns). */
const GHZ_JSON = JSON.stringify({
  date: '2026-11-22T03:18:16Z',
  endReason: 'timeout',
  options: { call: 'grpclb.test.Greeter.SayHello', concurrency: 50, connections: 1 },
  count: 10212,
  total: 2121901946,
  average: 9014173,
  fastest: 295972,
  slowest: 82709329,
  rps: 4812.663478277426,
  errorDistribution: {
    'rpc error: code = Unavailable desc = rare': 1,
    'rpc error: code = Unavailable desc = use of closed network connection': 47,
  },
  statusCodeDistribution: { OK: 10164, Unavailable: 48 },
  latencyDistribution: [
    { percentage: 10, latency: 2823934 },
    { percentage: 25, latency: 4103173 },
    { percentage: 50, latency: 5752710 },
    { percentage: 75, latency: 10119792 },
    { percentage: 90, latency: 17809076 },
    { percentage: 95, latency: 25209319 },
    { percentage: 99, latency: 56934602 },
  ],
  histogram: [{ mark: 0.000295972, count: 1, frequency: 0.0001 }],
  details: [
    { timestamp: '2026-11-22T03:18:14.610632259Z', latency: 39616107, error: '', status: 'OK' },
  ],
});

describe('ghzArgs', () => {
  const args = ghzArgs({
    protoDir: '/repo/test/protos',
    address: '127.0.0.2:5000',
    concurrency: 50,
    durationMs: 1500,
    deadlineMs: 10_000,
  });
  const after = (flag: string) => args[args.indexOf(flag) + 1];

  test('one connection, the concurrency, the duration in ms, the backend last', () => {
    assert.equal(after('-c'), '50');
    assert.equal(after('--connections'), '1');
    assert.equal(after('-z'), '1500ms');
    assert.equal(after('--timeout'), '10000ms');
    assert.equal(after('--import-paths'), '/repo/test/protos');
    assert.equal(after('--call'), 'grpclb.test.Greeter.SayHello');
    assert.equal(after('--format'), 'json');
    assert.equal(args[args.length - 1], '127.0.0.2:5000');
  });

  test('waits for the calls in flight at the end instead of cutting them off as errors', () => {
    assert.equal(after('--duration-stop'), 'wait');
  });
});

describe('parseGhzReport', () => {
  test('reads throughput, ns durations as ms, percentiles and status codes', () => {
    const r = parseGhzReport(GHZ_JSON);
    assert.equal(r.count, 10212);
    assert.equal(r.rps, 4812.663478277426);
    assert.ok(Math.abs(r.totalMs - 2121.901946) < 1e-9);
    assert.ok(Math.abs(r.p50Ms - 5.75271) < 1e-9);
    assert.ok(Math.abs(r.p99Ms - 56.934602) < 1e-9);
    assert.ok(Math.abs(r.percentiles['p90']! - 17.809076) < 1e-9);
    assert.ok(Math.abs(r.fastestMs - 0.295972) < 1e-9);
    assert.deepEqual(r.statusCounts, { OK: 10164, Unavailable: 48 });
    assert.equal(r.endReason, 'timeout');
  });

  test('counts every non-OK status as an error and lists the commonest messages first', () => {
    const r = parseGhzReport(GHZ_JSON);
    assert.equal(r.errors, 48);
    assert.match(r.errorSamples[0]!, /^47× .*closed network connection/);
    assert.equal(r.errorSamples.length, 2);
  });

  test('a percentile ghz could not compute ({0, 0}) is absent, not 0 ms', () => {
    const r = parseGhzReport(
      JSON.stringify({
        count: 0,
        total: 1e9,
        rps: 0,
        statusCodeDistribution: {},
        latencyDistribution: [{ percentage: 0, latency: 0 }],
      }),
    );
    assert.ok(Number.isNaN(r.p50Ms));
    assert.ok(Number.isNaN(r.p99Ms));
    assert.equal(r.errors, 0);
    assert.deepEqual(r.percentiles, {});
  });

  test('refuses output that is not a ghz report', () => {
    assert.throws(() => parseGhzReport('Error: connection refused\n'), GhzReportError);
    assert.throws(() => parseGhzReport('[]'), /not a JSON object/);
    assert.throws(() => parseGhzReport(JSON.stringify({ count: 1, rps: 1 })), /"total"/);
  });
});

describe('waitedChildrenTicks', () => {
  test('adds cutime and cstime (fields 16 and 17), whatever the command name holds', () => {
    const line =
      '4321 (s h) (x)) S 1 4321 4321 0 -1 4194304 10 20 0 0 1 2 340 56 20 0 1 0 100 0 0\n';
    assert.equal(waitedChildrenTicks(line), 340 + 56);
  });

  test('refuses a line without them', () => {
    assert.throws(() => waitedChildrenTicks(''), /stat line/);
    assert.throws(() => waitedChildrenTicks('1 (sh) S 1 2 3'), /too short/);
  });
});

function side(rps: number, p50Ms: number, p99Ms: number, extra: Partial<CalibrationSide> = {}) {
  return {
    count: rps,
    rps,
    p50Ms,
    p99Ms,
    errors: 0,
    clientCpuUs: 100,
    backendCpuUs: 50,
    otherCores: 0.1,
    ...extra,
  };
}

function round(n: number, ghz: CalibrationSide, ours: CalibrationSide): CalibrationRound {
  return { round: n, first: n % 2 === 1 ? 'ghz' : 'ours', ghz, ours };
}

describe('calibrationRatios', () => {
  const rounds = [
    round(1, side(1000, 5, 20), side(900, 5.5, 30)),
    round(2, side(2000, 4, 10), side(2000, 4, 10)),
    round(3, side(1000, 5, 20, { clientCpuUs: 50 }), side(500, 10, 60, { clientCpuUs: 200 })),
  ];

  test('ours / ghz per round, pairing the two runs of each round', () => {
    assert.deepEqual(perRoundRatios(rounds, 'rps'), [0.9, 1, 0.5]);
    assert.deepEqual(perRoundRatios(rounds, 'p99Ms'), [1.5, 1, 3]);
  });

  test('the median of the per-round ratios, not the ratio of the medians', () => {
    const r = calibrationRatios(rounds);
    assert.equal(r.rps, 0.9);
    assert.equal(r.p50, 1.1);
    assert.equal(r.p99, 1.5);
    assert.equal(r.clientCpu, 1);
    const skewed = [
      round(1, side(1000, 1, 10), side(1000, 1, 30)),
      round(2, side(100, 1, 100), side(100, 1, 100)),
      round(3, side(100, 1, 20), side(100, 1, 20)),
    ];
    // Per round 3, 1, 1 → 1; the ratio of the medians would be 30 / 20 = 1.5.
    assert.equal(calibrationRatios(skewed).p99, 1);
  });

  test('a round with a missing or zero ghz number is left out; none left: null', () => {
    const broken = [
      round(1, side(0, NaN, 20, { clientCpuUs: null }), side(900, 5, 30)),
      round(2, side(1000, 5, 20), side(800, 5, 20)),
    ];
    assert.deepEqual(perRoundRatios(broken, 'rps'), [0.8]);
    assert.deepEqual(perRoundRatios(broken, 'p50Ms'), [1]);
    assert.deepEqual(perRoundRatios(broken, 'clientCpuUs'), [1]);
    assert.deepEqual(calibrationRatios([]), { rps: null, p50: null, p99: null, clientCpu: null });
  });
});

describe('ghzSide', () => {
  test('CPU per call from the run totals; other load is what neither ghz nor the backend used', () => {
    const r = parseGhzReport(GHZ_JSON);
    const s = ghzSide(r, {
      ghzCpuMs: 1021.2,
      backendCpuMs: 510.6,
      machineCpuMs: 2500,
      wallMs: 2000,
    });
    assert.ok(Math.abs(s.clientCpuUs! - 100) < 1e-9);
    assert.ok(Math.abs(s.backendCpuUs! - 50) < 1e-9);
    assert.ok(Math.abs(s.otherCores! - (2500 - 1021.2 - 510.6) / 2000) < 1e-9);
    assert.equal(s.errors, 48);
    const unknown = ghzSide(r, { ghzCpuMs: NaN, backendCpuMs: NaN, machineCpuMs: NaN, wallMs: 1 });
    assert.equal(unknown.clientCpuUs, null);
    assert.equal(unknown.otherCores, null);
  });
});

function fakeCalibration() {
  return aggregateCalibration(
    {
      ghzVersion: '0.121.0',
      ghzCommand: 'ghz --insecure 127.0.0.2:5000',
      ourTarget: 'ipv4:127.0.0.2:5000',
      backend: '127.0.0.2:5000',
      concurrency: 50,
      durationMs: 5000,
      warmupMs: 1000,
      deadlineMs: 10_000,
    },
    [
      round(1, side(8000, 4, 20), side(4000, 8, 50, { errors: 2, otherCores: 0.7 })),
      round(2, side(6000, 5, 30), side(4200, 7, 40)),
    ],
    { ghz: { OK: 70_000 }, ours: { OK: 41_998, UNAVAILABLE: 2 } },
    { ghz: [], ours: ['14 boom'] },
  );
}

describe('aggregateCalibration', () => {
  const g = fakeCalibration();

  test('medians per client, errors summed, the worst other load', () => {
    assert.equal(g.median.ghz.rps, 7000);
    assert.equal(g.median.ours.rps, 4100);
    assert.equal(g.median.ours.p99Ms, 45);
    assert.deepEqual(g.errors, { ghz: 0, ours: 2 });
    assert.equal(g.maxOtherCores, 0.7);
    assert.equal(g.ratios.rps, (0.5 + 0.7) / 2);
  });

  test('reported on stdout, in RESULTS.md and in the summary line', () => {
    const text = formatGhzCalibration(g);
    assert.match(text, /ghz 0\.121\.0\s+7000/);
    assert.match(text, /ours \/ ghz\s+0\.600×/);
    assert.match(text, /ours error: 14 boom/);

    const run = fakeBenchRun({ ghz: g });
    const md = resultsMarkdown(run, 'x.svg', 'x.json');
    assert.match(md, /## ghz calibration/);
    assert.match(md, /\| ours \/ ghz \| \*\*0\.600×\*\*/);
    assert.match(md, /reached 0\.600× ghz's throughput/);

    const line = JSON.parse(JSON.stringify(summaryLine(run))) as {
      ghz: { ratios: { rps: number }; ours: { errors: number }; ghz: { rps: number } };
    };
    assert.equal(line.ghz.ratios.rps, 0.6);
    assert.equal(line.ghz.ours.errors, 2);
    assert.equal(line.ghz.ghz.rps, 7000);
  });

  test('without the group: no section, ghz null; a failed group is listed as failed', () => {
    const run = fakeBenchRun({
      failed: [{ name: 'ghz-calibration', reason: 'ghz unavailable: go is not installed' }],
    });
    const md = resultsMarkdown(run, 'x.svg', 'x.json');
    assert.doesNotMatch(md, /## ghz calibration/);
    assert.match(md, /## Failed\n\n- `ghz-calibration`: ghz unavailable/);
    const line = summaryLine(run);
    assert.equal(line['ghz'], null);
    assert.deepEqual(line['failed'], run.failed);
  });
});

describe('ghz options', () => {
  test('--ghz-rounds: 5 by default, 2 in --quick; --no-ghz and 0 turn the group off', () => {
    assert.equal(parseArgs([]).ghzRounds, 5);
    assert.equal(parseArgs(['--quick']).ghzRounds, 2);
    assert.equal(parseArgs(['--no-ghz']).ghzRounds, 0);
    assert.equal(parseArgs(['--ghz-rounds', '0']).ghzRounds, 0);
    assert.equal(parseArgs(['--ghz-rounds=3']).ghzRounds, 3);
    assert.throws(() => parseArgs(['--ghz-rounds', 'x']), /--ghz-rounds/);
  });

  test('selected by ghz-calibration or no --scenarios at all', () => {
    assert.equal(ghzWanted(null), true);
    assert.equal(ghzWanted(['ghz-calibration']), true);
    assert.equal(ghzWanted(['direct', 'failover']), false);
  });
});
