import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { convergenceTiming } from './convergence';
import {
  type ConvergenceEvent,
  type ConvergenceReport,
  convergenceTarget,
  measureRound,
  spread,
  summarizeConvergenceRun,
} from './convergence-stats';
import { formatConvergenceTable, formatSpread } from './report';
import { resultsMarkdown } from './results-md';
import { summaryLine } from './summary';
import { type FakeCall, fakeBenchRun, fakeCallLog } from './testing';

const A = '127.0.0.2:5000';
const B = '127.0.0.3:5000';
const NEW = '127.0.0.4:5000';

const EVENT: ConvergenceEvent = {
  round: 1,
  addStartMs: 1000,
  addDoneMs: 1020,
  removeStartMs: 3000,
  removeDoneMs: 3010,
  phaseEndMs: 5000,
};

/** A call every 10 ms from 0 to `endMs`, round robin over `backendsAt(at)`. */
function calls(endMs: number, backendsAt: (at: number) => string[]): FakeCall[] {
  const out: FakeCall[] = [];
  for (let at = 0, i = 0; at < endMs; at += 10, i++) {
    const set = backendsAt(at);
    out.push({ at, latencyMs: 1, backend: set[i % set.length]! });
  }
  return out;
}

describe('measureRound', () => {
  test('first call after the add, last call after the removal, writes timed', () => {
    const log = fakeCallLog(calls(5000, (at) => (at >= 1400 && at < 3500 ? [A, B, NEW] : [A, B])));
    const r = measureRound(log.trace, NEW, EVENT, 500);
    assert.ok(r.firstCallMs !== null && r.firstCallMs >= 400 && r.firstCallMs < 440);
    assert.ok(r.lastCallMs !== null && r.lastCallMs >= 450 && r.lastCallMs < 500);
    assert.ok(r.callsWhileRegistered > 0);
    assert.equal(r.addWriteMs, 20);
    assert.equal(r.removeWriteMs, 10);
  });

  test('never called: no first call; nothing after the removal: last call 0', () => {
    const log = fakeCallLog(calls(5000, () => [A, B]));
    const r = measureRound(log.trace, NEW, EVENT, 500);
    assert.equal(r.firstCallMs, null);
    assert.equal(r.lastCallMs, 0);
    assert.equal(r.callsWhileRegistered, 0);
  });

  test('still answering at the end of the phase: removal not converged', () => {
    const log = fakeCallLog(calls(5000, (at) => (at >= 1400 ? [A, B, NEW] : [A, B])));
    assert.equal(measureRound(log.trace, NEW, EVENT, 500).lastCallMs, null);
  });

  test("failed calls and other rounds' calls do not count", () => {
    const log = fakeCallLog([
      { at: 500, latencyMs: 1, backend: NEW },
      { at: 1100, latencyMs: 1, code: 14 },
      { at: 1200, latencyMs: 1, backend: NEW },
      { at: 5100, latencyMs: 1, backend: NEW },
    ]);
    const r = measureRound(log.trace, NEW, EVENT, 500);
    assert.equal(r.firstCallMs, 200);
    assert.equal(r.lastCallMs, 0);
  });
});

describe('spread and target', () => {
  test('a round that did not converge is infinitely late', () => {
    const s = spread([100, null, 300]);
    assert.equal(s.p50Ms, 300);
    assert.equal(s.p99Ms, Infinity);
    assert.equal(s.converged, 2);
    assert.equal(s.rounds, 3);
    assert.match(formatSpread(s), /not converged \(2\/3 converged\)/);
    assert.equal(formatSpread(spread([5, 10])), '5 ms / 10 ms / 10 ms');
  });

  test('DNS: p99 of both ≤ the interval; etcd: ≤ 250 ms; the built-in resolver has none', () => {
    const ok = spread([100, 900]);
    assert.equal(convergenceTarget('dns', 'grpc-lb', 1000, ok, ok)?.met, true);
    assert.equal(convergenceTarget('dns', 'grpc-lb', 1000, spread([1100]), ok)?.met, false);
    assert.equal(convergenceTarget('dns', 'grpc-lb', 1000, ok, spread([null]))?.met, false);
    assert.equal(convergenceTarget('etcd', 'grpc-lb', null, spread([40, 240]), ok)?.met, false);
    assert.equal(
      convergenceTarget('etcd', 'grpc-lb', null, spread([40, 240]), spread([30]))?.met,
      true,
    );
    assert.equal(convergenceTarget('dns', 'grpc-js', null, ok, ok), null);
    assert.equal(convergenceTarget('etcd', 'grpc-lb', null, spread([]), spread([]))?.met, false);
  });

  test("Kubernetes: read against etcd's 250 ms, both directions, every round converged", () => {
    const fast = spread([30, 60]);
    const goal = convergenceTarget('k8s', 'grpc-lb', null, fast, fast);
    assert.equal(goal?.met, true);
    assert.equal(goal?.thresholdMs, 250);
    assert.match(goal?.text ?? '', /^Kubernetes: EndpointSlice .* ≤ 250 ms/);
    assert.equal(convergenceTarget('k8s', 'grpc-lb', null, spread([30, 260]), fast)?.met, false);
    assert.equal(convergenceTarget('k8s', 'grpc-lb', null, fast, spread([30, null]))?.met, false);
  });
});

