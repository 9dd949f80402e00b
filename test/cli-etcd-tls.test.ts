/**
 * `grpc-lb endpoints` against a real etcd serving TLS with password auth, configured the way an
 * operator configures etcdctl: flags (`--etcd-cacert`, `--etcd-cert`/`--etcd-key`, `--etcd-user`,
 * `--etcd-password-file`) or etcdctl's environment (`ETCDCTL_ENDPOINTS`, `ETCDCTL_CACERT`,
 * `ETCDCTL_USER=user:password`, `ETCDCTL_PASSWORD`). The password never appears in any output.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';

import { requireEtcd, startEtcd, type Etcd } from './support/etcd';
import { runGrpcLb, type CliRun } from './support/grpc-lb-cli';

const PASSWORD = 'S3cret-pa55word';
const WRONG = 'Wr0ng-pa55word';
const auth = { username: 'app', password: PASSWORD };

/** Runs the bin with only `env` (and PATH) for environment, so a developer's ETCDCTL_* cannot leak in. */
const grpcLb = (args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> =>
  runGrpcLb(args, { env, isolated: true });

function assertNoSecret(run: CliRun): void {
  for (const secret of [PASSWORD, WRONG]) {
    assert.ok(!run.stdout.includes(secret) && !run.stderr.includes(secret), 'no password printed');
  }
}

const dir = mkdtempSync(join(tmpdir(), 'grpc-lb-cli-etcd-tls-'));
const passwordFile = join(dir, 'password');
const wrongFile = join(dir, 'wrong');
writeFileSync(passwordFile, `${PASSWORD}\n`);
writeFileSync(wrongFile, `${WRONG}\n`);

let secure: Promise<Etcd> | undefined;
after(async () => {
  if (secure) await (await secure).dispose();
  rmSync(dir, { recursive: true, force: true });
});

const SERVICE = `services/cli-tls-${process.pid}`;

async function secureEtcd(t: TestContext): Promise<Etcd | undefined> {
  if (!requireEtcd(t)) return undefined;
  secure ??= (async () => {
    const etcd = await startEtcd({ tls: true, auth });
    await etcd.etcdctl(
      'put',
      `${SERVICE}/a`,
      JSON.stringify({ Op: 0, Addr: '127.0.0.2:5000', Metadata: null }),
    );
    return etcd;
  })();
  return secure;
}

describe('grpc-lb endpoints: etcd with TLS and password auth (real etcd)', () => {
  test('flags: --etcd-cacert, --etcd-user and the password from $ETCDCTL_PASSWORD', async (t) => {
    const etcd = await secureEtcd(t);
    if (!etcd) return;
    const run = await grpcLb(
      [
        'endpoints',
        `etcd:///${SERVICE}`,
        '--etcd-endpoints',
        etcd.url,
        '--etcd-cacert',
        etcd.tls!.caFile,
        '--etcd-user',
        'app',
      ],
      { ETCDCTL_PASSWORD: PASSWORD },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /\n127\.0\.0\.2:5000 +1 /);
    assert.equal(run.stderr, '');
    assertNoSecret(run);
  });

  test("etcdctl's environment alone: ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT/KEY, ETCDCTL_USER=user:password", async (t) => {
    const etcd = await secureEtcd(t);
    if (!etcd) return;
    const run = await grpcLb(['endpoints', `etcd:///${SERVICE}`, '--json'], {
      ETCDCTL_ENDPOINTS: etcd.url,
      ETCDCTL_CACERT: etcd.tls!.caFile,
      ETCDCTL_CERT: etcd.tls!.certFile,
      ETCDCTL_KEY: etcd.tls!.keyFile,
      ETCDCTL_USER: `app:${PASSWORD}`,
    });
    assert.equal(run.code, 0, run.stderr);
    const json = JSON.parse(run.stdout) as { endpoints: { address: string }[] };
    assert.deepEqual(
      json.endpoints.map((e) => e.address),
      ['127.0.0.2:5000'],
    );
    assertNoSecret(run);
  });

  test('--etcd-password-file with a wrong password: exit 1, the user named, the password not', async (t) => {
    const etcd = await secureEtcd(t);
    if (!etcd) return;
    const run = await grpcLb([
      'endpoints',
      `etcd:///${SERVICE}`,
      '--etcd-endpoints',
      etcd.url,
      '--etcd-cacert',
      etcd.tls!.caFile,
      '--etcd-user',
      'app',
      '--etcd-password-file',
      wrongFile,
      '--timeout',
      '3',
    ]);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.match(
      run.stderr,
      /^error: cannot resolve etcd:\/\/\/\S+ within 3 s: .*authentication failed for user "app".*\n$/,
    );
    assertNoSecret(run);
  });

  test('the right password file: exit 0', async (t) => {
    const etcd = await secureEtcd(t);
    if (!etcd) return;
    const run = await grpcLb([
      'endpoints',
      `etcd:///${SERVICE}`,
      '--etcd-endpoints',
      etcd.url,
      '--etcd-cacert',
      etcd.tls!.caFile,
      '--etcd-user',
      'app',
      '--etcd-password-file',
      passwordFile,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /\n127\.0\.0\.2:5000 /);
  });

  test("without the CA, etcd's certificate is refused: exit 1 within --timeout", async (t) => {
    const etcd = await secureEtcd(t);
    if (!etcd) return;
    const run = await grpcLb(
      ['endpoints', `etcd:///${SERVICE}`, '--etcd-endpoints', etcd.url, '--timeout', '2'],
      { ETCDCTL_USER: 'app', ETCDCTL_PASSWORD: PASSWORD },
    );
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: cannot resolve etcd:\/\/\/\S+ within 2 s: .*\n$/);
    assertNoSecret(run);
  });

  test('a password on the command line is refused (exit 2) and not repeated', async () => {
    const run = await grpcLb(['endpoints', 'etcd:///services/x', '--etcd-user', `app:${PASSWORD}`]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^error: --etcd-user takes a user name only, not user:password .*\n$/);
    assertNoSecret(run);
  });
});
