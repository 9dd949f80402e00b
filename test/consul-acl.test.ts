/**
 * The Consul resolver against a real Consul agent with ACLs on (default deny), where operators
 * lose the most time: Consul answers a token that may not read a service with 200 and an empty
 * list, not a 403. Calls must fail fast with a message that points at the token — which never
 * appears in it — and a token with `service:read` must just work.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { register } from '@grpc-lb/core';
import { createConsulResolverFactory } from '@grpc-lb/resolver-consul';
import {
  type GreeterClient,
  isServiceError,
  loadGreeterService,
  sayHello,
  startBackends,
  type BackendSet,
} from './harness';
import { requireConsul, startConsul, type Consul } from './support/consul';
import { serverFixture } from './support/server-fixture';

const MANAGEMENT = randomUUID();
const Greeter = loadGreeterService();
const consul = serverFixture(
  'consul (ACLs on)',
  () => startConsul({ aclManagementToken: MANAGEMENT }),
  requireConsul,
);

let serial = 0;
/** A client on its own scheme, whose resolver uses `token` (or none). */
function client(c: Consul, service: string, token: string | undefined): GreeterClient {
  const scheme = `consul-acl-${++serial}`;
  register({
    grpc,
    resolvers: [
      createConsulResolverFactory({
        scheme,
        address: c.address,
        ...(token !== undefined ? { token } : {}),
      }),
    ],
  });
  return new Greeter(`${scheme}:///${service}`, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  });
}

async function aclToken(c: Consul, name: string, rules: string): Promise<string> {
  const policy = await c.api('PUT', '/v1/acl/policy', { Name: name, Rules: rules });
  assert.equal(policy.status, 200, policy.body);
  const token = await c.api('PUT', '/v1/acl/token', { Policies: [{ Name: name }] });
  assert.equal(token.status, 200, token.body);
  return (token.json as { SecretID: string }).SecretID;
}

async function failure(greeter: GreeterClient): Promise<grpc.ServiceError> {
  const started = performance.now();
  try {
    await sayHello(greeter, 'acl', { deadlineMs: 5_000 });
  } catch (error) {
    assert.ok(isServiceError(error), String(error));
    assert.ok(performance.now() - started < 4_000, 'fails fast, not at the deadline');
    return error;
  }
  assert.fail('the call succeeded');
}

describe('Consul resolver with ACLs on (real agent, default deny)', () => {
  test('no token, a token without service:read, a bad token: fail fast naming the cause, never the secret; service:read works', async (t) => {
    const c = await consul.get(t);
    if (!c) return;
    let backends: BackendSet | undefined;
    await consul
      .logged(async () => {
        backends = await startBackends({ count: 1 });
        const backend = backends.backends[0]!;
        const registered = await c.api('PUT', '/v1/agent/service/register', {
          ID: 'hello-1',
          Name: 'hello',
          Address: backend.host,
          Port: backend.port,
        });
        assert.equal(registered.status, 200, registered.body);
        // The agent itself (management token) sees it.
        const listed = await c.api('GET', '/v1/health/service/hello?passing=true');
        assert.equal((listed.json as unknown[]).length, 1);

        const anonymous = client(c, 'hello', undefined);
        const other = await aclToken(c, 'read-other', 'service "other" { policy = "read" }');
        const wrong = client(c, 'hello', other);
        const bogus = randomUUID();
        const unknown = client(c, 'hello', bogus);
        const reader = await aclToken(
          c,
          'read-hello',
          'service "hello" { policy = "read" }\nnode_prefix "" { policy = "read" }',
        );
        const allowed = client(c, 'hello', reader);
        try {
          const none = await failure(anonymous);
          assert.equal(none.code, grpc.status.UNAVAILABLE);
          assert.match(none.details, /no passing instances/);
          assert.match(none.details, /ACLs are on, default deny/);
          assert.match(none.details, /no ACL token was given/);

          const lacking = await failure(wrong);
          assert.equal(lacking.code, grpc.status.UNAVAILABLE);
          assert.match(lacking.details, /may lack service:read on "hello"/);
          assert.ok(!lacking.details.includes(other), 'the token is not in the message');

          const refused = await failure(unknown);
          assert.equal(refused.code, grpc.status.UNAVAILABLE);
          assert.match(refused.details, /403 ACL not found: .*is not one the agent knows/);
          assert.ok(!refused.details.includes(bogus), 'the token is not in the message');
          assert.ok(!refused.details.includes(MANAGEMENT));
          t.diagnostic(refused.details);

          const reply = await sayHello(allowed, 'acl', { deadlineMs: 5_000 });
          assert.equal(reply.address, backend.address);
        } finally {
          for (const greeter of [anonymous, wrong, unknown, allowed]) greeter.close();
        }
      })
      .finally(() => backends?.stopAll());
  });

  test('service config from a KV key the token may not read: calls fail naming the key and the ACL rule, never the token; key read works', async (t) => {
    const c = await consul.get(t);
    if (!c) return;
    let backends: BackendSet | undefined;
    await consul
      .logged(async () => {
        backends = await startBackends({ count: 1 });
        const backend = backends.backends[0]!;
        const registered = await c.api('PUT', '/v1/agent/service/register', {
          ID: 'kv-hello-1',
          Name: 'kv-hello',
          Address: backend.host,
          Port: backend.port,
        });
        assert.equal(registered.status, 200, registered.body);
        const written = await c.api('PUT', '/v1/kv/grpc-lb/kv-hello', {
          loadBalancingConfig: [{ round_robin: {} }],
        });
        assert.equal(written.status, 200, written.body);
        const serviceRules =
          'service "kv-hello" { policy = "read" }\nnode_prefix "" { policy = "read" }';
        const noKey = await aclToken(c, 'kv-hello-service-only', serviceRules);
        const withKey = await aclToken(
          c,
          'kv-hello-with-key',
          `${serviceRules}\nkey_prefix "grpc-lb/" { policy = "read" }`,
        );
        const lacking = client(c, 'kv-hello?config=grpc-lb/kv-hello', noKey);
        const allowed = client(c, 'kv-hello?config=grpc-lb/kv-hello', withKey);
        try {
          const refused = await failure(lacking);
          assert.equal(refused.code, grpc.status.UNAVAILABLE);
          assert.match(refused.details, /Consul KV key "grpc-lb\/kv-hello"/);
          assert.match(refused.details, /403/);
          assert.match(refused.details, /lacks key:read on "grpc-lb\/kv-hello"/);
          assert.match(refused.details, /key_prefix "grpc-lb\/" \{ policy = "read" \}/);
          assert.match(refused.details, /key "grpc-lb\/kv-hello" \{ policy = "read" \}/);
          assert.ok(!refused.details.includes(noKey), 'the token is not in the message');
          assert.ok(!refused.details.includes(MANAGEMENT));
          t.diagnostic(refused.details);

          const reply = await sayHello(allowed, 'acl', { deadlineMs: 5_000 });
          assert.equal(reply.address, backend.address);
        } finally {
          lacking.close();
          allowed.close();
        }
      })
      .finally(() => backends?.stopAll());
  });
});
