import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  COMMON_FAULTS,
  FAULTS,
  POLICIES,
  RETRY_BUDGET,
  failoverPolicies,
  failoverTiming,
  failoverWanted,
  faultScenarioName,
} from './failover';
import { retryLoad } from './failover-stats';
import { formatFailoverTable, formatFailoverTimelines, formatRecovery } from './report';
import { resultsMarkdown } from './results-md';
import { summaryLine } from './summary';
import { fakeBenchRun, fakeFailoverReport } from './testing';

const BACKENDS = [2, 3, 4, 5].map((n) => ({
  address: `127.0.0.${n}:5000`,
  host: `127.0.0.${n}`,
  port: 5000,
  labels: {},
}));

describe('failover scenarios', () => {
  const policies = failoverPolicies(BACKENDS);

  test('grpc-js round robin on an ipv4: target, ours on static:', () => {
    const grpcJs = policies.find((p) => p.name === POLICIES.grpcJs)!;
    assert.equal(grpcJs.target, 'ipv4:127.0.0.2:5000,127.0.0.3:5000,127.0.0.4:5000,127.0.0.5:5000');
    assert.deepEqual(JSON.parse(String(grpcJs.channelOptions['grpc.service_config'])), {
      loadBalancingConfig: [{ round_robin: {} }],
    });
    for (const p of policies.filter((x) => x.name !== POLICIES.grpcJs)) {
      assert.ok(p.target.startsWith('static:///127.0.0.2:5000,'), p.name);
    }
  });

  test('each policy carries its own config; retries against SIGKILL and a backend failing every call, with and without a budget', () => {
    const config = (name: string) =>
      JSON.parse(
        String(policies.find((p) => p.name === name)!.channelOptions['grpc.service_config']),
      ) as {
        loadBalancingConfig: Record<string, Record<string, unknown>>[];
        methodConfig?: unknown[];
      };
    const outlier = config(POLICIES.rrOutlier).loadBalancingConfig[0]!['grpc-lb.round_robin']!;
    assert.ok('outlierDetection' in outlier && 'healthCheck' in outlier);
    assert.ok('grpc-lb.least_request' in config(POLICIES.leastRequest).loadBalancingConfig[0]!);
    assert.equal(config(POLICIES.rrRetry).methodConfig?.length, 1);
    const retry = policies.find((p) => p.name === POLICIES.rrRetry)!;
    assert.deepEqual(retry.faults, ['sigkill', 'errors-100']);
    assert.equal(policies.filter((p) => p.faults === COMMON_FAULTS).length, 4);
    assert.ok(!COMMON_FAULTS.includes('errors-100'));
    assert.deepEqual(
      FAULTS.filter((f) => !COMMON_FAULTS.includes(f)),
      ['errors-100'],
    );
    // The budgeted policy differs from the plain retry one by its retryBudget alone.
    const budgeted = config(POLICIES.rrRetryBudget);
    assert.deepEqual(budgeted.methodConfig, config(POLICIES.rrRetry).methodConfig);
    assert.deepEqual(budgeted.loadBalancingConfig[0]!['grpc-lb.round_robin'], {
      retryBudget: RETRY_BUDGET,
    });
    assert.deepEqual(policies.find((p) => p.name === POLICIES.rrRetryBudget)!.faults, [
      'errors-100',
    ]);
  });

  test('--scenarios selects the group, a fault, or one fault × policy', () => {
    assert.equal(failoverWanted(null, 'hang', POLICIES.rr), true);
    assert.equal(failoverWanted(['failover'], 'hang', POLICIES.rr), true);
    assert.equal(failoverWanted(['failover-hang'], 'hang', POLICIES.rr), true);
    assert.equal(failoverWanted(['failover-hang'], 'sigkill', POLICIES.rr), false);
    assert.equal(failoverWanted([`failover-hang:${POLICIES.rr}`], 'hang', POLICIES.rr), true);
    assert.equal(failoverWanted([`failover-hang:${POLICIES.rr}`], 'hang', POLICIES.grpcJs), false);
    assert.equal(failoverWanted(['direct'], 'hang', POLICIES.rr), false);
    assert.equal(faultScenarioName('errors-50'), 'failover-errors-50');
  });

  test('the tail that decides "not recovered" is at least a deadline and fits after the fault', () => {
    for (const quick of [true, false]) {
      const t = failoverTiming(quick);
      assert.ok(t.tailMs >= 1000);
      assert.ok(t.faultAtMs + t.windowMs <= t.durationMs);
      assert.ok(t.faultAtMs + t.tailMs < t.durationMs);
    }
  });
});

