/**
 * examples/etcd-registry keeps its promise: self-registered backends get their split by label,
 * a new registration gets calls within a fraction of a second, and a backend that deregisters on
 * SIGTERM drains with no failed call.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { requireEtcd } from './support/etcd';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

test('examples/etcd-registry: split by label, fast convergence, SIGTERM drains with 0 failed calls', async (t) => {
  if (!requireEtcd(t)) return;
  const main = path.join(root, 'examples', 'dist', 'etcd-registry', 'main.js');
  const { stdout } = await run(process.execPath, [main], { cwd: root, timeout: 120_000 });
  const lines = stdout.trimEnd().split('\n');
  const summary = JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
  assert.deepEqual(Object.keys(summary), [
    'example',
    'convergenceMsP50',
    'convergenceMsP99',
    'errors',
    'afterKillRemovedMs',
    'calls',
    'rounds',
    'removalMsP99',
    'shares',
    'expectedShares',
  ]);
  assert.equal(summary['example'], 'etcd-registry');
  assert.equal(summary['errors'], 0, stdout);
  assert.equal(summary['rounds'], 10);
  assert.ok((summary['calls'] as number) > 2_000, stdout);
  // Targets are 250 ms (BRIEF); a busy 2-core CI machine gets headroom.
  assert.ok((summary['convergenceMsP50'] as number) <= 500, stdout);
  assert.ok((summary['convergenceMsP99'] as number) <= 2_000, stdout);
  assert.ok((summary['afterKillRemovedMs'] as number) <= 1_000, stdout);
  assert.ok((summary['removalMsP99'] as number) <= 1_000, stdout);
  // The split is exact over every 5 calls; the sample ends wherever the load was read.
  const shares = summary['shares'] as Record<string, number>;
  assert.ok(Math.abs(shares['v1']! - 0.2) <= 0.01, stdout);
  assert.ok(Math.abs(shares['v2']! - 0.8) <= 0.01, stdout);
});
