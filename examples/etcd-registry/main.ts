/**
 * A legacy etcd registry feeding client-side balancing. etcd 3.4 runs locally; three backends
 * register themselves (each a child process calling `registerEndpoint()`, version labels v1, v2,
 * v2) and a client on `etcd:///services/hello` splits traffic 20% v1 / 80% v2 by label
 * (`grpc-lb.traffic_split`), under steady load.
 *
 * - A canary backend (version v2) is registered and deregistered `--rounds` times: each time,
 *   how long from the key's put to its first call (convergence), and from its delete to its last.
 * - The v1 backend gets SIGTERM: it deletes its key first (its SIGTERM handler calls
 *   `deregister()`), waits a moment, then shuts down gracefully. Its share moves to v2 (the empty
 *   subset is redistributed) and no call fails.
 *
 *   npm run example -- etcd-registry [--rounds 10] [--concurrency 8]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { LoadBalancerObserver, OBSERVER_OPTION, serviceConfig, trafficSplit } from '@grpc-lb/core';
import { registerEndpoint, registerEtcd } from '@grpc-lb/resolver-etcd';
import {
  type GreeterClient,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from '@grpc-lb/test/harness';
import { startEtcd } from '@grpc-lb/test/support/etcd';
import type {
  RegisteredBackendConfig,
  RegisteredBackendReady,
} from '@grpc-lb/test/support/etcd-registered-backend';
import { intFlag, run, Tally } from '../shared/cli';

const SERVICE = 'services/hello';

interface AddressCalls {
  count: number;
  version: string;
  lastAt: number;
  /** Date.now() of the last reply, to compare with a time another process reported. */
  lastWall: number;
}

