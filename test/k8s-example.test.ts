/**
 * examples/k8s-rolling-update keeps its promise: a rolling update written to EndpointSlices of a
 * real kube-apiserver moves every call from v1 to v2 pods under load with no failed call.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { requireKubeApiserver } from './support/kube-apiserver';
import { requireTestNetns } from './support/netns';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

test('examples/k8s-rolling-update: v1 → v2 through EndpointSlices, 0 failed calls', async (t) => {
  if (!(await requireKubeApiserver(t))) return;
  // The example runs itself in a network namespace of its own; this only checks that one can be
  // made here (root, iproute2), skipping otherwise (failing under CI=true).
  if (!requireTestNetns(t)) return;
  const main = path.join(root, 'examples', 'dist', 'k8s-rolling-update', 'main.js');
  const { stdout } = await run(process.execPath, [main], { cwd: root, timeout: 180_000 });
  const lines = stdout.trimEnd().split('\n');
  const summary = JSON.parse(lines[lines.length - 1]!) as {
    example: string;
    calls: number;
    errors: number;
    steps: { readyToFirstCallMs: number; terminatingToLastCallMs: number }[];
    readyToFirstCallMsMax: number;
    afterRollout: Record<string, number>;
    servingAfterRollout: string[];
  };
  assert.equal(summary.example, 'k8s-rolling-update');
  assert.equal(summary.errors, 0, stdout);
  assert.equal(summary.steps.length, 3);
  assert.ok(summary.calls > 600, stdout);
  // Every call after the rollout went to v2.
  assert.deepEqual(Object.keys(summary.afterRollout), ['v2'], stdout);
  assert.ok(summary.afterRollout['v2']! >= 600, stdout);
  assert.deepEqual(summary.servingAfterRollout, ['hello-v2-a', 'hello-v2-b', 'hello-v2-c']);
  // The target is 250 ms (BRIEF); a busy 2-core CI machine gets headroom.
  assert.ok(summary.readyToFirstCallMsMax <= 3_000, stdout);
});