describe('failover outputs', () => {
  const reports = [
    fakeFailoverReport('sigkill', POLICIES.rr, 50),
    fakeFailoverReport('sigkill', POLICIES.rrRetry, 0),
    fakeFailoverReport('errors-50', POLICIES.rr, null),
    fakeFailoverReport('errors-50', POLICIES.rrOutlier, 200),
  ];
  const run = fakeBenchRun({ bench: 'quick', failover: reports });

  test('the console table has a row per fault × policy, with recovery or "not recovered"', () => {
    const text = formatFailoverTable(reports);
    const lines = text.split('\n');
    assert.equal(lines.length, 2 + reports.length);
    assert.match(lines[0]!, /fault\s+policy\s+rps\s+failed/);
    assert.match(text, /errors-50\s+grpc-lb-round_robin\s.*UNAVAILABLE \d+.*not recovered/);
    assert.equal(formatRecovery(12.4), '12 ms');
    assert.match(formatFailoverTimelines(reports), /failed {5}0 0 0 \| \d+ 0/);
  });

  test('the last JSON line gets a `failover` key and keeps every other key', () => {
    const line = JSON.parse(JSON.stringify(summaryLine(run))) as Record<string, unknown>;
    const before = JSON.parse(
      JSON.stringify(summaryLine(fakeBenchRun({ bench: 'quick' }))),
    ) as Record<string, unknown>;
    for (const key of Object.keys(before)) assert.ok(key in line, key);
    assert.deepEqual(before['failover'], []);
    const failover = line['failover'] as Record<string, unknown>[];
    assert.equal(failover.length, reports.length);
    const killed = failover[0]!;
    for (const key of [
      'fault',
      'policy',
      'failedCalls',
      'failedByStatus',
      'windowP99Ms',
      'windowP999Ms',
      'recoveryMs',
    ]) {
      assert.ok(key in killed, key);
    }
    assert.equal(killed['fault'], 'sigkill');
    assert.equal(typeof killed['recoveryMs'], 'number');
    assert.equal(failover[2]!['recoveryMs'], null);
    assert.equal(failover[1]!['failedCalls'], 0);
  });

  test('RESULTS.md has a Failover section with the table and a reading per fault', () => {
    const md = resultsMarkdown(run, 'results/x.svg', 'results/x.json');
    assert.match(md, /## Failover: 4 backends, one of them faulty \(medians of 1 round\)/);
    assert.match(md, /\| `sigkill` \| `grpc-lb-round_robin\+retry` \| \d+ \| 0 \| – \|/);
    assert.match(md, /\| `errors-50` \| `grpc-lb-round_robin` \|.*\*\*not recovered\*\* \|/);
    assert.match(md, /### What to conclude/);
    assert.match(
      md,
      /- \*\*`sigkill`\*\*: .*With the retry policy 0 calls failed \(\d+ without it\)\./,
    );
    assert.match(
      md,
      /- \*\*`errors-50`\*\*: .*Not recovered by the end of the run: `grpc-lb-round_robin` \(\d+ failed calls among those sent in the last 1.25 s\)\./,
    );
    assert.ok(!md.includes('**`hang`**'), 'faults not run are left out');
  });

  test('RESULTS.md reads the errors-100 runs as the retry budget’s effect: attempts and load on the healthy backends', () => {
    const FAULTY = '127.0.0.3:5000';
    const withLoad = (policy: string, attempts: Record<string, number>, failed: number) => ({
      ...fakeFailoverReport('errors-100', policy, null),
      load: retryLoad(1000, failed, attempts, FAULTY),
    });
    const healthy = (n: number) => ({
      '127.0.0.2:5000': n,
      '127.0.0.4:5000': n,
      '127.0.0.5:5000': n,
    });
    const md = resultsMarkdown(
      fakeBenchRun({
        bench: 'quick',
        failover: [
          withLoad(POLICIES.rrRetry, { ...healthy(1000 / 3), [FAULTY]: 250 }, 0),
          withLoad(POLICIES.rrRetryBudget, { ...healthy(300), [FAULTY]: 300 }, 50),
        ],
      }),
      'results/x.svg',
      'results/x.json',
    );
    assert.match(
      md,
      /- \*\*`errors-100`\*\*: .*Without a budget: 1000 calls after the fault made 1250 attempts \(\+25\.0 %\), the healthy backends \+33\.3 % over their share, 0 calls failed\. With the budget: 1000 calls after the fault made 1200 attempts \(\+20\.0 %\), the healthy backends \+20\.0 % over their share, 50 calls failed\./,
    );
  });

  test('RESULTS.md has no Failover section without failover runs', () => {
    const md = resultsMarkdown(fakeBenchRun(), 'results/x.svg', 'results/x.json');
    assert.ok(!md.includes('## Failover'));
  });
});
