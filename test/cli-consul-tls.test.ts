/**
 * `grpc-lb endpoints` against a real Consul agent serving its HTTP API over HTTPS with
 * `verify_incoming` (a client certificate is required) and ACLs on (default deny), configured
 * the way an operator configures the `consul` CLI: flags (`--consul-addr https://…`,
 * `--consul-cacert`, `--consul-client-cert`/`--consul-client-key`, `--consul-token-file`) or its
 * environment (`CONSUL_HTTP_ADDR`, `CONSUL_CACERT`, `CONSUL_CLIENT_CERT`/`KEY`,
 * `CONSUL_HTTP_TOKEN`). The token never appears in any output.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { createCa, type CertPair } from './support/certs';
import { requireConsul, startConsul, type Consul } from './support/consul';
import { serverFixture } from './support/server-fixture';
import { runGrpcLb, type CliRun } from './support/grpc-lb-cli';

const MANAGEMENT = randomUUID();
const SERVICE = `cli-tls-${process.pid}`;

type Run = CliRun;

/** Runs the bin with only `env` (and PATH), so a developer's CONSUL_* cannot leak in. */
const grpcLb = (args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Run> =>
  runGrpcLb(args, { env, isolated: true });

const dir = mkdtempSync(join(tmpdir(), 'grpc-lb-cli-consul-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let ca: CertPair | undefined;
let client: CertPair | undefined;
let reader = '';
const tokenFile = join(dir, 'token');

const consul = serverFixture<Consul>(
  'consul (HTTPS with verify_incoming, ACLs on)',
  async () => {
    const authority = await createCa(dir, 'grpc-lb cli consul test CA');
    ca = authority;
    const server = await authority.issue('server', {
      cn: 'server.dc1.consul',
      sans: ['IP:127.0.0.1', 'DNS:localhost', 'DNS:server.dc1.consul'],
      usage: 'serverAuth,clientAuth',
    });
    client = await authority.issue('client', { cn: 'grpc-lb cli', usage: 'clientAuth' });
    const agent = await startConsul({
      aclManagementToken: MANAGEMENT,
      tls: { caFile: authority.certFile, certFile: server.certFile, keyFile: server.keyFile },
    });
    const registered = await agent.api('PUT', '/v1/agent/service/register', {
      ID: `${SERVICE}-1`,
      Name: SERVICE,
      Address: '127.0.0.2',
      Port: 5000,
    });
    assert.equal(registered.status, 200, registered.body);
    const policy = await agent.api('PUT', '/v1/acl/policy', {
      Name: 'cli-read',
      Rules: `service "${SERVICE}" { policy = "read" }\nnode_prefix "" { policy = "read" }`,
    });
    assert.equal(policy.status, 200, policy.body);
    const token = await agent.api('PUT', '/v1/acl/token', { Policies: [{ Name: 'cli-read' }] });
    assert.equal(token.status, 200, token.body);
    reader = (token.json as { SecretID: string }).SecretID;
    writeFileSync(tokenFile, `${reader}\n`);
    return agent;
  },
  requireConsul,
);

function assertNoSecret(run: Run): void {
  for (const secret of [reader, MANAGEMENT]) {
    assert.ok(!run.stdout.includes(secret) && !run.stderr.includes(secret), 'no token printed');
  }
}

describe('grpc-lb endpoints: Consul over HTTPS with client certificates and ACLs (real agent)', () => {
  test('flags: --consul-addr https://…, --consul-cacert, --consul-client-cert/-key, --consul-token-file', async (t) => {
    const c = await consul.get(t);
    if (!c) return;
    await consul.logged(async () => {
      const run = await grpcLb([
        'endpoints',
        `consul:///${SERVICE}`,
        '--consul-addr',
        `https://127.0.0.1:${c.httpsPort!}`,
        '--consul-cacert',
        ca!.certFile,
        '--consul-client-cert',
        client!.certFile,
        '--consul-client-key',
        client!.keyFile,
        '--consul-token-file',
        tokenFile,
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stderr, '');
      assert.match(run.stdout, /\n127\.0\.0\.2:5000 +1 /);
      assertNoSecret(run);
    });
  });

  test("the consul CLI's environment alone: CONSUL_HTTP_ADDR, CONSUL_CACERT, CONSUL_CLIENT_CERT/KEY, CONSUL_HTTP_TOKEN", async (t) => {
    const c = await consul.get(t);
    if (!c) return;
    await consul.logged(async () => {
      const run = await grpcLb(['endpoints', `consul:///${SERVICE}`, '--json'], {
        CONSUL_HTTP_ADDR: `https://127.0.0.1:${c.httpsPort!}`,
        CONSUL_CACERT: ca!.certFile,
        CONSUL_CLIENT_CERT: client!.certFile,
        CONSUL_CLIENT_KEY: client!.keyFile,
        CONSUL_HTTP_TOKEN: reader,
      });
      assert.equal(run.code, 0, run.stderr);
      const json = JSON.parse(run.stdout) as { endpoints: { address: string }[] };
      assert.deepEqual(
        json.endpoints.map((e) => e.address),
        ['127.0.0.2:5000'],
      );
      assertNoSecret(run);
    });
  });

  test('without the client certificate: exit 1 within --timeout, one error line, no token', async (t) => {
    const c = await consul.get(t);
    if (!c) return;
    await consul.logged(async () => {
      const run = await grpcLb(
        [
          'endpoints',
          `consul:///${SERVICE}`,
          '--consul-addr',
          `https://127.0.0.1:${c.httpsPort!}`,
          '--consul-cacert',
          ca!.certFile,
          '--timeout',
          '2',
        ],
        { CONSUL_HTTP_TOKEN: reader },
      );
      assert.equal(run.code, 1);
      assert.equal(run.stdout, '');
      const lines = run.stderr.split('\n').filter((l) => l !== '');
      assert.equal(lines.length, 1, run.stderr);
      assert.match(lines[0]!, /^error: cannot resolve consul:\/\/\/\S+ within 2 s: /);
      assertNoSecret(run);
    });
  });

  test('a CA file that cannot be read: exit 1 at once, naming the file and the flag', async () => {
    const run = await grpcLb([
      'endpoints',
      'consul:///hello',
      '--consul-addr',
      'https://127.0.0.1:1',
      '--consul-cacert',
      '/nonexistent/ca.pem',
    ]);
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      'error: cannot read the Consul CA certificate /nonexistent/ca.pem (--consul-cacert): no such file\n',
    );
  });
});
