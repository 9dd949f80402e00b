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

test('a TargetError never shows a secret of its target or problem', () => {
  const error = new TargetError(
    'dns+lb://u:S3CRET@127.0.0.1:x/api:1?token=T0KEN',
    'DNS server "u:S3CRET@127.0.0.1:x" has an invalid port "x"',
  );
  assert.doesNotMatch(error.message, /S3CRET|T0KEN/);
  assert.doesNotMatch(error.target, /S3CRET|T0KEN/);
  assert.equal(
    error.message,
    'invalid target "dns+lb://***@127.0.0.1:x/api:1?token=***": DNS server "***@127.0.0.1:x" has an invalid port "x"',
  );
});

test('a ConfigError never shows userinfo of an address setting', () => {
  const error = new ConfigError('CONSUL_HTTP_ADDR', '"user:S3CRET@consul:8500" is not host:port');
  assert.doesNotMatch(error.message, /S3CRET/);
  assert.doesNotMatch(error.problem, /S3CRET/);
});
