/**
 * dns+lb: end to end — real grpc-js backends (127.0.0.x, one port, like the pods of a headless
 * Service), a real DNS server (bind9, changed live with nsupdate), steady load.
 */
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { ConfigError, TargetError, WEIGHTED_ROUND_ROBIN_POLICY } from '@grpc-lb/core';
import { createDnsResolverFactory, registerDns } from '@grpc-lb/resolver-dns';
import {
  type GreeterClient,
  isServiceError,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from './harness';
import { startLoad } from './support/load';
import { printBind9LogsOnFailure, requireBind9, startBind9, type Bind9 } from './support/bind9';

const warnings: string[] = [];
const resolvConfDir = mkdtempSync(join(tmpdir(), 'grpc-lb-dns-grpc-'));
const resolvConfPath = join(resolvConfDir, 'resolv.conf');
const confFactory = createDnsResolverFactory({
  scheme: 'dns+conf',
  resolvConfPath,
  hostsPath: false,
});
registerDns({
  grpc,
  resolvers: [confFactory],
  logger: { warn: (message) => warnings.push(message) },
});
const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();
const LOCAL_POOL = { 'grpc.use_local_subchannel_pool': 1 };

let shared: Promise<Bind9> | undefined;
after(async () => {
  rmSync(resolvConfDir, { recursive: true, force: true });
  if (shared) await (await shared).dispose();
});

async function bind9(t: TestContext): Promise<Bind9 | undefined> {
  if (!requireBind9(t)) return undefined;
  shared ??= startBind9();
  return shared;
}

async function callError(client: GreeterClient): Promise<grpc.ServiceError> {
  try {
    await sayHello(client, 'test', { deadlineMs: 5_000 });
  } catch (error) {
    if (isServiceError(error)) return error;
    throw error;
  }
  assert.fail('the call succeeded');
}

describe('dns+lb: with real backends and bind9', () => {
  test('scale up and down under load: a new A record gets calls within the interval; a removed one stops getting them; no call fails', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    const set = await startBackends({ count: 3, firstHost: 30 });
    const [b1, b2, b3] = set.backends;
    const name = 'scale.svc.test.';
    await dns.update(`add ${name} 1 A ${b1!.host}`, `add ${name} 1 A ${b2!.host}`);
    const client = new Greeter(
      `dns+lb://${dns.address}/scale.svc.test:${set.port}?interval=1s`,
      insecure,
      LOCAL_POOL,
    );
    const load = startLoad(client, { concurrency: 4 });
    try {
      await printBind9LogsOnFailure(dns, async () => {
        await waitFor(() => load.result.perBackend.size === 2, {
          timeoutMs: 10_000,
          message: 'calls to both backends',
        });
        const added = performance.now();
        await dns.update(`add ${name} 1 A ${b3!.host}`);
        await waitFor(() => load.result.perBackend.has(b3!.address), {
          timeoutMs: 10_000,
          message: `a call to the new backend ${b3!.address}`,
        });
        const firstCallMs = performance.now() - added;
        assert.ok(firstCallMs <= 1_000 + 1_500, `first call after ${Math.round(firstCallMs)} ms`);

        await dns.update(`delete ${name} A ${b1!.host}`);
        await waitFor(async () => (await b1!.stats()).connectionsOpen === 0, {
          timeoutMs: 10_000,
          message: `the client to drop its connection to ${b1!.address}`,
        });
        const callsToRemoved = load.result.perBackend.get(b1!.address);
        const okBefore = load.result.ok;
        await waitFor(() => load.result.ok >= okBefore + 300, {
          timeoutMs: 10_000,
          message: '300 more calls',
        });
        assert.equal(load.result.perBackend.get(b1!.address), callsToRemoved);
      });
    } finally {
      const result = await load.stop();
      client.close();
      await set.stopAll();
      assert.deepEqual(
        result.errors.map((e) => e.message),
        [],
      );
    }
  });

  test('SRV records give each backend its port and weight (grpc-lb.weighted_round_robin, 1:3)', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    // Two sets: two ports, so the ports can only have come from the SRV records.
    const light = await startBackends({ count: 1, firstHost: 40 });
    const heavy = await startBackends({ count: 1, firstHost: 41 });
    const client = new Greeter(`dns+lb://${dns.address}/weighted.svc.test?srv=grpc`, insecure, {
      ...LOCAL_POOL,
      'grpc.service_config': JSON.stringify({
        loadBalancingConfig: [{ [WEIGHTED_ROUND_ROBIN_POLICY]: {} }],
      }),
    });
    try {
      await printBind9LogsOnFailure(dns, async () => {
        await dns.update(
          `add _grpc._tcp.weighted.svc.test. 1 SRV 0 1 ${light.port} light.svc.test.`,
          `add _grpc._tcp.weighted.svc.test. 1 SRV 0 3 ${heavy.port} heavy.svc.test.`,
          `add light.svc.test. 1 A ${light.backends[0]!.host}`,
          `add heavy.svc.test. 1 A ${heavy.backends[0]!.host}`,
        );
        await sayHello(client, 'warm-up', { waitForReady: true });
        await waitFor(
          async () => {
            const seen = new Set<string>();
            for (let i = 0; i < 8; i++) seen.add((await sayHello(client, 'probe')).address);
            return seen.size === 2;
          },
          { timeoutMs: 10_000, message: 'both SRV backends in rotation' },
        );
        const counts = new Map<string, number>();
        for (let i = 0; i < 2_000; i++) {
          const reply = await sayHello(client, 'weighted');
          counts.set(reply.address, (counts.get(reply.address) ?? 0) + 1);
        }
        const heavyShare = (counts.get(heavy.backends[0]!.address) ?? 0) / 2_000;
        const lightShare = (counts.get(light.backends[0]!.address) ?? 0) / 2_000;
        assert.ok(Math.abs(heavyShare - 0.75) <= 0.01, `heavy share ${heavyShare}`);
        assert.ok(Math.abs(lightShare - 0.25) <= 0.01, `light share ${lightShare}`);
      });
    } finally {
      client.close();
      await Promise.all([light.stopAll(), heavy.stopAll()]);
    }
  });

  test('AAAA: a backend on [::1] is reached through its AAAA record', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    const server = new grpc.Server();
    const service = (Greeter as unknown as { service: grpc.ServiceDefinition }).service;
    server.addService(service, {
      SayHello: (
        call: grpc.ServerUnaryCall<{ name: string }, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) =>
        callback(null, {
          message: `Hello ${call.request.name}`,
          backend: 'v6',
          address: '[::1]',
          labels: {},
        }),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('[::1]:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    await dns.update('add v6.svc.test. 1 AAAA ::1');
    const client = new Greeter(`dns+lb://${dns.address}/v6.svc.test:${port}`, insecure, LOCAL_POOL);
    try {
      const reply = await sayHello(client, 'six', { waitForReady: true });
      assert.equal(reply.backend, 'v6');
    } finally {
      client.close();
      server.forceShutdown();
    }
  });

  test('bind9 stopped under load: no call fails on the last good set; back up: a new record gets calls', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    const set = await startBackends({ count: 3, firstHost: 50 });
    const [b1, b2, b3] = set.backends;
    await dns.update(
      `add outage.svc.test. 1 A ${b1!.host}`,
      `add outage.svc.test. 1 A ${b2!.host}`,
    );
    const target = `dns+lb://${dns.address}/outage.svc.test:${set.port}?interval=300ms&min_interval=100ms&timeout=200ms&attempts=1`;
    const client = new Greeter(target, insecure, LOCAL_POOL);
    const load = startLoad(client, { concurrency: 4 });
    try {
      await printBind9LogsOnFailure(dns, async () => {
        await waitFor(() => load.result.perBackend.size === 2, {
          timeoutMs: 10_000,
          message: 'calls to both backends',
        });
        const warned = warnings.length;
        try {
          await dns.stop();
          await waitFor(
            () =>
              warnings
                .slice(warned)
                .some(
                  (w) => w.includes('outage.svc.test') && /keeping the last 2 endpoints/.test(w),
                ),
            { timeoutMs: 10_000, message: 'the resolver to report DNS down, keeping 2 endpoints' },
          );
          const okBefore = load.result.ok;
          await waitFor(() => load.result.ok >= okBefore + 300, {
            timeoutMs: 10_000,
            message: '300 calls while DNS is down',
          });
        } finally {
          await dns.start();
        }
        await dns.update(`add outage.svc.test. 1 A ${b3!.host}`);
        await waitFor(() => load.result.perBackend.has(b3!.address), {
          timeoutMs: 10_000,
          message: 'a call to the backend added after DNS came back',
        });
      });
    } finally {
      const result = await load.stop();
      client.close();
      await set.stopAll();
      assert.deepEqual(
        result.errors.map((e) => e.message),
        [],
      );
    }
  });

  test('a nameserver that starts answering garbage under load: no crash, no empty set, no failed call', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    const garbage = dgram.createSocket('udp4');
    let junk = 0;
    garbage.on('message', (message, rinfo) => {
      junk++;
      const reply = Buffer.from(message);
      reply[0] = reply[0]! ^ 0xff; // wrong id
      reply[2] = reply[2]! | 0x80;
      garbage.send(reply, rinfo.port, rinfo.address);
      garbage.send(Buffer.from('garbage'), rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve) => garbage.bind(0, '127.0.0.1', resolve));
    const set = await startBackends({ count: 2, firstHost: 60 });
    await dns.update(
      `add junk.svc.test. 1 A ${set.backends[0]!.host}`,
      `add junk.svc.test. 1 A ${set.backends[1]!.host}`,
    );
    writeFileSync(resolvConfPath, `nameserver ${dns.address}\noptions timeout:1 attempts:1\n`);
    const client = new Greeter(
      `dns+conf:///junk.svc.test.:${set.port}?interval=300ms&min_interval=100ms&timeout=200ms`,
      insecure,
      LOCAL_POOL,
    );
    const load = startLoad(client, { concurrency: 4 });
    try {
      await printBind9LogsOnFailure(dns, async () => {
        await waitFor(() => load.result.perBackend.size === 2, {
          timeoutMs: 10_000,
          message: 'calls to both backends',
        });
        const warned = warnings.length;
        writeFileSync(resolvConfPath, `nameserver 127.0.0.1:${garbage.address().port}\n`);
        await waitFor(
          () =>
            warnings
              .slice(warned)
              .some((w) => w.includes('junk.svc.test') && /ignored \d+ unusable answer/.test(w)),
          { timeoutMs: 10_000, message: 'the resolver to report the unusable answers' },
        );
        assert.ok(junk >= 2);
        const okBefore = load.result.ok;
        await waitFor(() => load.result.ok >= okBefore + 300, {
          timeoutMs: 10_000,
          message: '300 calls while DNS answers garbage',
        });
      });
    } finally {
      const result = await load.stop();
      client.close();
      garbage.close();
      await set.stopAll();
      assert.deepEqual(
        result.errors.map((e) => e.message),
        [],
      );
    }
  });

  test('a dead backend makes the channel re-resolve at once, long before the interval', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    const set = await startBackends({ count: 3, firstHost: 70 });
    const [b1, b2, b3] = set.backends;
    await dns.update(
      `add failover.svc.test. 1 A ${b1!.host}`,
      `add failover.svc.test. 1 A ${b2!.host}`,
    );
    const client = new Greeter(
      `dns+lb://${dns.address}/failover.svc.test:${set.port}?interval=10m`,
      insecure,
      LOCAL_POOL,
    );
    const load = startLoad(client, { concurrency: 4 });
    try {
      await waitFor(() => load.result.perBackend.size === 2, {
        timeoutMs: 10_000,
        message: 'calls to both backends',
      });
      // A pod is replaced: its record goes, a new one comes, the old process dies.
      await dns.update(
        `delete failover.svc.test. A ${b2!.host}`,
        `add failover.svc.test. 1 A ${b3!.host}`,
      );
      const killed = performance.now();
      await b2!.kill();
      await waitFor(() => load.result.perBackend.has(b3!.address), {
        timeoutMs: 10_000,
        message: 'the replacement backend to get calls (the interval is 10 minutes)',
      });
      assert.ok(performance.now() - killed < 5_000);
    } finally {
      await load.stop();
      client.close();
      await set.stopAll();
    }
  });

  test('no records: calls fail fast with UNAVAILABLE naming the target and NXDOMAIN', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    const client = new Greeter(
      `dns+lb://${dns.address}/nothing.svc.test:50051`,
      insecure,
      LOCAL_POOL,
    );
    try {
      const started = performance.now();
      const error = await callError(client);
      assert.equal(error.code, grpc.status.UNAVAILABLE);
      assert.match(error.details, /no endpoints for dns\+lb:.*nothing.svc.test.*NXDOMAIN/);
      assert.ok(performance.now() - started < 2_000);
    } finally {
      client.close();
    }
  });

  test('bad targets and options throw typed errors from the client constructor', () => {
    for (const [target, problem] of [
      ['dns+lb:///api.svc.test:0', /invalid port "0"/],
      ['dns+lb://ns.example/api.svc.test:1', /must be an IP address/],
      ['dns+lb:///api.svc.test:1?interval=5', /parameter interval/],
      ['dns+lb:///_grpc._tcp.api.svc.test:50051', /takes its ports from the SRV records/],
      ['dns+lb:///api.svc.test:1?color=blue', /unknown parameter "color"/],
    ] as const) {
      assert.throws(
        () => new Greeter(target, insecure),
        (error: unknown) =>
          error instanceof TargetError &&
          error.code === 'BAD_TARGET' &&
          problem.test(error.message),
        target,
      );
    }
    assert.throws(
      () => new Greeter('dns+lb:///api.svc.test:1', insecure, { 'grpc-lb.dns.interval_ms': 10 }),
      (error: unknown) => error instanceof ConfigError && error.field === 'grpc-lb.dns.interval_ms',
    );
  });
});
