/**
 * The Consul resolver and registration helper against a real agent serving its HTTP API over
 * HTTPS with `verify_incoming` (a client certificate is required) and ACLs on (default deny):
 * the `ca`/`cert`/`key` options (and CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY), a token
 * file rotated while the client runs, and what a missing client certificate looks like.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { LoadBalancerObserver, OBSERVER_OPTION, register } from '@grpc-lb/core';
import { createConsulResolverFactory, registerService } from '@grpc-lb/resolver-consul';
import {
  type GreeterClient,
  isServiceError,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
  type BackendSet,
} from './harness';
import { createCa, type CertPair } from './support/certs';
import { requireConsul, startConsul, type Consul } from './support/consul';
import { serverFixture } from './support/server-fixture';

const MANAGEMENT = randomUUID();
const Greeter = loadGreeterService();
const certDir = mkdtempSync(join(tmpdir(), 'grpc-lb-consul-tls-'));
after(() => rmSync(certDir, { recursive: true, force: true }));

let ca: CertPair | undefined;
let clientCert: CertPair | undefined;

const consul = serverFixture(
  'consul (HTTPS with verify_incoming, ACLs on)',
  async () => {
    const authority = await createCa(certDir, 'grpc-lb consul test CA');
    ca = authority;
    const server = await authority.issue('server', {
      cn: 'server.dc1.consul',
      sans: ['IP:127.0.0.1', 'DNS:localhost', 'DNS:server.dc1.consul'],
      usage: 'serverAuth,clientAuth',
    });
    clientCert = await authority.issue('client', { cn: 'grpc-lb client', usage: 'clientAuth' });
    return startConsul({
      aclManagementToken: MANAGEMENT,
      tls: { caFile: authority.certFile, certFile: server.certFile, keyFile: server.keyFile },
    });
  },
  requireConsul,
);

async function aclToken(c: Consul, name: string, rules: string): Promise<string> {
  const policy = await c.api('PUT', '/v1/acl/policy', { Name: name, Rules: rules });
  assert.equal(policy.status, 200, policy.body);
  const token = await c.api('PUT', '/v1/acl/token', { Policies: [{ Name: name }] });
  assert.equal(token.status, 200, token.body);
  return (token.json as { SecretID: string }).SecretID;
}

let serial = 0;
function client(options: Parameters<typeof createConsulResolverFactory>[0], service: string) {
  const scheme = `consul-tls-${++serial}`;
  register({ grpc, resolvers: [createConsulResolverFactory({ ...options, scheme })] });
  return new Greeter(`${scheme}:///${service}`, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc-lb.max_refresh_backoff_ms': 1_000,
  });
}

async function failure(greeter: GreeterClient): Promise<grpc.ServiceError> {
  try {
    await sayHello(greeter, 'tls', { deadlineMs: 5_000 });
  } catch (error) {
    assert.ok(isServiceError(error), String(error));
    return error;
  }
  assert.fail('the call succeeded');
}

describe('Consul over HTTPS with verify_incoming and ACLs (real agent)', () => {
  test('ca/cert/key and a token file: calls succeed; a rotated token file is picked up; no client certificate is named as the cause', async (t) => {
    const c = await consul.get(t);
    if (!c) return;
    let backends: BackendSet | undefined;
    const greeters: GreeterClient[] = [];
    await consul
      .logged(async () => {
        assert.ok(c.httpsPort !== undefined);
        const address = `https://127.0.0.1:${c.httpsPort}`;
        backends = await startBackends({ count: 1 });
        const backend = backends.backends[0]!;
        const registered = await c.api('PUT', '/v1/agent/service/register', {
          ID: 'tls-hello-1',
          Name: 'tls-hello',
          Address: backend.host,
          Port: backend.port,
        });
        assert.equal(registered.status, 200, registered.body);
        const reader = await aclToken(
          c,
          'read-tls-hello',
          'service "tls-hello" { policy = "read" }\nnode_prefix "" { policy = "read" }',
        );

        // A token file holding a token the agent does not know: 403, the file is named.
        const tokenFile = join(certDir, 'token');
        const revoked = randomUUID();
        writeFileSync(tokenFile, `${revoked}\n`);
        const tls = { ca: ca!.certFile, cert: clientCert!.certFile, key: clientCert!.keyFile };
        const rotating = client({ address, ...tls, tokenFile }, 'tls-hello');
        greeters.push(rotating);
        const refused = await failure(rotating);
        assert.equal(refused.code, grpc.status.UNAVAILABLE);
        assert.match(refused.details, /403/);
        assert.match(refused.details, /the file .*token \(the `tokenFile` option\)/);
        assert.ok(!refused.details.includes(revoked), 'the token is not in the message');

        // The token rotated in the file: the next query (the channel's retry) uses it.
        const rotatedAt = performance.now();
        writeFileSync(tokenFile, `${reader}\n`);
        await waitFor(
          async () => {
            try {
              return (await sayHello(rotating, 'tls', { deadlineMs: 1_000 })).address;
            } catch {
              return undefined;
            }
          },
          { timeoutMs: 10_000, intervalMs: 100, message: 'calls succeed with the rotated token' },
        );
        t.diagnostic(
          JSON.stringify({ tokenRotatedToFirstCallMs: Math.round(performance.now() - rotatedAt) }),
        );

        // No client certificate: the TLS handshake is refused, and the message says what to give.
        const noCert = client({ address, ca: ca!.certFile, token: reader }, 'tls-hello');
        greeters.push(noCert);
        const handshake = await failure(noCert);
        assert.equal(handshake.code, grpc.status.UNAVAILABLE);
        assert.match(
          handshake.details,
          /the agent requires a client certificate \(verify_incoming\)/,
        );
        t.diagnostic(`no client certificate: ${handshake.details}`);
        assert.ok(!handshake.details.includes(reader));

        // The registration helper over the same TLS settings (management token: service:write).
        const writerFile = join(certDir, 'writer-token');
        writeFileSync(writerFile, MANAGEMENT);
        const registration = await registerService({
          name: 'tls-registered',
          host: '127.0.0.1',
          port: 50998,
          address,
          ...tls,
          tokenFile: writerFile,
        });
        try {
          const listed = await c.api('GET', '/v1/health/service/tls-registered');
          assert.equal((listed.json as unknown[]).length, 1);
        } finally {
          await registration.deregister();
        }
        // The agent syncs the removal to the catalog right after answering.
        await waitFor(
          async () =>
            ((await c.api('GET', '/v1/health/service/tls-registered')).json as unknown[]).length ===
            0,
          { timeoutMs: 5_000, intervalMs: 100, message: 'deregistered' },
        );
      })
      .finally(async () => {
        for (const greeter of greeters) greeter.close();
        await backends?.stopAll();
      });
  });

  test('config=: the service config KV key is read over the same HTTPS settings and token', async (t) => {
    const c = await consul.get(t);
    if (!c) return;
    let backends: BackendSet | undefined;
    let greeter: GreeterClient | undefined;
    await consul
      .logged(async () => {
        assert.ok(c.httpsPort !== undefined);
        backends = await startBackends({ count: 1 });
        const backend = backends.backends[0]!;
        const registered = await c.api('PUT', '/v1/agent/service/register', {
          ID: 'tls-kv-1',
          Name: 'tls-kv',
          Address: backend.host,
          Port: backend.port,
        });
        assert.equal(registered.status, 200, registered.body);
        const written = await c.api('PUT', '/v1/kv/grpc-lb/tls-kv', {
          loadBalancingConfig: [{ round_robin: {} }],
        });
        assert.equal(written.status, 200, written.body);
        const reader = await aclToken(
          c,
          'read-tls-kv',
          'service "tls-kv" { policy = "read" }\nnode_prefix "" { policy = "read" }\nkey_prefix "grpc-lb/" { policy = "read" }',
        );
        const scheme = `consul-tls-${++serial}`;
        register({
          grpc,
          resolvers: [
            createConsulResolverFactory({
              scheme,
              address: `https://127.0.0.1:${c.httpsPort}`,
              ca: ca!.certFile,
              cert: clientCert!.certFile,
              key: clientCert!.keyFile,
              token: reader,
            }),
          ],
        });
        const observer = new LoadBalancerObserver();
        greeter = new Greeter(
          `${scheme}:///tls-kv?config=grpc-lb/tls-kv`,
          grpc.credentials.createInsecure(),
          { 'grpc.use_local_subchannel_pool': 1, [OBSERVER_OPTION]: observer },
        );
        assert.equal(
          (await sayHello(greeter, 'tls', { deadlineMs: 5_000 })).address,
          backend.address,
        );
        const index = (
          (await c.api('GET', '/v1/kv/grpc-lb/tls-kv')).json as { ModifyIndex: number }[]
        )[0]!.ModifyIndex;
        assert.equal(
          observer.serviceConfigs()[0]?.source,
          `Consul KV grpc-lb/tls-kv (index ${index})`,
        );
      })
      .finally(async () => {
        greeter?.close();
        await backends?.stopAll();
      });
  });
});
