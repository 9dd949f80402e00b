import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '@grpc-lb/core';
import { parseAgentAddress, resolveAgentSettings } from './consul-agent';

test('parseAgentAddress: http://, https:// and host:port forms', () => {
  assert.deepEqual(parseAgentAddress('127.0.0.1:8500', 'x'), {
    protocol: 'http:',
    host: '127.0.0.1',
    port: 8500,
    url: 'http://127.0.0.1:8500',
  });
  assert.equal(parseAgentAddress('http://consul.local', 'x').url, 'http://consul.local:8500');
  assert.equal(parseAgentAddress('https://consul.local', 'x').url, 'https://consul.local:443');
  assert.equal(parseAgentAddress('https://10.0.0.1:8501/', 'x').url, 'https://10.0.0.1:8501');
  assert.equal(parseAgentAddress('[::1]:8500', 'x').url, 'http://[::1]:8500');
  assert.equal(parseAgentAddress('10.0.0.1:8501', 'x', true).url, 'https://10.0.0.1:8501');
});

test('parseAgentAddress rejects a malformed address naming the field, without credentials', () => {
  for (const bad of [
    'unix:///tmp/consul.sock',
    'http://u:secret@h:1',
    'h:0',
    'http://h:1/v1',
    '',
  ]) {
    assert.throws(
      () => parseAgentAddress(bad, 'CONSUL_HTTP_ADDR'),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, bad);
        assert.match(error.message, /invalid CONSUL_HTTP_ADDR/);
        assert.doesNotMatch(error.message, /secret/);
        return true;
      },
    );
  }
});

test('CONSUL_HTTP_ADDR or the address option with user:pass@ is refused without echoing it', () => {
  for (const [env, options] of [
    [{ CONSUL_HTTP_ADDR: 'alice:hunter2@consul.internal:8500' }, {}],
    [{ CONSUL_HTTP_ADDR: 'https://alice:hunter2@consul.internal:8501' }, {}],
    [{}, { address: 'http://hunter2@10.0.0.5:8500' }],
  ] as const) {
    assert.throws(
      () => resolveAgentSettings(undefined, options, env),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /invalid (CONSUL_HTTP_ADDR|address): ".*\*\*\*@/);
        assert.match(error.message, /`token` option or CONSUL_HTTP_TOKEN/);
        assert.doesNotMatch(error.message, /hunter2|alice/);
        return true;
      },
    );
  }
});

test('agent: target authority, else option, else CONSUL_HTTP_ADDR, else 127.0.0.1:8500', () => {
  const env = { CONSUL_HTTP_ADDR: 'https://env:8501' };
  assert.equal(resolveAgentSettings('t:1', { address: 'o:2' }, env).agent.url, 'http://t:1');
  assert.equal(resolveAgentSettings(undefined, { address: 'o:2' }, env).agent.url, 'http://o:2');
  assert.equal(resolveAgentSettings(undefined, {}, env).agent.url, 'https://env:8501');
  assert.equal(
    resolveAgentSettings(undefined, {}, { CONSUL_HTTP_ADDR: 'env:8501', CONSUL_HTTP_SSL: 'true' })
      .agent.url,
    'https://env:8501',
  );
  assert.equal(resolveAgentSettings(undefined, {}, {}).agent.url, 'http://127.0.0.1:8500');
});

test('token: option, else CONSUL_HTTP_TOKEN, else none — and where it came from', () => {
  const env = { CONSUL_HTTP_TOKEN: 'from-env' };
  assert.deepEqual(
    [resolveAgentSettings(undefined, { token: 'opt' }, env)].map((s) => [s.token, s.tokenSource]),
    [['opt', 'option']],
  );
  const fromEnv = resolveAgentSettings(undefined, {}, env);
  assert.deepEqual([fromEnv.token, fromEnv.tokenSource], ['from-env', 'CONSUL_HTTP_TOKEN']);
  const none = resolveAgentSettings(undefined, {}, {});
  assert.deepEqual([none.token, none.tokenSource], [undefined, 'none']);
});