function fakeConvergence(client: 'grpc-lb' | 'grpc-js'): ConvergenceReport {
  const seen = client === 'grpc-lb';
  const log = fakeCallLog([
    ...calls(5000, (at) => (seen && at >= 1400 && at < 3500 ? [A, B, NEW] : [A, B])),
    { at: 4000, latencyMs: 2000, code: 4 },
  ]);
  return summarizeConvergenceRun(log.trace, [EVENT], {
    name: 'convergence-dns',
    resolver: 'dns',
    client,
    title: `${client} title`,
    target: 'dns+lb://127.0.0.1:5353/api.svc.test:5000?interval=1000ms',
    intervalMs: client === 'grpc-lb' ? 1000 : null,
    baseEndpoints: 2,
    addedEndpoint: NEW,
    concurrency: 4,
    timing: convergenceTiming('dns', true),
    totalMs: 5000,
  });
}

describe('convergence reports', () => {
  const ours = fakeConvergence('grpc-lb');
  const builtin = fakeConvergence('grpc-js');

  test('summarizes rounds, failed calls and the target', () => {
    assert.equal(ours.rounds.length, 1);
    assert.equal(ours.failedCalls, 1);
    assert.deepEqual(ours.failedByStatus, { DEADLINE_EXCEEDED: 1 });
    assert.equal(ours.sawNewEndpoint, true);
    assert.equal(ours.goal?.met, true);
    assert.equal(builtin.sawNewEndpoint, false);
    assert.equal(builtin.goal, null);
  });

  test('console table, targets, RESULTS.md section and the JSON key', () => {
    const table = formatConvergenceTable([ours, builtin]);
    assert.match(table, /convergence-dns\s+grpc-lb\s+1000 ms/);
    assert.match(table, /grpc-js.*never called/);
    const run = fakeBenchRun({ convergence: [ours, builtin] });
    const target = run.targets.find((t) => t.id === 'convergence-dns');
    assert.equal(target?.met, true);
    const md = resultsMarkdown(run, 'x.svg', 'x.json');
    assert.match(md, /## Convergence: registry change → first call/);
    assert.match(md, /\*\*never called\*\*/);
    assert.match(md, /bounded by the configured interval/);
    const line = summaryLine(run);
    const convergence = line['convergence'] as Record<string, unknown>[];
    assert.equal(convergence.length, 2);
    assert.equal(convergence[0]!['met'], true);
    assert.equal(convergence[0]!['failedCalls'], 1);
    assert.equal(convergence[1]!['sawNewEndpoint'], false);
    assert.equal(convergence[1]!['lastCallMsP99'], null);
    // Every key of before is still there.
    for (const key of ['scenarios', 'openLoop', 'ratios', 'targets', 'failover', 'pickNs']) {
      assert.ok(key in line, key);
    }
  });

  test('a Kubernetes run: its target, its reading in RESULTS.md, its summary entry', () => {
    const k8s = summarizeConvergenceRun(
      fakeCallLog(calls(5000, (at) => (at >= 1040 && at < 3020 ? [A, B, NEW] : [A, B]))).trace,
      [EVENT],
      {
        name: 'convergence-k8s',
        resolver: 'k8s',
        client: 'grpc-lb',
        title: 'grpc-lb k8s: (EndpointSlice watch), grpc-lb.round_robin',
        target: 'k8s:///bench.grpc-lb-bench:grpc',
        intervalMs: null,
        baseEndpoints: 2,
        addedEndpoint: NEW,
        concurrency: 4,
        timing: convergenceTiming('k8s', true),
        totalMs: 5000,
      },
    );
    assert.equal(k8s.goal?.met, true);
    assert.match(formatConvergenceTable([k8s]), /convergence-k8s\s+grpc-lb\s+–/);
    const run = fakeBenchRun({ convergence: [ours, k8s] });
    const target = run.targets.find((t) => t.id === 'convergence-k8s');
    assert.equal(target?.met, true);
    assert.match(target?.why ?? '', /EndpointSlice/);
    const md = resultsMarkdown(run, 'x.svg', 'x.json');
    assert.match(md, /`convergence-k8s`/);
    assert.match(md, /k8s:\/\/\/bench\.grpc-lb-bench:grpc/);
    assert.match(md, /etcd, Kubernetes and Consul need no interval/);
    const line = summaryLine(run)['convergence'] as Record<string, unknown>[];
    assert.deepEqual(
      line.map((c) => [c['name'], c['resolver'], c['targetMs'], c['met']]),
      [
        ['convergence-dns', 'dns', 1000, true],
        ['convergence-k8s', 'k8s', 250, true],
      ],
    );
  });

  test('a Consul run: its target, its reading in RESULTS.md, its summary entry', () => {
    const consul = summarizeConvergenceRun(
      fakeCallLog(calls(5000, (at) => (at >= 1100 && at < 3030 ? [A, B, NEW] : [A, B]))).trace,
      [EVENT],
      {
        name: 'convergence-consul',
        resolver: 'consul',
        client: 'grpc-lb',
        title: 'grpc-lb consul: (blocking queries, passing only), grpc-lb.round_robin',
        target: 'consul:///bench',
        intervalMs: null,
        baseEndpoints: 2,
        addedEndpoint: NEW,
        concurrency: 4,
        timing: convergenceTiming('consul', true),
        totalMs: 5000,
      },
    );
    assert.equal(consul.goal?.met, true);
    assert.equal(consul.goal?.thresholdMs, 250);
    assert.match(consul.goal?.text ?? '', /^Consul: register → first call/);
    assert.match(formatConvergenceTable([consul]), /convergence-consul\s+grpc-lb\s+–/);
    const run = fakeBenchRun({ convergence: [ours, consul] });
    const target = run.targets.find((t) => t.id === 'convergence-consul');
    assert.equal(target?.met, true);
    assert.match(target?.why ?? '', /\/v1\/agent\/service\/register/);
    assert.match(target?.why ?? '', /no health check/);
    const md = resultsMarkdown(run, 'x.svg', 'x.json');
    assert.match(md, /`convergence-consul`/);
    assert.match(md, /consul:\/\/\/bench/);
    const line = summaryLine(run)['convergence'] as Record<string, unknown>[];
    assert.deepEqual(
      line.map((c) => [c['name'], c['resolver'], c['targetMs'], c['met']]),
      [
        ['convergence-dns', 'dns', 1000, true],
        ['convergence-consul', 'consul', 250, true],
      ],
    );
  });

  test('a Consul run slower than 250 ms misses the target', () => {
    const slow = summarizeConvergenceRun(
      fakeCallLog(calls(5000, (at) => (at >= 1400 && at < 3030 ? [A, B, NEW] : [A, B]))).trace,
      [EVENT],
      {
        name: 'convergence-consul',
        resolver: 'consul',
        client: 'grpc-lb',
        title: 'consul',
        target: 'consul:///bench',
        intervalMs: null,
        baseEndpoints: 2,
        addedEndpoint: NEW,
        concurrency: 4,
        timing: convergenceTiming('consul', true),
        totalMs: 5000,
      },
    );
    assert.equal(slow.goal?.met, false);
  });

  test('a run without the group has no section and no target', () => {
    const run = fakeBenchRun();
    assert.doesNotMatch(resultsMarkdown(run, 'x.svg', 'x.json'), /## Convergence/);
    assert.equal(run.targets.filter((t) => t.id.startsWith('convergence')).length, 0);
    assert.deepEqual(summaryLine(run)['convergence'], []);
  });
});