/** Calls back to back from `concurrency` callers, recording when each address answered. */
function startLoad(client: GreeterClient, concurrency: number) {
  const calls = new Map<string, AddressCalls>();
  const errors = new Tally();
  const firstCallWaiters: { address: string; since: number; resolve: (at: number) => void }[] = [];
  let running = true;
  const caller = async (): Promise<void> => {
    while (running) {
      try {
        const reply = await sayHello(client, 'etcd', { deadlineMs: 5_000 });
        const now = performance.now();
        const seen = calls.get(reply.address);
        if (seen) {
          seen.count++;
          seen.lastAt = now;
          seen.lastWall = Date.now();
        } else {
          const version = reply.labels['version'] ?? '?';
          calls.set(reply.address, { count: 1, version, lastAt: now, lastWall: Date.now() });
        }
        for (let i = firstCallWaiters.length - 1; i >= 0; i--) {
          const waiter = firstCallWaiters[i]!;
          if (waiter.address === reply.address && now >= waiter.since) {
            firstCallWaiters.splice(i, 1);
            waiter.resolve(now);
          }
        }
      } catch (error) {
        errors.add(error instanceof Error ? error.message : String(error));
      }
    }
  };
  const callers = Array.from({ length: concurrency }, caller);
  return {
    calls,
    errors,
    total: () => [...calls.values()].reduce((sum, c) => sum + c.count, 0),
    /** Resolves with the time of the first call to `address` answered after `since`. */
    firstCallAfter: (address: string, since: number) =>
      new Promise<number>((resolve) => firstCallWaiters.push({ address, since, resolve })),
    byVersion: () => {
      const out: Record<string, number> = {};
      for (const c of calls.values()) out[c.version] = (out[c.version] ?? 0) + c.count;
      return out;
    },
    stop: async () => {
      running = false;
      await Promise.all(callers);
    },
  };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

/** A backend child that registers itself (test/support/etcd-registered-backend.ts). */
async function startRegisteredBackend(config: RegisteredBackendConfig) {
  const main = require.resolve('@grpc-lb/test/support/etcd-registered-backend');
  const child = spawn(process.execPath, [main, JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  let buffered = '';
  child.stdout?.on('data', (d: Buffer) => {
    buffered += d.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    lines.push(...parts.filter((l) => l !== ''));
  });
  const ready = await waitFor(() => lines[0], {
    timeoutMs: 15_000,
    message: `backend ${config.name} registered`,
  });
  return {
    child,
    ready: JSON.parse(ready) as RegisteredBackendReady,
    /** Date.now() at which it deleted its key (after SIGTERM). */
    deregisteredAt: () =>
      waitFor(
        () => lines[1] && (JSON.parse(lines[1]) as { deregisteredAt: number }).deregisteredAt,
        {
          timeoutMs: 10_000,
          message: `backend ${config.name} deregistered`,
        },
      ),
  };
}

run(async () => {
  const rounds = intFlag('rounds', 10);
  const concurrency = intFlag('concurrency', 8);
  registerEtcd({ grpc });

  const etcd = await startEtcd();
  console.log(`etcd 3.4 on ${etcd.url}`);
  const children: ChildProcess[] = [];
  const canaryBackends = await startBackends({
    count: 1,
    firstHost: 5,
    names: ['canary'],
    labels: [{ version: 'v2' }],
  });
  let load: ReturnType<typeof startLoad> | undefined;
  let client: GreeterClient | undefined;
  try {
    const base = { etcd: etcd.endpoint, service: SERVICE, ttlSeconds: 5, drainDelayMs: 300 };
    const [v1, v2a, v2b] = await Promise.all([
      startRegisteredBackend({ ...base, host: '127.0.0.2', name: 'v1', labels: { version: 'v1' } }),
      startRegisteredBackend({
        ...base,
        host: '127.0.0.3',
        name: 'v2-a',
        labels: { version: 'v2' },
      }),
      startRegisteredBackend({
        ...base,
        host: '127.0.0.4',
        name: 'v2-b',
        labels: { version: 'v2' },
      }),
    ]);
    children.push(v1.child, v2a.child, v2b.child);
    for (const b of [v1, v2a, v2b]) console.log(`registered ${b.ready.key} (pid ${b.ready.pid})`);
    console.log(
      `  value: ${await etcd.etcdctl('get', v1.ready.key, '--print-value-only')}`.trimEnd(),
    );

    const config = serviceConfig(
      trafficSplit()
        .subset('v1', { version: 'v1' })
        .subset('v2', { version: 'v2' })
        .defaultRoute({ v1: 20, v2: 80 }),
    );
    const target = `etcd://${etcd.endpoint}/${SERVICE}`;
    const observer = new LoadBalancerObserver();
    const Greeter = loadGreeterService();
    client = new Greeter(target, grpc.credentials.createInsecure(), {
      'grpc.service_config': JSON.stringify(config),
      [OBSERVER_OPTION]: observer,
    });
    console.log(`client on ${target}, split v1 20% / v2 80%`);
    load = startLoad(client, concurrency);
    const running = load;
    await waitFor(() => running.calls.size >= 3 && running.total() >= 2_000, {
      timeoutMs: 30_000,
      message: 'calls to all three backends',
    });
    const steady = running.byVersion();
    const steadyTotal = Object.values(steady).reduce((a, b) => a + b, 0);
    const shares = Object.fromEntries(
      Object.entries(steady).map(([v, n]) => [v, Math.round((n / steadyTotal) * 1000) / 1000]),
    );
    console.log(`steady: ${JSON.stringify(steady)} → shares ${JSON.stringify(shares)}`);

    const canary = canaryBackends.backends[0]!;
    const convergence: number[] = [];
    const removal: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const since = performance.now();
      const firstCall = running.firstCallAfter(canary.address, since);
      const registration = await registerEndpoint({
        endpoints: etcd.endpoint,
        service: SERVICE,
        id: 'canary',
        host: canary.host,
        port: canary.port,
        labels: { version: 'v2' },
        ttlSeconds: 5,
      });
      convergence.push((await firstCall) - since);
      const removedAt = performance.now();
      await registration.deregister();
      await waitFor(() => !observer.endpoints().some((e) => e.address === canary.address), {
        timeoutMs: 5_000,
        message: 'the canary out of the channel',
      });
      // Let calls already on their way finish before reading the last one.
      const settled = running.total();
      await waitFor(() => running.total() >= settled + 4 * concurrency, {
        timeoutMs: 5_000,
        message: 'calls after the canary left',
      });
      removal.push(Math.max(0, running.calls.get(canary.address)!.lastAt - removedAt));
    }
    const convergenceMsP50 = Math.round(percentile(convergence, 50));
    const convergenceMsP99 = Math.round(percentile(convergence, 99));
    console.log(
      `canary registered ${rounds} times: put → first call p50 ${convergenceMsP50} ms, p99 ${convergenceMsP99} ms; ` +
        `delete → last call p99 ${Math.round(percentile(removal, 99))} ms`,
    );

    // SIGTERM the v1 backend: it deletes its key, waits, then drains and exits.
    const exited = new Promise((resolve) => v1.child.once('exit', resolve));
    v1.child.kill('SIGTERM');
    const deregisteredAt = await v1.deregisteredAt();
    await exited;
    const afterExit = running.total();
    await waitFor(() => running.total() >= afterExit + 500, {
      timeoutMs: 10_000,
      message: 'calls after v1 left',
    });
    const lastV1 = running.calls.get(v1.ready.address)!;
    const afterKillRemovedMs = Math.max(0, lastV1.lastWall - deregisteredAt);
    console.log(
      `v1 (${v1.ready.address}) got SIGTERM: key deleted, last call ${afterKillRemovedMs} ms later, exited gracefully`,
    );
    await load.stop();

    console.log('\ncalls per backend:');
    for (const [address, c] of running.calls) {
      console.log(`${String(c.count).padStart(7)} ${address} ${c.version}`);
    }
    running.errors.print('ERROR ');
    const errors = running.errors.total;
    console.log(
      JSON.stringify({
        example: 'etcd-registry',
        convergenceMsP50,
        convergenceMsP99,
        errors,
        afterKillRemovedMs,
        calls: running.total() + errors,
        rounds,
        removalMsP99: Math.round(percentile(removal, 99)),
        shares,
        expectedShares: { v1: 0.2, v2: 0.8 },
      }),
    );
    return errors === 0 ? 0 : 1;
  } finally {
    await load?.stop();
    client?.close();
    for (const child of children) child.kill('SIGKILL');
    await canaryBackends.stopAll();
    await etcd.dispose();
  }
});
