import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { resultsJson, summaryLine } from './summary';
import { fakeBenchRun } from './testing';

describe('summaryLine', () => {
  const run = fakeBenchRun({ bench: 'quick' });
  const line = JSON.parse(JSON.stringify(summaryLine(run))) as Record<string, unknown>;

  test('has every field CI reads', () => {
    for (const key of ['bench', 'machine', 'scenarios', 'ratios', 'pickNs', 'update10kMs']) {
      assert.ok(key in line, key);
    }
    assert.equal(line['bench'], 'quick');
    const ratios = line['ratios'] as Record<string, unknown>;
    for (const key of [
      'oursVsGrpcJsRoundRobin',
      'oursVsNginx',
      'oursVsHaproxyH2',
      'l4MaxMinShare',
      'oursMaxMinShare',
      'oursP99VsNginx',
      'oursP99VsHaproxyH2',
    ]) {
      assert.ok(key in ratios, key);
    }
    const scenarios = line['scenarios'] as Record<string, unknown>[];
    assert.ok(scenarios.length > 0);
    for (const key of ['name', 'rps', 'p50Ms', 'p99Ms', 'errors', 'perBackend']) {
      assert.ok(key in scenarios[0]!, key);
    }
  });

  test('computes the ratios from the scenarios and writes an infinite L4 share as null', () => {
    const ratios = line['ratios'] as Record<string, number | null>;
    assert.equal(ratios['oursVsNginx'], 1.5);
    assert.equal(ratios['oursVsHaproxyH2'], 2);
    assert.equal(ratios['l4MaxMinShare'], null);
    assert.equal(ratios['l4IdleBackends'], 2);
    assert.equal(line['update10kMs'], 12);
    assert.deepEqual(line['applied10kMs'], { first: 9, diff: 2.5 });
  });
});

describe('resultsJson', () => {
  test('turns NaN and Infinity into null', () => {
    const run = fakeBenchRun();
    run.durationS = NaN;
    const parsed = JSON.parse(resultsJson(run)) as { durationS: unknown };
    assert.equal(parsed.durationS, null);
  });
});
