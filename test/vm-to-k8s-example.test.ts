/**
 * examples/vm-to-k8s-migration keeps its promise: one composite target over VMs in Consul and the
 * pods of ONE Kubernetes Service (its EndpointSlice naming Pods labelled by version, read with
 * pod_labels=version), the traffic policy in a ConfigMap moved 0 → 10 → 50 → 100 % to the
 * pods under steady load, then the VMs retired — with no failed call, every step's split within
 * ±0.5 points of the policy, no reconnect, and every step following the ConfigMap.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { requireConsul } from './support/consul';
import { requireKubeApiserver } from './support/kube-apiserver';
import { requireTestNetns } from './support/netns';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

interface Step {
  podsShare: number;
  expected: Record<string, Record<string, number>>;
  measured: Record<string, Record<string, number>>;
  calls: number;
  failed: number;
  shareErrorPp: number;
  podsShareMeasured: number;
  configAppliedMs?: number;
  vmsRetired?: boolean;
  document: string;
}

interface Summary {
  example: string;
  target: string;
  steps: Step[];
  maxShareErrorPp: number;
  failedCalls: number;
  configAppliedMsP99: number;
  reconnects: number;
  connections: Record<string, number>;
  badDocument: { rejectedMs: number; error: string; kept: string };
}

test('examples/vm-to-k8s-migration: VMs → pods 0/10/50/100 % from a ConfigMap, VMs retired, 0 failed calls, split within ±0.5 pp, no reconnect', async (t) => {
  if (!(await requireKubeApiserver(t)) || !(await requireConsul(t))) return;
  // The example runs itself in a network namespace of its own; this only checks that one can be
  // made here (root, iproute2), skipping otherwise (failing under CI=true).
  if (!requireTestNetns(t)) return;
  const main = path.join(root, 'examples', 'dist', 'vm-to-k8s-migration', 'main.js');
  // The example exits 1 when it broke a promise: read its summary anyway, to say which.
  let exit: Error | undefined;
  const { stdout } = await run(process.execPath, [main], { cwd: root, timeout: 180_000 }).catch(
    (error: Error & { stdout?: string }) => {
      exit = error;
      return { stdout: error.stdout ?? '' };
    },
  );
  const lines = stdout.trimEnd().split('\n');
  // No summary at all (it crashed): the exit error carries its stderr.
  if (!lines[lines.length - 1]!.startsWith('{')) throw exit ?? new Error(stdout);
  const summary = JSON.parse(lines[lines.length - 1]!) as Summary;

  assert.equal(summary.example, 'vm-to-k8s-migration');
  assert.equal(
    summary.target,
    'composite:///hello?vms=consul:///hello&pods=k8s:///hello.prod:grpc?config=hello-lb&pod_labels=version',
  );
  assert.deepEqual(
    summary.steps.map((s) => [s.podsShare, s.vmsRetired === true]),
    [
      [0, false],
      [0.1, false],
      [0.5, false],
      [1, false],
      [1, true],
    ],
  );
  assert.equal(summary.failedCalls, 0, stdout);
  assert.equal(summary.reconnects, 0, stdout);
  // One connection from the client to each of the six backends, for the whole run.
  assert.deepEqual(Object.values(summary.connections), [1, 1, 1, 1, 1, 1], stdout);
  let maxErrorPp = 0;
  for (const step of summary.steps) {
    const at = `pods ${step.podsShare * 100} %${step.vmsRetired ? ' (VMs retired)' : ''}`;
    assert.equal(step.failed, 0, at);
    assert.ok(step.calls >= 1_000, `${at}: ${step.calls} calls`);
    // The channel followed the ConfigMap (through the source that names it), with its revision.
    assert.match(
      step.document,
      /^source pods: ConfigMap prod\/hello-lb service-config\.json \(resourceVersion \d+\)$/,
      at,
    );
    // Every subset's share, recomputed from what was counted, against the policy's.
    for (const [method, want] of Object.entries(step.expected)) {
      const got = step.measured[method]!;
      for (const subset of new Set([...Object.keys(want), ...Object.keys(got)])) {
        const errorPp = Math.abs((got[subset] ?? 0) - (want[subset] ?? 0)) * 100;
        maxErrorPp = Math.max(maxErrorPp, errorPp);
        assert.ok(errorPp <= 0.5, `${at} ${method} ${subset}: ${got[subset]} vs ${want[subset]}`);
      }
    }
    assert.ok(Math.abs(step.podsShareMeasured - step.podsShare) <= 0.005, at);
  }
  assert.ok(summary.maxShareErrorPp <= 0.5, stdout);
  assert.ok(Math.abs(summary.maxShareErrorPp - maxErrorPp) < 0.01, stdout);
  // Each policy change was seen applied (the observer's event) and timed from its write.
  const applied = summary.steps.flatMap((s) =>
    s.configAppliedMs === undefined ? [] : [s.configAppliedMs],
  );
  assert.equal(applied.length, 3, stdout);
  assert.equal(summary.configAppliedMsP99, Math.max(...applied));
  // The bad document written at 50 % was refused, naming the document and the field, and the
  // channel kept the 50 % one.
  assert.match(
    summary.badDocument.error,
    /ConfigMap prod\/hello-lb service-config\.json \(resourceVersion \d+\): invalid .*traffic_split\.routes\[0\]\.split\[\d\]\.subset: no subset named "pods-v3"/,
  );
  assert.equal(summary.badDocument.kept, summary.steps[2]!.document);
  assert.equal(exit, undefined, stdout);
});
