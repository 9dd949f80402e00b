/**
 * `grpc-lb endpoints --probe` run as an operator runs it (the built bin as a child process) over
 * real grpc-js backends (child processes on 127.0.0.x): one SERVING, one NOT_SERVING, one without
 * a health service, and an address nothing listens on. Each backend counts the connections and
 * health calls it got, so the test sees one connection and one Check per endpoint, every
 * connection closed, and the command exiting by itself. And over TLS: a grpc-js server whose
 * certificate names a DNS name, probed with --probe-cacert and --probe-server-name.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { startBackends, waitFor, type BackendSet } from './harness';
import { createCa, type Ca } from './support/certs';
import { freePort } from './support/server-process';
import { runGrpcLb, type CliRun } from './support/grpc-lb-cli';

/** Runs the bin; a process that does not exit by itself within 30 s is killed (signal set). */
const grpcLb = (args: readonly string[]): Promise<CliRun> => runGrpcLb(args, { timeoutMs: 30_000 });

describe('grpc-lb endpoints --probe over real backends', () => {
  let healthy: BackendSet;
  let bare: BackendSet;
  let serving = '';
  let notServing = '';
  let noHealth = '';
  let nothing = '';

  before(async () => {
    healthy = await startBackends({ count: 2, firstHost: 71 });
    bare = await startBackends({ count: 1, firstHost: 73, healthService: 'none' });
    [serving, notServing] = healthy.addresses as [string, string];
    noHealth = bare.addresses[0]!;
    await healthy.backends[1]!.setHealth('NOT_SERVING');
    nothing = `127.0.0.74:${await freePort('127.0.0.74')}`;
  });
  after(async () => {
    await healthy?.stopAll();
    await bare?.stopAll();
  });

  test('a table of state, health and latency; the failure named; exit 3; every connection closed', async () => {
    for (const backend of [...healthy.backends, ...bare.backends]) await backend.resetStats();
    const run = await grpcLb([
      'endpoints',
      `static:///${serving},${notServing},${noHealth},${nothing}`,
      '--probe',
      '--probe-timeout',
      '5',
    ]);
    assert.equal(run.signal, null, 'the command exits by itself: nothing is left open');
    assert.equal(run.code, 3, run.stderr);
    assert.equal(
      run.stderr,
      'error: 2 of 4 endpoints cannot take calls (not READY, or not SERVING)\n',
    );
    const lines = run.stdout.split('\n');
    assert.match(
      lines[0]!,
      /^ADDRESS +WEIGHT +ZONE +SOURCE +LABELS +STATE +HEALTH +CONNECT +CHECK$/,
    );
    const row = (address: string) => lines.find((l) => l.startsWith(`${address} `)) ?? '';
    assert.match(row(serving), / READY +SERVING +\d+\.\d ms +\d+\.\d ms$/);
    assert.match(row(notServing), / READY +NOT_SERVING +\d+\.\d ms +\d+\.\d ms$/);
    assert.match(row(noHealth), / READY +UNIMPLEMENTED +\d+\.\d ms +\d+\.\d ms$/);
    assert.match(row(nothing), / TRANSIENT_FAILURE +- +- +-$/);
    assert.ok(lines.includes(`${nothing}: TRANSIENT_FAILURE: connect ECONNREFUSED ${nothing}`));

    for (const backend of healthy.backends) {
      const stats = await backend.stats();
      assert.equal(stats.connectionsAccepted, 1, `${backend.address}: one connection`);
      assert.equal(stats.healthCalls.Check, 1, `${backend.address}: one Check`);
      assert.equal(stats.healthCalls.Watch, 0);
      assert.equal(stats.totalCalls, 0, 'no Greeter call');
    }
    assert.equal((await bare.backends[0]!.stats()).connectionsAccepted, 1);
    await waitFor(
      async () => {
        const all = [...healthy.backends, ...bare.backends];
        const open = await Promise.all(all.map(async (b) => (await b.stats()).connectionsOpen));
        return open.every((n) => n === 0);
      },
      { timeoutMs: 5_000, message: 'every probe connection is closed' },
    );
  });

  test('--json and --health-service: one probe object per endpoint, exit 0 when all can take calls', async () => {
    await healthy.backends[0]!.setHealth('SERVING', 'shop.Cart');
    const run = await grpcLb([
      'endpoints',
      `static:///${serving},${noHealth}`,
      '--probe',
      '--json',
      '--health-service',
      'shop.Cart',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    const json = JSON.parse(run.stdout) as {
      endpoints: { address: string; probe: { state: string; health: string; error: unknown } }[];
      probe: unknown;
    };
    assert.deepEqual(
      json.endpoints.map((e) => [e.address, e.probe.state, e.probe.health, e.probe.error]),
      [
        [serving, 'READY', 'SERVING', null],
        [noHealth, 'READY', 'UNIMPLEMENTED', null],
      ].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
    );
    assert.deepEqual(json.probe, {
      healthService: 'shop.Cart',
      timeoutSeconds: 3,
      endpoints: 2,
      healthy: 2,
    });
  });
});

describe('grpc-lb endpoints --probe over TLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'grpc-lb-cli-probe-tls-'));
  let ca: Ca;
  let otherCa: Ca;
  let server: grpc.Server | undefined;
  let address = '';
  let plaintext: grpc.Server | undefined;
  let plaintextAddress = '';

  before(async () => {
    ca = await createCa(dir, 'grpc-lb cli probe test CA');
    otherCa = await createCa(mkdtempSync(join(dir, 'other-')), 'another CA');
    // The certificate names a DNS name only: dialled by IP, the name must be given.
    const pair = await ca.issue('server', {
      cn: 'hello.svc.test',
      sans: ['DNS:hello.svc.test'],
      usage: 'serverAuth',
    });
    server = new grpc.Server();
    server.register<Buffer, Buffer>(
      '/grpc.health.v1.Health/Check',
      (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
        callback(null, Buffer.from([0x08, 0x01])),
      (response: Buffer) => response,
      (request: Buffer) => request,
      'unary',
    );
    const credentials = grpc.ServerCredentials.createSsl(null, [
      { cert_chain: readFileSync(pair.certFile), private_key: readFileSync(pair.keyFile) },
    ]);
    const port = await new Promise<number>((resolve, reject) =>
      server!.bindAsync('127.0.0.75:0', credentials, (error, p) =>
        error ? reject(error) : resolve(p),
      ),
    );
    address = `127.0.0.75:${port}`;
    plaintext = new grpc.Server();
    const plainPort = await new Promise<number>((resolve, reject) =>
      plaintext!.bindAsync('127.0.0.75:0', grpc.ServerCredentials.createInsecure(), (error, p) =>
        error ? reject(error) : resolve(p),
      ),
    );
    plaintextAddress = `127.0.0.75:${plainPort}`;
  });
  after(() => {
    server?.forceShutdown();
    plaintext?.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  test('--probe-cacert and --probe-server-name: READY and SERVING, exit 0', async () => {
    const run = await grpcLb([
      'endpoints',
      `static:///${address}`,
      '--probe',
      '--probe-cacert',
      ca.certFile,
      '--probe-server-name',
      'hello.svc.test',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    assert.match(run.stdout, new RegExp(`\\n${address} .* READY +SERVING +\\d`));
  });

  test('the certificate does not name the address dialled: TRANSIENT_FAILURE, exit 3', async () => {
    const run = await grpcLb([
      'endpoints',
      `static:///${address}`,
      '--probe',
      '--probe-cacert',
      ca.certFile,
    ]);
    assert.equal(run.code, 3, run.stderr);
    assert.match(run.stdout, new RegExp(`\\n${address} .* TRANSIENT_FAILURE +- `));
    const host = address.split(':')[0]!;
    assert.ok(
      run.stdout.includes(
        `\n${address}: TRANSIENT_FAILURE: TLS: the endpoint's certificate does not name ${host} (give a name it carries with --probe-server-name)\n`,
      ),
      run.stdout,
    );
  });

  test('a CA that did not sign the certificate: TRANSIENT_FAILURE with the reason, exit 3', async () => {
    const run = await grpcLb([
      'endpoints',
      `static:///${address}`,
      '--probe',
      '--probe-cacert',
      otherCa.certFile,
      '--probe-server-name',
      'hello.svc.test',
    ]);
    assert.equal(run.signal, null);
    assert.equal(run.code, 3, run.stderr);
    assert.equal(
      run.stderr,
      'error: 1 of 1 endpoints cannot take calls (not READY, or not SERVING)\n',
    );
    assert.match(run.stdout, new RegExp(`\\n${address} .* TRANSIENT_FAILURE +- `));
    assert.ok(
      run.stdout.includes(
        `\n${address}: TRANSIENT_FAILURE: TLS: the endpoint's certificate is not trusted: unable to verify the first certificate\n`,
      ),
      run.stdout,
    );
  });

  test('plaintext against a TLS endpoint: not READY, exit 3', async () => {
    const run = await grpcLb([
      'endpoints',
      `static:///${address}`,
      '--probe',
      '--probe-timeout',
      '2',
    ]);
    assert.equal(run.code, 3, run.stderr);
    assert.doesNotMatch(run.stdout, / READY /);
  });

  test('--probe-tls against a plaintext endpoint: it does not answer in TLS, exit 3', async () => {
    const run = await grpcLb([
      'endpoints',
      `static:///${plaintextAddress}`,
      '--probe',
      '--probe-tls',
    ]);
    assert.equal(run.code, 3, run.stderr);
    assert.ok(
      run.stdout.includes(
        `\n${plaintextAddress}: TRANSIENT_FAILURE: TLS: the endpoint does not answer in TLS (plaintext only?)\n`,
      ),
      run.stdout,
    );
  });

  test('a CA file that cannot be read: exit 1 naming it and the flag', async () => {
    const run = await grpcLb([
      'endpoints',
      `static:///${address}`,
      '--probe',
      '--probe-cacert',
      '/nonexistent/ca.pem',
    ]);
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      'error: cannot read the CA certificate /nonexistent/ca.pem (--probe-cacert): no such file\n',
    );
  });
});
