/**
 * One etcd registry for Go and Node services: grpc-go peers built from Go modules
 * (test/interop/etcd-go) against a real etcd 3.4.
 * - A grpc-go server registered by etcd's own `endpoints.Manager` is found and called by a
 *   grpc-js client on an `etcd://` target, metadata included.
 * - Node servers registered by our helper are found and called by a grpc-go client through etcd's
 *   own resolver (`go.etcd.io/etcd/client/v3/naming/resolver`).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { LoadBalancerObserver, OBSERVER_OPTION } from '@grpc-lb/core';
import { registerEndpoint, registerEtcd, type EtcdRegistration } from '@grpc-lb/resolver-etcd';
import { loadGreeterService, sayHello, startBackends, waitFor } from './harness';
import {
  buildEtcdGoInterop,
  ensureEtcd,
  requireEtcd,
  requireGo,
  startEtcd,
  type Etcd,
  type EtcdGoInterop,
} from './support/etcd';
import { freePort } from './support/server-process';

registerEtcd({ grpc });
const Greeter = loadGreeterService();

let etcd: Etcd | undefined;
let peers: EtcdGoInterop | undefined;
let setupError: Error | undefined;

before(async () => {
  try {
    ensureEtcd();
    [etcd, peers] = await Promise.all([startEtcd(), buildEtcdGoInterop()]);
    const report = { goBuildMs: peers.buildMs, cached: peers.cached, dir: peers.dir };
    process.stdout.write(`etcd Go interop peers: ${JSON.stringify(report)}\n`);
  } catch (error) {
    setupError = error instanceof Error ? error : new Error(String(error));
  }
});
after(async () => {
  await etcd?.dispose();
});

function ready(
  t: Parameters<typeof requireGo>[0],
): { etcd: Etcd; peers: EtcdGoInterop } | undefined {
  if (!requireEtcd(t) || !requireGo(t)) return undefined;
  if (setupError !== undefined) throw setupError;
  return { etcd: etcd!, peers: peers! };
}

/** Starts the Go server and waits for its "registered" line. */
async function startGoServer(
  binary: string,
  args: string[],
): Promise<{ child: ChildProcess; registered: { registered: string; addr: string } }> {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const registered = await new Promise<{ registered: string; addr: string }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new Error(`Go server not registered; ${stderr}`)),
      20_000,
    );
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as { registered: string; addr: string });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Go server exited ${String(code)}: ${stderr}`));
    });
  });
  return { child, registered };
}

let serial = 0;
function service(name: string): string {
  return `services/${name}-${process.pid}-${++serial}`;
}

describe('etcd naming interop with Go (grpc-go + go.etcd.io/etcd/client/v3 3.5)', () => {
  test("a grpc-go server registered by etcd's endpoints.Manager is discovered and called by a grpc-js client", async (t) => {
    const env = ready(t);
    if (!env) return;
    const svc = service('go-server');
    const servers: ChildProcess[] = [];
    const observer = new LoadBalancerObserver();
    const client = new Greeter(
      `etcd://${env.etcd.endpoint}/${svc}`,
      grpc.credentials.createInsecure(),
      { 'grpc.use_local_subchannel_pool': 1, [OBSERVER_OPTION]: observer },
    );
    try {
      const addresses: string[] = [];
      for (const [i, host] of ['127.0.0.2', '127.0.0.3'].entries()) {
        const addr = `${host}:${await freePort(host)}`;
        const { child, registered } = await startGoServer(env.peers.server, [
          '-etcd',
          env.etcd.endpoint,
          '-prefix',
          svc,
          '-addr',
          addr,
          '-name',
          `go-${i + 1}`,
          '-version',
          `v${i + 1}`,
        ]);
        servers.push(child);
        assert.equal(registered.registered, `${svc}/go-${i + 1}`);
        addresses.push(addr);
      }
      const raw = await env.etcd.etcdctl('get', `${svc}/go-1`, '--print-value-only');
      assert.match(
        raw,
        /^\{"Op":0,"Addr":"127\.0\.0\.2:\d+","Metadata":\{"version":"v1","weight":1\}\}/,
      );

      const seen = new Map<string, number>();
      await waitFor(
        async () => {
          const reply = await sayHello(client, 'node', { deadlineMs: 2_000 });
          assert.equal(reply.message, 'Hello node');
          seen.set(reply.address, (seen.get(reply.address) ?? 0) + 1);
          return addresses.every((a) => seen.has(a));
        },
        { timeoutMs: 15_000, message: `calls to both Go servers (${[...seen.keys()].join(',')})` },
      );
      // etcd's Go resolver drops Metadata; ours hands it to the balancer.
      const endpoints = observer.endpoints();
      assert.deepEqual(endpoints.map((e) => [e.address, e.labels, e.weight]).sort(), [
        [addresses[0], { version: 'v1' }, 1],
        [addresses[1], { version: 'v2' }, 1],
      ]);

      // SIGTERM: the Go server deletes its key (DeleteEndpoint) and the client drops it.
      servers[0]!.kill('SIGTERM');
      await waitFor(() => observer.endpoints().length === 1, {
        timeoutMs: 10_000,
        message: 'the deregistered Go server out of the channel',
      });
      for (let i = 0; i < 20; i++) {
        assert.equal((await sayHello(client, 'node')).address, addresses[1]);
      }
    } finally {
      client.close();
      for (const child of servers) child.kill('SIGKILL');
    }
  });

  test("Node servers registered by our helper are discovered and called by grpc-go through etcd's resolver", async (t) => {
    const env = ready(t);
    if (!env) return;
    const svc = service('node-server');
    const backends = await startBackends({ count: 2 });
    const registrations: EtcdRegistration[] = [];
    try {
      for (const [i, backend] of backends.backends.entries()) {
        registrations.push(
          await registerEndpoint({
            endpoints: env.etcd.endpoint,
            service: svc,
            host: backend.host,
            port: backend.port,
            labels: { version: `v${i + 1}` },
            weight: 2,
            ttlSeconds: 10,
          }),
        );
      }
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile(
          env.peers.client,
          [
            '-etcd',
            env.etcd.endpoint,
            '-prefix',
            svc,
            '-expect',
            backends.addresses.join(','),
            '-calls',
            '40',
            '-timeout',
            '20s',
          ],
          { timeout: 30_000 },
          (error, out, err) =>
            error ? reject(new Error(`${error.message}\n${out}\n${err}`)) : resolve(out),
        );
      });
      const result = JSON.parse(stdout.trim().split('\n').pop()!) as {
        calls: number;
        covered: boolean;
        errors: number;
        perAddress: Record<string, number>;
      };
      assert.equal(result.covered, true, stdout);
      assert.equal(result.errors, 0, stdout);
      assert.ok(result.calls >= 40);
      for (const address of backends.addresses)
        assert.ok((result.perAddress[address] ?? 0) > 0, stdout);
      t.diagnostic(stdout.trim());
    } finally {
      for (const r of registrations) await r.deregister();
      await backends.stopAll();
    }
  });
});
