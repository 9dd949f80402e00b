import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, GrpcLbError, TargetError } from './errors';

test('typed errors carry a code and match instanceof by class', () => {
  const error = new TargetError('static:///x', 'no port');
  assert.equal(error.code, 'BAD_TARGET');
  assert.ok(error instanceof TargetError);
  assert.ok(error instanceof GrpcLbError);
  assert.ok(error instanceof Error);
  assert.ok(!(error instanceof ConfigError));
  assert.equal(error.message, 'invalid target "static:///x": no port');
});

test('instanceof matches errors from another copy of the package', () => {
  const path = require.resolve('./errors');
  const saved = require.cache[path];
  delete require.cache[path];
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const other = require('./errors') as typeof import('./errors');
  if (saved) require.cache[path] = saved;
  assert.notEqual(other.TargetError, TargetError);
  const foreign = new other.TargetError('t', 'p');
  assert.ok(foreign instanceof TargetError);
  assert.ok(foreign instanceof GrpcLbError);
  assert.ok(!(foreign instanceof ConfigError));
  assert.ok(new ConfigError('f', 'p') instanceof other.GrpcLbError);
});
