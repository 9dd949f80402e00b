/**
 * One etcd registry for Go and Node services: grpc-go peers built from Go modules
 * (test/interop/etcd-go) against a real etcd 3.4.
 * - A grpc-go server registered by etcd's own `endpoints.Manager` is found and called by a
 *   grpc-js client on an `etcd://` target, metadata included.
 * - Node servers registered by our helper are found and called by a grpc-go client through etcd's
 *   own resolver (`go.etcd.io/etcd/client/v3/naming/resolver`).
 * - A service config key kept beside the prefix (`<service>.config`, read by our `?config=`) is
 *   invisible to etcd's Go resolver: Go and Node members are both called and nothing is logged;
 *   the same document under the prefix is what that resolver complains about.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  LoadBalancerObserver,
  OBSERVER_OPTION,
  serviceConfig,
  trafficSplit,
  type ConfigEvent,
} from '@grpc-lb/core';
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

interface GoClientRun {
  readonly result: {
    calls: number;
    covered: boolean;
    errors: number;
    lastError: string;
    perAddress: Record<string, number>;
  };
  readonly stdout: string;
  /** What the Go client logged (etcd's client logs warnings here, as JSON lines). */
  readonly stderr: string;
}

/** Runs the grpc-go client on `etcd:///<prefix>`; settles with its result whatever its exit. */
function runGoClient(
  binary: string,
  etcdEndpoint: string,
  prefix: string,
  expect: readonly string[],
  calls: number,
): Promise<GoClientRun> {
  return new Promise((resolve, reject) => {
    execFile(
      binary,
      [
        '-etcd',
        etcdEndpoint,
        '-prefix',
        prefix,
        '-expect',
        expect.join(','),
        '-calls',
        String(calls),
        '-timeout',
        '10s',
      ],
      {
        timeout: 30_000,
        env: {
          ...process.env,
          GRPC_GO_LOG_SEVERITY_LEVEL: 'info',
          GRPC_GO_LOG_VERBOSITY_LEVEL: '2',
        },
      },
      (error, stdout, stderr) => {
        const line = stdout.trim().split('\n').pop() ?? '';
        try {
          resolve({ result: JSON.parse(line) as GoClientRun['result'], stdout, stderr });
        } catch {
          reject(new Error(`${error?.message ?? 'no result'}\n${stdout}\n${stderr}`));
        }
      },
    );
  });
}

/** Every address grpc-go's resolver handed its channels (its INFO log), etcd's own left out. */
function resolvedAddresses(stderr: string, etcdEndpoint: string): string[] {
  const found = new Set<string>();
  for (const match of stderr.matchAll(/"Addr": "([^"]*)"/g)) found.add(match[1]!);
  found.delete(etcdEndpoint);
  return [...found].sort();
}

/** The warnings and errors in the Go client's log: grpc-go's and etcd client's (zap JSON). */
function problems(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((line) => /\b(WARNING|ERROR):|"level":"(warn|error)"/.test(line));
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

  test("a service config key beside the prefix (<service>.config) is invisible to grpc-go's etcd resolver; a grpc-js client on ?config= follows it across the Go and Node members", async (t) => {
    const env = ready(t);
    if (!env) return;
    const svc = service('config-beside');
    const key = `${svc}.config`;
    const document = (version: string): string =>
      JSON.stringify(
        serviceConfig(
          trafficSplit()
            .subset('v1', { version: 'v1' })
            .subset('v2', { version: 'v2' })
            .defaultRoute({ [version]: 100 })
            .onEmptySubset('fail'),
        ),
      );
    const backends = await startBackends({ count: 1, labels: [{ version: 'v2' }] });
    let goServer: ChildProcess | undefined;
    let registration: EtcdRegistration | undefined;
    const observer = new LoadBalancerObserver();
    let client: InstanceType<typeof Greeter> | undefined;
    try {
      const goAddr = `127.0.0.3:${await freePort('127.0.0.3')}`;
      const started = await startGoServer(env.peers.server, [
        '-etcd',
        env.etcd.endpoint,
        '-prefix',
        svc,
        '-addr',
        goAddr,
        '-name',
        'go-1',
        '-version',
        'v1',
      ]);
      goServer = started.child;
      const node = backends.backends[0]!;
      registration = await registerEndpoint({
        endpoints: env.etcd.endpoint,
        service: svc,
        host: node.host,
        port: node.port,
        labels: node.labels,
        ttlSeconds: 10,
      });
      await env.etcd.etcdctl('put', key, document('v2'));
      const members = [goAddr, node.address];

      // grpc-go through etcd's own resolver: both members, no error, nothing logged.
      const beside = await runGoClient(env.peers.client, env.etcd.endpoint, svc, members, 20);
      t.diagnostic(`grpc-go with ${key} beside the prefix: ${beside.stdout.trim()}`);
      assert.equal(beside.result.covered, true, beside.stdout);
      assert.equal(beside.result.errors, 0, beside.stdout);
      assert.deepEqual(Object.keys(beside.result.perAddress).sort(), [...members].sort());
      assert.deepEqual(resolvedAddresses(beside.stderr, env.etcd.endpoint), [...members].sort());
      assert.deepEqual(problems(beside.stderr), []);

      // The controls: under the prefix, Go's resolver takes the document for an endpoint with an
      // empty address (it is JSON), or logs a warning about the value (not JSON).
      const under = `${svc}/config`;
      try {
        await env.etcd.etcdctl('put', under, document('v2'));
        const json = await runGoClient(env.peers.client, env.etcd.endpoint, svc, members, 20);
        assert.ok(resolvedAddresses(json.stderr, env.etcd.endpoint).includes(''), json.stderr);
        await env.etcd.etcdctl('put', under, 'config: yaml');
        const yaml = await runGoClient(env.peers.client, env.etcd.endpoint, svc, members, 20);
        t.diagnostic(`grpc-go with a non-JSON ${under}: ${problems(yaml.stderr).join(' | ')}`);
        assert.notDeepEqual(problems(yaml.stderr), [], yaml.stderr);
      } finally {
        await env.etcd.etcdctl('del', under);
      }

      // grpc-js on ?config=: the document decides between the Go (v1) and Node (v2) members.
      client = new Greeter(
        `etcd://${env.etcd.endpoint}/${svc}?config=${key}`,
        grpc.credentials.createInsecure(),
        {
          'grpc.use_local_subchannel_pool': 1,
          [OBSERVER_OPTION]: observer,
        },
      );
      for (let i = 0; i < 20; i++) {
        assert.equal((await sayHello(client, 'node', { deadlineMs: 5_000 })).address, node.address);
      }
      const before = observer.serviceConfigs()[0]?.source;
      assert.match(before ?? '', new RegExp(`^etcd key ${key} `));
      const applied = new Promise<ConfigEvent>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the new document not applied')), 10_000);
        const listener = (event: ConfigEvent): void => {
          if (event.status === 'applied' && event.source !== before) {
            clearTimeout(timer);
            observer.off('config', listener);
            resolve(event);
          }
        };
        observer.on('config', listener);
      });
      await env.etcd.etcdctl('put', key, document('v1'));
      assert.match((await applied).source, new RegExp(`^etcd key ${key} \\(revision \\d+\\)$`));
      for (let i = 0; i < 20; i++) {
        assert.equal((await sayHello(client, 'node', { deadlineMs: 5_000 })).address, goAddr);
      }
    } finally {
      client?.close();
      goServer?.kill('SIGKILL');
      await registration?.deregister();
      await backends.stopAll();
    }
  });
});
