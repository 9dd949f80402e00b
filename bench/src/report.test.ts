import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatMaxMin, formatMs, formatScenarioReport, formatSummaryTable } from './report';
import { BACKENDS, fakeReport } from './testing';

describe('formatScenarioReport', () => {
  const report = fakeReport('grpc-lb-round_robin', [
    { rps: 300, latencyMs: 2, errors: 3 },
    { rps: 300, latencyMs: 4 },
  ]);
  const text = formatScenarioReport(report);

  test('has the ghz sections: summary, histogram, latency distribution, status codes', () => {
    for (const heading of [
      'Summary:',
      'Response time histogram:',
      'Latency distribution:',
      'Status code distribution:',
      'Per-backend distribution:',
    ]) {
      assert.ok(text.includes(heading), heading);
    }
    assert.match(text, /Count:\t600/);
    assert.match(text, /Requests\/sec:\t300\.00/);
    assert.match(text, /Slowest:\t4\.000 ms/);
    assert.match(text, /Fastest:\t2\.000 ms/);
    assert.match(text, /99\.9 % in 4\.000 ms/);
    assert.match(text, / 10 % in 2\.000 ms/);
  });

  test('shows status names, error samples and every backend with its share', () => {
    assert.match(text, /\[OK\]\t597 responses/);
    assert.match(text, /\[UNAVAILABLE\]\t3 responses/);
    assert.match(text, /error: 14 fake failure/);
    for (const address of BACKENDS) assert.ok(text.includes(address), address);
    assert.match(text, /max\/min share: 1\.000/);
  });

  test('draws histogram bars scaled to the largest bucket', () => {
    const bars = text.split('\n').filter((line) => line.includes('|∎'));
    assert.ok(bars.some((line) => line.endsWith('∎'.repeat(40))));
  });
});

describe('formatting helpers', () => {
  test('formatMaxMin says how many backends were idle when the ratio is infinite', () => {
    assert.equal(
      formatMaxMin({ backends: 3, calls: 5, maxMinShare: null, busiestShare: 1, idleBackends: 2 }),
      '∞ (2 of 3 backends idle)',
    );
  });

  test('formatMs switches units with the magnitude', () => {
    assert.equal(formatMs(0.1234), '0.123 ms');
    assert.equal(formatMs(12.345), '12.35 ms');
    assert.equal(formatMs(2500), '2.50 s');
    assert.equal(formatMs(NaN), 'n/a');
  });

  test('the summary table has a row per scenario under aligned headers', () => {
    const lines = formatSummaryTable([
      fakeReport('direct', [{ rps: 100, latencyMs: 1 }]),
      fakeReport('haproxy-tcp', [{ rps: 100, latencyMs: 1, perBackend: { [BACKENDS[0]!]: 100 } }]),
    ]).split('\n');
    assert.equal(lines.length, 4);
    assert.match(lines[0]!, /^scenario/);
    assert.match(lines[3]!, /∞ \(2 idle\)/);
  });
});
