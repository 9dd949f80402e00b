/**
 * examples/consul-registry keeps its promise: Consul weights 1:3 split calls 25/75 under
 * weighted round robin, and a rolling restart of every backend (deregistered or NOT_SERVING,
 * drained, stopped gracefully, restarted, registered again) under steady load loses no call.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { requireConsul } from './support/consul';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

interface Summary {
  example: string;
  calls: number;
  errors: number;
  steps: {
    backend: string;
    how: string;
    removeToLastCallMs: number;
    registerToFirstCallMs: number;
  }[];
  removeToLastCallMsMax: number;
  registerToFirstCallMsMax: number;
  weightedCalls: number;
  weightedShares: Record<string, number>;
  expectedShares: Record<string, number>;
  servingAfterRollout: string[];
}

test('examples/consul-registry: weights 1:3 split 25/75; a rolling restart loses 0 calls', async (t) => {
  if (!(await requireConsul(t))) return;
  const main = path.join(root, 'examples', 'dist', 'consul-registry', 'main.js');
  const { stdout } = await run(process.execPath, [main], { cwd: root, timeout: 120_000 });
  const lines = stdout.trimEnd().split('\n');
  const summary = JSON.parse(lines[lines.length - 1]!) as Summary;
  assert.equal(summary.example, 'consul-registry');
  assert.equal(summary.errors, 0, stdout);
  assert.ok(summary.calls > 2_000, stdout);

  // Every backend went through a step, both ways of leaving were used.
  const backends = ['hello-v1-a', 'hello-v1-b', 'hello-v2-a', 'hello-v2-b'];
  assert.deepEqual(
    summary.steps.map((s) => s.backend),
    backends,
    stdout,
  );
  assert.deepEqual(
    summary.steps.map((s) => s.how),
    ['deregister', 'not-serving', 'deregister', 'not-serving'],
  );
  assert.deepEqual(summary.servingAfterRollout, backends, stdout);

  // Timings: a NOT_SERVING instance waits for Consul's next check (every 1 s), a registration
  // for its first one; during a rolling restart the index churns, so the resolver's next blocking
  // query may also wait out its churn backoff (at most 2 s, `maxChurnBackoffMs`): 3 s at worst,
  // plus 1 s of headroom for a busy 2-core CI machine (a run saw 3,060 ms).
  const boundMs = 1_000 + 2_000 + 1_000;
  for (const step of summary.steps) {
    assert.ok(step.removeToLastCallMs >= 0 && step.removeToLastCallMs <= boundMs, stdout);
    assert.ok(step.registerToFirstCallMs >= 0 && step.registerToFirstCallMs <= boundMs, stdout);
  }
  assert.equal(
    summary.removeToLastCallMsMax,
    Math.max(...summary.steps.map((s) => s.removeToLastCallMs)),
  );
  assert.equal(
    summary.registerToFirstCallMsMax,
    Math.max(...summary.steps.map((s) => s.registerToFirstCallMs)),
  );

  // The weighted schedule is deterministic (each endpoint within one call of its share over any
  // run); the window's edges cut through at most one call per caller: 0.02 is ample over 2,000+.
  assert.ok(summary.weightedCalls >= 2_000, stdout);
  assert.deepEqual(summary.expectedShares, { v1: 0.25, v2: 0.75 });
  assert.deepEqual(Object.keys(summary.weightedShares).sort(), ['v1', 'v2'], stdout);
  assert.ok(Math.abs(summary.weightedShares['v1']! - 0.25) <= 0.02, stdout);
  assert.ok(Math.abs(summary.weightedShares['v2']! - 0.75) <= 0.02, stdout);
});
