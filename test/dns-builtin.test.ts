/**
 * Taking over grpc-js's own `dns:` scheme (an explicit opt-in): `dns:` targets, and targets with
 * no scheme, then re-resolve on our interval. Its own process, since the takeover is global.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { register, RegistrationError } from '@grpc-lb/core';
import { dnsResolverFactory, registerDns } from '@grpc-lb/resolver-dns';
import { loadGreeterService, sayHello, startBackends, waitFor } from './harness';
import { startLoad } from './support/load';
import { printBind9LogsOnFailure, requireBind9, startBind9, type Bind9 } from './support/bind9';

const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();
let dns: Bind9 | undefined;
after(() => dns?.dispose());

test('registering dns: without the opt-in is refused', () => {
  assert.throws(
    () => register({ grpc, resolvers: [dnsResolverFactory] }),
    (error: unknown) =>
      error instanceof RegistrationError && /replaceBuiltinSchemes: \['dns'\]/.test(error.message),
  );
});

test('with replaceBuiltinDns, dns:// targets re-resolve on the interval (grpc-js never would)', async (t) => {
  if (!requireBind9(t)) return;
  const registration = registerDns({ grpc, replaceBuiltinDns: true });
  assert.ok(registration.schemes.includes('dns') && registration.schemes.includes('dns+lb'));
  dns = await startBind9();
  const server = dns;
  const set = await startBackends({ count: 2, firstHost: 80 });
  await server.update(`add api.svc.test. 1 A ${set.backends[0]!.host}`);
  const client = new Greeter(`dns://${server.address}/api.svc.test:${set.port}`, insecure, {
    'grpc-lb.dns.interval_ms': 500,
    'grpc-lb.dns.min_interval_ms': 100,
  });
  const load = startLoad(client, { concurrency: 2 });
  try {
    await printBind9LogsOnFailure(server, async () => {
      await waitFor(() => load.result.perBackend.size === 1, {
        timeoutMs: 10_000,
        message: 'calls to the first backend',
      });
      await server.update(`add api.svc.test. 1 A ${set.backends[1]!.host}`);
      await waitFor(() => load.result.perBackend.has(set.backends[1]!.address), {
        timeoutMs: 10_000,
        message: 'calls to the added backend',
      });
    });
  } finally {
    const result = await load.stop();
    client.close();
    await set.stopAll();
    assert.equal(result.errors.length, 0);
  }
});

test('with replaceBuiltinDns, a target with no scheme (localhost:port) still resolves, from /etc/hosts', async () => {
  registerDns({ grpc, replaceBuiltinDns: true });
  const set = await startBackends({ count: 1, firstHost: 1 });
  const client = new Greeter(`localhost:${set.port}`, insecure);
  try {
    const reply = await sayHello(client, 'local', { waitForReady: true });
    assert.equal(reply.address, set.backends[0]!.address);
  } finally {
    client.close();
    await set.stopAll();
  }
});
