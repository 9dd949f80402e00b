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
