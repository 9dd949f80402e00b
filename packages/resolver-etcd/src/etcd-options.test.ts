import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '@grpc-lb/core';
import { describeConnection, resolveConnection } from './etcd-options';

const none = {};

test('endpoints come from the target, else the options, else ETCD_ENDPOINTS, else 127.0.0.1:2379', () => {
  const env = { ETCD_ENDPOINTS: 'http://10.0.0.9:2379, 10.0.0.10' };
  assert.deepEqual(resolveConnection({ endpoints: 'a:1' }, 'x', ['t:2'], env).endpoints, ['t:2']);
  assert.deepEqual(resolveConnection({ endpoints: ['a:1', 'b'] }, 'x', undefined, env).endpoints, [
    'a:1',
    'b:2379',
  ]);
  assert.deepEqual(resolveConnection({}, 'x', undefined, env).endpoints, [
    '10.0.0.9:2379',
    '10.0.0.10:2379',
  ]);
  assert.deepEqual(resolveConnection({}, 'x', undefined, none).endpoints, ['127.0.0.1:2379']);
});

test('https:// endpoints or a tls option turn TLS on', () => {
  assert.equal(
    resolveConnection({ endpoints: 'https://e:2379' }, 'x', undefined, none).secure,
    true,
  );
  const settings = resolveConnection(
    { endpoints: 'e:2379', tls: { ca: 'PEM', serverName: 'etcd.local' } },
    'x',
    undefined,
    none,
  );
  assert.equal(settings.secure, true);
  assert.equal(settings.ca?.toString(), 'PEM');
  assert.equal(describeConnection(settings), 'https://e:2379');
  assert.equal(resolveConnection({ endpoints: 'e' }, 'x', undefined, none).secure, false);
});

test('bad connection options are ConfigErrors naming the field, never echoing a password', () => {
  const cases: [object, RegExp][] = [
    [{ endpoints: [] }, /invalid endpoints: no endpoint given/],
    [{ endpoints: 'http://a:1,https://b:1' }, /mixes http:\/\/ and https:\/\//],
    [{ endpoints: 'http://a:1', tls: true }, /use https/],
    [{ endpoints: 'https://a:1', tls: false }, /tls: is false/],
    [{ endpoints: 'u:hunter2@a:1' }, /credentials go in the auth option/],
    [{ endpoints: 'https://u:hunter2@a:1' }, /credentials go in the auth option/],
    [{ endpoints: 'https://a:1/?password=hunter2' }, /is not host:port/],
    [{ endpoints: 'a:0' }, /invalid port/],
    [{ tls: { caFile: '/nonexistent/ca.pem' } }, /tls.caFile: cannot read/],
    [{ tls: { ca: 'x', caFile: '/x' } }, /give tls.ca or tls.caFile/],
    [{ tls: { cert: 'x' } }, /needs both cert and key/],
    [{ auth: { username: '', password: 'hunter2' } }, /auth.username/],
    [{ auth: { username: 'u', password: 42 } }, /auth.password: expected a string/],
    [{ timeoutMs: 0 }, /timeoutMs/],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => resolveConnection(options, 'createEtcdResolverFactory', undefined, none),
      (error: unknown) =>
        error instanceof ConfigError &&
        message.test(error.message) &&
        error.message.startsWith('createEtcdResolverFactory: ') &&
        !error.message.includes('hunter2'),
      JSON.stringify(options),
    );
  }
});

test('ETCD_ENDPOINTS with userinfo is refused without echoing it', () => {
  assert.throws(
    () =>
      resolveConnection({}, 'x', undefined, {
        ETCD_ENDPOINTS: 'http://root:hunter2@10.0.0.9:2379',
      }),
    (error: unknown) =>
      error instanceof ConfigError &&
      /invalid ETCD_ENDPOINTS: "http:\/\/\*\*\*@10\.0\.0\.9:2379"/.test(error.message) &&
      !error.message.includes('hunter2'),
  );
});

test('the description of a connection names the user, not the password', () => {
  const settings = resolveConnection(
    { endpoints: 'e:1', auth: { username: 'app', password: 'hunter2' } },
    'x',
    undefined,
    none,
  );
  assert.equal(describeConnection(settings), 'http://e:1 as user "app"');
});
