/**
 * examples/consistent-hash keeps its promise: 10 backends, 1,000 users, 10,000 calls with no
 * error, every user's calls on one backend, and after one backend is removed about a tenth of
 * the users (±3 points) on another one.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

test('examples/consistent-hash: sticky 1, 0 errors, ~10% of the keys moved on removing 1 of 10 backends', async () => {
  const main = path.join(root, 'examples', 'dist', 'consistent-hash', 'main.js');
  const { stdout } = await run(process.execPath, [main], { cwd: root, timeout: 180_000 });
  const lines = stdout.trimEnd().split('\n');
  const summary = JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
  assert.deepEqual(Object.keys(summary), [
    'example',
    'keys',
    'calls',
    'errors',
    'sticky',
    'movedShareOnRemove',
    'loadMaxOverMean',
  ]);
  assert.equal(summary['example'], 'consistent-hash');
  assert.equal(summary['keys'], 1000);
  assert.equal(summary['calls'], 10_000);
  assert.equal(summary['errors'], 0);
  assert.equal(summary['sticky'], 1);
  const moved = summary['movedShareOnRemove'] as number;
  assert.ok(moved >= 0.07 && moved <= 0.13, `moved ${moved}`);
  const load = summary['loadMaxOverMean'] as number;
  assert.ok(load >= 1 && load < 1.6, `load max/mean ${load}`);
});
