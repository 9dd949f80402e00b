/**
 * One service found in two registries at once, through a composite target, against the real
 * servers: "VMs" registered in a Consul agent, and in etcd a grpc-go server registered by etcd's
 * own `endpoints.Manager` beside a Node server registered by our helper. The union takes calls,
 * an address in both registries is one endpoint, and one registry frozen leaves the other
 * followed with no failed call.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { LoadBalancerObserver, OBSERVER_OPTION } from '@grpc-lb/core';
import { registerConsul } from '@grpc-lb/resolver-consul';
import { registerEndpoint, registerEtcd, type EtcdRegistration } from '@grpc-lb/resolver-etcd';
import { podsSharePolicy } from './support/source-policy';
import {
  type Backend,
  type GreeterClient,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from './harness';
import { assertSurvived } from './support/chaos';
import { requireConsul, startConsul, type Consul } from './support/consul';
import { buildEtcdGoInterop, requireEtcd, requireGo, startEtcd } from './support/etcd';
import { startGoEtcdServer } from './support/go-etcd-server';
import { startLoad, waitUntilQuiet } from './support/load';
import { freePort, httpRequest } from './support/server-process';
import { serverFixture } from './support/server-fixture';
import { openSocketsTo } from './support/sockets';

const Greeter = loadGreeterService();
const consul = serverFixture('consul', () => startConsul(), requireConsul);
const etcd = serverFixture(
  'etcd',
  () => startEtcd(),
  (t) => Promise.resolve(requireEtcd(t)),
);
const warnings: string[] = [];
const logger = { warn: (m: string) => warnings.push(m) };

let serial = 0;
function names(): { consul: string; etcd: string } {
  const id = `${process.pid}-${++serial}`;
  return { consul: `hello-${id}`, etcd: `services/hello-${id}` };
}

async function registerInConsul(
  c: Consul,
  service: string,
  b: Backend,
  version: string,
): Promise<void> {
  const result = await c.api('PUT', '/v1/agent/service/register', {
    ID: `${service}-${b.name}`,
    Name: service,
    Address: b.host,
    Port: b.port,
    Meta: { version },
  });
  assert.equal(result.status, 200, result.body);
}

async function deregisterFromConsul(c: Consul, service: string, b: Backend): Promise<void> {
  const result = await c.api('PUT', `/v1/agent/service/deregister/${service}-${b.name}`);
  assert.equal(result.status, 200, result.body);
}

describe('composite: one service across Consul and etcd (Go and Node members)', () => {
  test('the union of both registries takes calls: Go and Node members of etcd, VMs of Consul; one address in both is one endpoint', async (t) => {
    const [c, e] = [await consul.get(t), await etcd.get(t)];
    if (!c || !e || !requireGo(t)) return;
    const peers = await buildEtcdGoInterop();
    registerConsul({ grpc, address: c.address, logger });
    registerEtcd({ grpc, logger });
    const svc = names();
    const backends = await startBackends({ count: 3, firstHost: 20 });
    const [nodeMember, vm1, vm2] = backends.backends as [Backend, Backend, Backend];
    const registrations: EtcdRegistration[] = [];
    let go: ChildProcess | undefined;
    const observer = new LoadBalancerObserver();
    const target = `composite:///hello?vms=consul:///${svc.consul}&etcd=etcd://${e.endpoint}/${svc.etcd}`;
    const client = new Greeter(target, grpc.credentials.createInsecure(), {
      [OBSERVER_OPTION]: observer,
    });
    try {
      await consul.logged(async () => {
        await registerInConsul(c, svc.consul, vm1, 'v1');
        await registerInConsul(c, svc.consul, vm2, 'v2');
        // A Node member registered by our helper, and vm2 registered in etcd too (as during a
        // migration, where an instance can be in both): one endpoint, Consul's (listed first).
        for (const [b, version] of [
          [nodeMember, 'v3'],
          [vm2, 'v9'],
        ] as const) {
          registrations.push(
            await registerEndpoint({
              endpoints: e.endpoint,
              service: svc.etcd,
              host: b.host,
              port: b.port,
              labels: { version },
              ttlSeconds: 10,
            }),
          );
        }
        const goAddress = `127.0.0.30:${await freePort('127.0.0.30')}`;
        const started = await startGoEtcdServer(peers.server, [
          '-etcd',
          e.endpoint,
          '-prefix',
          svc.etcd,
          '-addr',
          goAddress,
          '-name',
          'go-1',
          '-version',
          'v3',
        ]);
        go = started.child;
        const members = [vm1.address, vm2.address, nodeMember.address, goAddress];
        const seen = new Map<string, number>();
        await waitFor(
          async () => {
            const reply = await sayHello(client, 'composite', { deadlineMs: 2_000 });
            seen.set(reply.address, (seen.get(reply.address) ?? 0) + 1);
            return members.every((a) => seen.has(a));
          },
          {
            timeoutMs: 20_000,
            message: `calls to all four members (${[...seen.keys()].join(', ')})`,
          },
        );
        const labels = new Map(
          observer
            .endpoints()
            .map((ep) => [ep.address, `${ep.labels['version']} from ${ep.labels['source']}`]),
        );
        assert.deepEqual(
          [vm1.address, vm2.address, nodeMember.address, goAddress].map((a) => labels.get(a)),
          ['v1 from vms', 'v2 from vms', 'v3 from etcd', 'v3 from etcd'],
        );
        assert.equal(labels.size, 4, JSON.stringify([...labels]));
        // Round robin over the union: every member its share.
        const counts = new Map<string, number>();
        for (let i = 0; i < 200; i++) {
          const reply = await sayHello(client, 'composite');
          counts.set(reply.address, (counts.get(reply.address) ?? 0) + 1);
        }
        for (const a of members)
          assert.ok(Math.abs((counts.get(a) ?? 0) - 50) <= 2, JSON.stringify([...counts]));
      });
    } finally {
      client.close();
      go?.kill('SIGKILL');
      for (const r of registrations) await r.deregister().catch(() => undefined);
      await backends.stopAll();
    }
  });

  test('etcd frozen: its members keep their calls, Consul changes are followed, no call fails', async (t) => {
    const [c, e] = [await consul.get(t), await etcd.get(t)];
    if (!c || !e) return;
    registerConsul({ grpc, address: c.address, logger });
    registerEtcd({ grpc, logger });
    const svc = names();
    const backends = await startBackends({ count: 4, firstHost: 40 });
    const [pod, vm1, vm2, vm3] = backends.backends as [Backend, Backend, Backend, Backend];
    const registration = await registerEndpoint({
      endpoints: e.endpoint,
      service: svc.etcd,
      host: pod.host,
      port: pod.port,
      ttlSeconds: 30,
    });
    const client = new Greeter(
      `composite:///hello?vms=consul:///${svc.consul}&pods=etcd://${e.endpoint}/${svc.etcd}`,
      grpc.credentials.createInsecure(),
    );
    let thawed = false;
    try {
      await consul.logged(async () => {
        await registerInConsul(c, svc.consul, vm1, 'v1');
        await registerInConsul(c, svc.consul, vm2, 'v1');
        const load = startLoad(client, { concurrency: 3, deadlineMs: 5_000, pauseMs: 2 });
        try {
          await waitFor(() => [pod, vm1, vm2].every((b) => load.result.perBackend.has(b.address)), {
            timeoutMs: 15_000,
            message: 'pod, vm1 and vm2 take calls',
          });
          e.freeze();
          warnings.length = 0;
          const podCallsAtFreeze = load.result.perBackend.get(pod.address) ?? 0;
          const addedAt = performance.now();
          await registerInConsul(c, svc.consul, vm3, 'v1');
          await waitFor(() => load.result.perBackend.has(vm3.address), {
            timeoutMs: 15_000,
            intervalMs: 5,
            message: 'vm3, registered in Consul while etcd is frozen, takes calls',
          });
          const addedMs = performance.now() - addedAt;
          const removedAt = performance.now();
          await deregisterFromConsul(c, svc.consul, vm1);
          const lastCall = await waitUntilQuiet(load, vm1.address, {
            quietMs: 1_000,
            timeoutMs: 15_000,
            message: 'vm1, deregistered from Consul, stops taking calls',
          });
          const removedMs = Math.max(0, lastCall - removedAt);
          assert.ok(
            (load.result.perBackend.get(pod.address) ?? 0) > podCallsAtFreeze + 50,
            'the etcd member keeps taking calls while etcd is frozen',
          );
          e.thaw();
          thawed = true;
          const result = await load.stop();
          t.diagnostic(
            JSON.stringify({
              calls: result.ok,
              failed: result.errors.length,
              addedMs: Math.round(addedMs),
              removedMs: Math.round(removedMs),
            }),
          );
          assertSurvived(result.errors, addedMs, removedMs);
        } finally {
          await load.stop();
        }
      });
    } finally {
      if (!thawed) e.thaw();
      client.close();
      await registration.deregister().catch(() => undefined);
      await backends.stopAll();
    }
  });
  test('a policy document in Consul KV moves the pods’ share of the composite live, with no reconnect; a bad one is kept out', async (t) => {
    const [c, e] = [await consul.get(t), await etcd.get(t)];
    if (!c || !e) return;
    registerConsul({ grpc, address: c.address, logger });
    registerEtcd({ grpc, logger });
    const svc = names();
    const key = `grpc-lb/${svc.consul}`;
    const backends = await startBackends({ count: 4, firstHost: 60 });
    const [vm1, vm2, pod1, pod2] = backends.backends as [Backend, Backend, Backend, Backend];
    const registrations: EtcdRegistration[] = [];
    const observer = new LoadBalancerObserver();
    const applied: string[] = [];
    observer.on('config', (ev) => {
      if (ev.status === 'applied') applied.push(ev.source);
    });
    const putPolicy = async (podsShare: number | string): Promise<void> => {
      const text = typeof podsShare === 'string' ? podsShare : podsSharePolicy(podsShare);
      const result = await httpRequest(`${c.url}/v1/kv/${key}`, {
        method: 'PUT',
        body: text,
        timeoutMs: 10_000,
      });
      assert.equal(result.status, 200, result.body);
    };
    let client: GreeterClient | undefined;
    try {
      await consul.logged(async () => {
        await registerInConsul(c, svc.consul, vm1, 'v1');
        await registerInConsul(c, svc.consul, vm2, 'v1');
        for (const b of [pod1, pod2]) {
          registrations.push(
            await registerEndpoint({
              endpoints: e.endpoint,
              service: svc.etcd,
              host: b.host,
              port: b.port,
              ttlSeconds: 30,
            }),
          );
        }
        await putPolicy(0);
        client = new Greeter(
          `composite:///hello?vms=consul:///${svc.consul}?config=${key}&pods=etcd://${e.endpoint}/${svc.etcd}`,
          grpc.credentials.createInsecure(),
          { [OBSERVER_OPTION]: observer, 'grpc.use_local_subchannel_pool': 1 },
        );
        const greeter = client;
        const podsShare = async (calls: number): Promise<number> => {
          let pods = 0;
          for (let i = 0; i < calls; i++) {
            const reply = await sayHello(greeter, 'policy', { deadlineMs: 5_000 });
            if (reply.address === pod1.address || reply.address === pod2.address) pods++;
          }
          return (pods / calls) * 100;
        };
        assert.equal(
          await podsShare(100),
          0,
          'the first calls already follow the document: 0% to pods',
        );
        assert.match(
          applied[0] ?? '',
          /^source vms: Consul KV grpc-lb\/hello-\d+-\d+ \(index \d+\)$/,
        );
        await waitFor(
          async () =>
            (await Promise.all([vm1, vm2, pod1, pod2].map((b) => b.stats()))).every(
              (st) => st.connectionsAccepted === 1,
            ),
          {
            timeoutMs: 10_000,
            message: 'one connection to each of the four, pods included (0% keeps them connected)',
          },
        );
        for (const share of [10, 50, 100]) {
          const before = applied.length;
          await putPolicy(share);
          await waitFor(() => applied.length > before, {
            timeoutMs: 10_000,
            message: `${share}% applied`,
          });
          assert.equal(
            await podsShare(200),
            share,
            `pods' share after the document says ${share}%`,
          );
        }
        warnings.length = 0;
        await putPolicy(podsSharePolicy(0).replace('"weight":100', '"weight":-1'));
        await waitFor(
          () =>
            warnings.some((w) =>
              /service config from source vms: Consul KV .*split\[0\]\.weight/.test(w),
            ),
          {
            timeoutMs: 10_000,
            message: 'the bad document refused, naming the key and the field',
          },
        );
        assert.equal(await podsShare(100), 100, 'the last good document (100%) still applies');
        const accepted = await Promise.all(
          [vm1, vm2, pod1, pod2].map(async (b) => (await b.stats()).connectionsAccepted),
        );
        assert.deepEqual(accepted, [1, 1, 1, 1], 'no reconnect through four policy changes');
        // Closing the client stops every source: no connection to the agent stays open.
        assert.ok(openSocketsTo(c.httpPort) > 0);
        greeter.close();
        await waitFor(() => openSocketsTo(c.httpPort) === 0, {
          timeoutMs: 10_000,
          message: 'no connection to the Consul agent after client.close()',
        });
      });
    } finally {
      client?.close();
      for (const r of registrations) await r.deregister().catch(() => undefined);
      await backends.stopAll();
    }
  });
});
