/**
 * The rule for real servers in tests: a missing binary is installed, and when it cannot be had it
 * fails the test under CI=true instead of skipping it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ensureTools, findBinary, requireTools, type ToolSpec } from './support/system-tools';

class NoSuchToolError extends Error {}

const MISSING: ToolSpec<'grpc-lb-no-such-binary'> = {
  binaries: ['grpc-lb-no-such-binary'],
  packages: [],
  unavailable: (message) => new NoSuchToolError(message),
};

test('finds a binary that exists and reports its path', () => {
  const node = findBinary('node');
  assert.ok(node && node.endsWith('/node'), String(node));
  assert.deepEqual(ensureTools({ ...MISSING, binaries: ['node'] }), { node });
});

test('a binary that cannot be had throws the spec error naming the binary and packages', () => {
  assert.throws(
    () => ensureTools(MISSING),
    (e: unknown) =>
      e instanceof NoSuchToolError && /grpc-lb-no-such-binary not found/.test(e.message),
  );
});

test('with CI=true a missing binary fails the test rather than skipping it', (t) => {
  const saved = process.env['CI'];
  process.env['CI'] = 'true';
  try {
    assert.throws(() => requireTools(t, MISSING), NoSuchToolError);
  } finally {
    if (saved === undefined) delete process.env['CI'];
    else process.env['CI'] = saved;
  }
});
