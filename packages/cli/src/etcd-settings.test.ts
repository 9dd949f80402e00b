import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { InputError, UsageError } from './errors';
import { checkEtcdFlags, etcdConnectionOptions } from './etcd-settings';

const dir = mkdtempSync(join(tmpdir(), 'grpc-lb-cli-etcd-settings-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const ca = file('ca.pem', 'CA');
const cert = file('cert.pem', 'CERT');
const key = file('key.pem', 'KEY');
const passwordFile = file('password', 'from-file\n');

describe('etcdConnectionOptions', () => {
  test('nothing set: the resolver defaults (no TLS, no auth)', () => {
    assert.deepEqual(etcdConnectionOptions({}, {}), {});
  });

  test('endpoints: the flag, else $ETCD_ENDPOINTS (read by the resolver), else $ETCDCTL_ENDPOINTS', () => {
    const env = { ETCD_ENDPOINTS: 'a:2379', ETCDCTL_ENDPOINTS: 'b:2379' };
    assert.equal(etcdConnectionOptions({ etcdEndpoints: 'c:2379' }, env).endpoints, 'c:2379');
    assert.equal(etcdConnectionOptions({}, env).endpoints, undefined);
    assert.equal(etcdConnectionOptions({}, { ETCDCTL_ENDPOINTS: 'b:2379' }).endpoints, 'b:2379');
  });

  test('TLS files: flags beat etcdctl variables; read here', () => {
    const options = etcdConnectionOptions(
      { etcdCacert: ca },
      { ETCDCTL_CACERT: '/nonexistent', ETCDCTL_CERT: cert, ETCDCTL_KEY: key },
    );
    assert.deepEqual(options.tls, {
      ca: Buffer.from('CA'),
      cert: Buffer.from('CERT'),
      key: Buffer.from('KEY'),
    });
  });

  test('a file that cannot be read names the file and the flag or variable', () => {
    assert.throws(
      () => etcdConnectionOptions({}, { ETCDCTL_CACERT: '/nonexistent/ca.pem' }),
      (error: unknown) =>
        error instanceof InputError &&
        error.message ===
          'cannot read the etcd CA certificate /nonexistent/ca.pem ($ETCDCTL_CACERT): no such file',
    );
  });

  test('a certificate without its key (or the reverse) is an error naming what is missing', () => {
    assert.throws(
      () => etcdConnectionOptions({ etcdCert: cert }, {}),
      /--etcd-cert is set, --etcd-key \(\$ETCDCTL_KEY\) is not/,
    );
    assert.throws(
      () => etcdConnectionOptions({}, { ETCDCTL_KEY: key }),
      /\$ETCDCTL_KEY is set, --etcd-cert \(\$ETCDCTL_CERT\) is not/,
    );
  });

  test('the password: --etcd-password-file, else $ETCDCTL_PASSWORD, else $ETCDCTL_USER user:password', () => {
    const table: [Parameters<typeof etcdConnectionOptions>[0], NodeJS.ProcessEnv, object][] = [
      [
        { etcdUser: 'app', etcdPasswordFile: passwordFile },
        { ETCDCTL_PASSWORD: 'env' },
        { username: 'app', password: 'from-file' },
      ],
      [{ etcdUser: 'app' }, { ETCDCTL_PASSWORD: 'env' }, { username: 'app', password: 'env' }],
      [{}, { ETCDCTL_USER: 'app:pw:with:colons' }, { username: 'app', password: 'pw:with:colons' }],
      [
        {},
        { ETCDCTL_USER: 'app:inline', ETCDCTL_PASSWORD: 'env' },
        { username: 'app', password: 'env' },
      ],
    ];
    for (const [flags, env, expected] of table) {
      assert.deepEqual(etcdConnectionOptions(flags, env).auth, expected, JSON.stringify(env));
    }
    // A user from the flag does not take the variable's inline password: it has none.
    assert.throws(
      () => etcdConnectionOptions({ etcdUser: 'ops' }, { ETCDCTL_USER: 'app:pw' }),
      (error: unknown) =>
        error instanceof InputError &&
        /^etcd user "ops" \(--etcd-user\) has no password: /.test(error.message) &&
        !error.message.includes('pw'),
    );
  });

  test('a password file without a user is an error', () => {
    assert.throws(
      () => etcdConnectionOptions({ etcdPasswordFile: passwordFile }, {}),
      /--etcd-password-file is set but no etcd user is/,
    );
  });
});

describe('checkEtcdFlags', () => {
  test('--etcd-user user:password is a usage error that does not repeat the value', () => {
    assert.throws(
      () => checkEtcdFlags({ etcdUser: 'app:Secr3t' }, 'grpc-lb endpoints'),
      (error: unknown) =>
        error instanceof UsageError &&
        error.command === 'grpc-lb endpoints' &&
        !error.message.includes('Secr3t'),
    );
    checkEtcdFlags({ etcdUser: 'app' }, 'grpc-lb endpoints');
  });
});
