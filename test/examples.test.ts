/**
 * Every example runs as CI runs it and its last stdout line is the JSON summary it promises.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

async function runExample(name: string, args: string[] = []): Promise<Record<string, unknown>> {
  const main = path.join(root, 'examples', 'dist', name, 'main.js');
  const { stdout } = await run(process.execPath, [main, ...args], { cwd: root, timeout: 120_000 });
  const lines = stdout.trimEnd().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

test('examples/hello: 10,000 calls, 0 errors, even counts over 3 backends', async () => {
  const summary = await runExample('hello');
  assert.equal(summary['example'], 'hello');
  assert.equal(summary['calls'], 10_000);
  assert.equal(summary['errors'], 0);
  const counts = Object.values(summary['perBackend'] as Record<string, number>);
  assert.equal(counts.length, 3);
  assert.equal(
    counts.reduce((a, b) => a + b, 0),
    10_000,
  );
  assert.ok(
    Math.max(...counts) / Math.min(...counts) <= 1.05,
    JSON.stringify(summary['perBackend']),
  );
  assert.equal(typeof summary['elapsedMs'], 'number');
});

test('examples/traffic-split: SayHello 30/60/10 and SayGoodbye 100% v2, within ±0.5 points, 0 errors', async () => {
  const summary = await runExample('traffic-split');
  assert.equal(summary['example'], 'traffic-split');
  assert.equal(summary['calls'], 10_000);
  assert.equal(summary['errors'], 0);
  const shares = summary['shares'] as Record<string, Record<string, number>>;
  const expected = summary['expected'] as Record<string, Record<string, number>>;
  assert.deepEqual(Object.keys(shares).sort(), Object.keys(expected).sort());
  for (const [method, want] of Object.entries(expected)) {
    assert.deepEqual(Object.keys(shares[method]!).sort(), Object.keys(want).sort(), method);
    for (const [version, share] of Object.entries(want)) {
      assert.ok(
        Math.abs(shares[method]![version]! - share) <= 0.005,
        `${method} ${version}: ${shares[method]![version]}`,
      );
    }
  }
});

test('examples/outlier-ejection: ejected, no failed call on NOT_SERVING or drain, P2C avoids the slow backend', async () => {
  const summary = await runExample('outlier-ejection');
  assert.equal(summary['example'], 'outlier-ejection');
  assert.equal(typeof summary['ejectedAfterMs'], 'number');
  assert.equal(summary['successRateAfterEjection'], 1);
  assert.equal(summary['notServingFailedCalls'], 0);
  assert.equal(summary['drainFailedCalls'], 0);
  const p2c = summary['slowBackendShareP2C'] as number;
  const rr = summary['slowBackendShareRoundRobin'] as number;
  assert.ok(
    rr > 0.2 && p2c < rr * 0.75,
    `slow backend share: least request ${p2c}, round robin ${rr}`,
  );
});
