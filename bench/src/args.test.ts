import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { UsageError, parseArgs } from './args';

describe('parseArgs', () => {
  test('a full run by default: 5 rounds of 5 s, 100k evenness calls', () => {
    const options = parseArgs([]);
    assert.equal(options.quick, false);
    assert.equal(options.rounds, 5);
    assert.equal(options.durationMs, 5000);
    assert.equal(options.evennessCalls, 100_000);
    assert.equal(options.concurrency, 50);
    assert.equal(options.proxies, true);
    assert.equal(options.scenarios, null);
    assert.equal(options.fleet, true);
    assert.equal(parseArgs(['--no-fleet']).fleet, false);
  });

  test('--quick shortens every phase, wherever it appears', () => {
    const options = parseArgs(['--rounds', '3', '--quick']);
    assert.equal(options.quick, true);
    assert.equal(options.rounds, 3);
    assert.equal(options.durationMs, 1500);
    assert.equal(options.evennessCalls, 10_000);
  });

  test('takes values after the flag or after =', () => {
    const options = parseArgs([
      '--duration=2.5',
      '--concurrency',
      '10',
      '--scenarios',
      'direct, grpc-lb-round_robin',
      '--no-proxies',
      '--date',
      '2030-01-02',
      '--warmup',
      '0',
    ]);
    assert.equal(options.durationMs, 2500);
    assert.equal(options.concurrency, 10);
    assert.deepEqual(options.scenarios, ['direct', 'grpc-lb-round_robin']);
    assert.equal(options.proxies, false);
    assert.equal(options.date, '2030-01-02');
    assert.equal(options.warmupMs, 0);
    assert.equal(parseArgs(['--report-only', 'x.json']).reportOnly, 'x.json');
  });

  test('repeats disturbed rounds up to --rounds extra times in a full run, never in a quick one', () => {
    assert.equal(parseArgs(['--rounds', '4']).extraRounds, 4);
    assert.equal(parseArgs(['--quick']).extraRounds, 0);
    assert.equal(parseArgs(['--extra-rounds', '2']).extraRounds, 2);
    assert.equal(parseArgs([]).quietThreshold, 0.25);
    assert.equal(parseArgs(['--quiet-threshold', 'off']).quietThreshold, null);
    assert.throws(() => parseArgs(['--quiet-threshold', 'x']), /--quiet-threshold/);
  });

  test('failover rounds: 3 in a full run, 1 in a quick one, 0 for none', () => {
    assert.equal(parseArgs([]).failoverRounds, 3);
    assert.equal(parseArgs(['--quick']).failoverRounds, 1);
    assert.equal(parseArgs(['--quick', '--failover-rounds', '0']).failoverRounds, 0);
    assert.throws(() => parseArgs(['--failover-rounds', 'x']), /--failover-rounds: expected/);
  });

  test('names the flag in every rejection', () => {
    assert.throws(() => parseArgs(['--rounds', '0']), /--rounds: 0 is below the minimum 1/);
    assert.throws(() => parseArgs(['--concurrency', 'x']), /--concurrency: expected an integer/);
    assert.throws(() => parseArgs(['--duration', '-1']), /--duration: expected a positive/);
    assert.throws(() => parseArgs(['--date', '2030-1-2']), /--date: expected YYYY-MM-DD/);
    assert.throws(() => parseArgs(['--rate']), /--rate/);
    assert.throws(() => parseArgs(['--frobnicate']), UsageError);
  });

  test('startup-skew rounds: 5 in a full run, 1 in a quick one, 0 for none', () => {
    assert.equal(parseArgs([]).startupRounds, 5);
    assert.equal(parseArgs(['--quick']).startupRounds, 1);
    assert.equal(parseArgs(['--startup-rounds', '0']).startupRounds, 0);
    assert.equal(parseArgs(['--quick', '--startup-rounds=3']).startupRounds, 3);
    assert.equal(parseArgs([]).metricsRounds, 5);
    assert.equal(parseArgs(['--quick']).metricsRounds, 1);
    assert.equal(parseArgs(['--metrics-rounds', '0']).metricsRounds, 0);
  });
});
