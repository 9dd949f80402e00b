import assert from 'node:assert/strict';
import { test } from 'node:test';
import { proxyUnavailable } from './run-bench';
import type { Outcome } from './unavailable';

function decide(reason: string, env: NodeJS.ProcessEnv) {
  const skipped: Outcome[] = [];
  const failed: Outcome[] = [];
  const lines: string[] = [];
  proxyUnavailable({ log: (line) => lines.push(line) }, 'nginx-grpc', reason, skipped, failed, env);
  return { skipped, failed, lines };
}

test('a missing proxy is a failure under CI=true and a skip otherwise', () => {
  const missing = '/usr/sbin/nginx not found';
  const ci = decide(missing, { CI: 'true' });
  assert.deepEqual(ci.skipped, []);
  assert.equal(ci.failed.length, 1);
  assert.equal(ci.failed[0]!.name, 'nginx-grpc');
  assert.match(ci.failed[0]!.reason, /not found \(CI=true: a failure, not a skip\)/);
  const local = decide(missing, {});
  assert.deepEqual(local.failed, []);
  assert.deepEqual(local.skipped, [{ name: 'nginx-grpc', reason: missing }]);
});

test('proxies turned off or not selected are a skip even under CI=true', () => {
  for (const reason of ['--no-proxies', 'not selected']) {
    const ci = decide(reason, { CI: 'true' });
    assert.deepEqual(ci.failed, []);
    assert.deepEqual(ci.skipped, [{ name: 'nginx-grpc', reason }]);
    assert.deepEqual(ci.lines, []);
  }
});
