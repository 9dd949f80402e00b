/**
 * A rolling restart behind a Consul registry. A Consul agent runs locally (`consul agent -dev`,
 * built from Go modules); four grpc-js backends (v1-a, v1-b, v2-a, v2-b) register themselves with
 * `registerService()`: meta `version`, Consul weights `Passing: 1` for v1 and `3` for v2, and
 * Consul's gRPC health check (`grpc.health.v1.Health/Check` every second). A client on
 * `consul:///hello` with `grpc-lb.weighted_round_robin` calls under steady load:
 *
 * - With every instance passing, calls split by Consul's weights: v1 25%, v2 75%.
 * - Then every backend in turn is restarted: it leaves (the even ones deregister, the odd ones
 *   turn NOT_SERVING and Consul's gRPC check marks them critical), drains (no more calls reach
 *   it), deregisters if it has not, stops gracefully, restarts on the same address and registers
 *   again. Each step prints how long from leaving to its last call and from registering to its
 *   first call. No call fails.
 *
 * It ends with one JSON line.
 *
 *   npm run example -- consul-registry [--concurrency 8] [--weighted-calls 4000]
 *
 * Needs Go the first time (Consul is built once from Go modules, test/testbin).
 */
import * as grpc from '@grpc/grpc-js';
import {
  LoadBalancerObserver,
  OBSERVER_OPTION,
  serviceConfig,
  weightedRoundRobin,
} from '@grpc-lb/core';
import { registerConsul, registerService, type ConsulRegistration } from '@grpc-lb/resolver-consul';
import {
  type Backend,
  type GreeterClient,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from '@grpc-lb/test/harness';
import { startConsul } from '@grpc-lb/test/support/consul';
import { intFlag, run, Tally } from '../shared/cli';

const SERVICE = 'hello';
const WEIGHTS: Record<string, number> = { v1: 1, v2: 3 };

type How = 'deregister' | 'not-serving';

interface Step {
  backend: string;
  how: How;
  removeToLastCallMs: number;
  registerToFirstCallMs: number;
}

/** Calls back to back from `concurrency` callers, recording when each address answered. */
function startLoad(client: GreeterClient, concurrency: number) {
  const perAddress = new Map<string, number>();
  const perVersion = new Map<string, number>();
  const last = new Map<string, number>();
  /** Addresses whose first call (from now on) we wait for: undefined until it comes. */
  const firstAfter = new Map<string, number | undefined>();
  const errors = new Tally();
  let ok = 0;
  let running = true;
  const caller = async (): Promise<void> => {
    while (running) {
      try {
        const reply = await sayHello(client, 'consul', { deadlineMs: 5_000 });
        const now = performance.now();
        ok++;
        perAddress.set(reply.address, (perAddress.get(reply.address) ?? 0) + 1);
        const version = reply.labels['version'] ?? '?';
        perVersion.set(version, (perVersion.get(version) ?? 0) + 1);
        last.set(reply.address, now);
        if (firstAfter.has(reply.address) && firstAfter.get(reply.address) === undefined) {
          firstAfter.set(reply.address, now);
        }
      } catch (error) {
        errors.add(error instanceof Error ? error.message : String(error));
      }
    }
  };
  const callers = Array.from({ length: concurrency }, caller);
  return {
    perAddress,
    perVersion,
    last,
    firstAfter,
    errors,
    ok: () => ok,
    stop: async () => {
      running = false;
      await Promise.all(callers);
    },
  };
}

type Load = ReturnType<typeof startLoad>;

/** Waits until `address` has answered no call for `quietMs`; its last call then is final. */
async function drained(load: Load, address: string, quietMs: number): Promise<void> {
  let count = load.perAddress.get(address);
  let since = performance.now();
  await waitFor(
    () => {
      const now = load.perAddress.get(address);
      if (now !== count) {
        count = now;
        since = performance.now();
      }
      return performance.now() - since > quietMs;
    },
    { timeoutMs: 10_000, message: `${address} drained` },
  );
}

function shares(counts: Map<string, number>): Record<string, number> {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  return Object.fromEntries(
    [...counts].sort().map(([k, n]) => [k, Math.round((n / total) * 1000) / 1000]),
  );
}

run(async () => {
  const concurrency = intFlag('concurrency', 8);
  const weightedCalls = intFlag('weighted-calls', 4_000);

  const consul = await startConsul();
  console.log(`consul ${consul.version} (dev agent) at ${consul.url}`);
  const registrations = new Map<Backend, ConsulRegistration>();
  let backends: Awaited<ReturnType<typeof startBackends>> | undefined;
  let load: Load | undefined;
  let client: GreeterClient | undefined;
  try {
    backends = await startBackends({
      count: 4,
      names: ['hello-v1-a', 'hello-v1-b', 'hello-v2-a', 'hello-v2-b'],
      labels: [1, 1, 2, 2].map((v) => ({ version: `v${v}` })),
    });
    const all = backends.backends;
    const version = (b: Backend) => b.labels['version']!;
    const register = async (b: Backend): Promise<void> => {
      registrations.set(
        b,
        await registerService({
          address: consul.address,
          name: SERVICE,
          host: b.host,
          port: b.port,
          meta: { version: version(b) },
          weights: { passing: WEIGHTS[version(b)]! },
          check: { grpc: { interval: '1s', timeout: '1s' } },
        }),
      );
    };
    const deregister = async (b: Backend): Promise<void> => {
      await registrations.get(b)?.deregister();
      registrations.delete(b);
    };
    for (const b of all) await register(b);
    for (const b of all) {
      console.log(
        `registered ${registrations.get(b)!.id}: meta version=${version(b)}, ` +
          `Weights { Passing: ${WEIGHTS[version(b)]} }, gRPC check every 1s`,
      );
    }
    // A new instance is critical until Consul has run its check once (within one interval).
    await waitFor(
      async () => {
        const passing = await consul.api('GET', `/v1/health/service/${SERVICE}?passing=true`);
        return Array.isArray(passing.json) && passing.json.length === all.length;
      },
      { timeoutMs: 15_000, message: 'all four instances passing their gRPC checks' },
    );
    console.log('all four passing');

    registerConsul({ grpc, address: consul.address });
    const observer = new LoadBalancerObserver();
    const Greeter = loadGreeterService();
    client = new Greeter(`consul:///${SERVICE}`, grpc.credentials.createInsecure(), {
      'grpc.service_config': JSON.stringify(serviceConfig(weightedRoundRobin())),
      [OBSERVER_OPTION]: observer,
    });
    console.log(
      `client on consul:///${SERVICE}, grpc-lb.weighted_round_robin, ${concurrency} callers`,
    );
    load = startLoad(client, concurrency);
    const running = load;

    // Weighted split: once every instance is connected (has answered), count a window of calls.
    await waitFor(() => all.every((b) => running.perAddress.has(b.address)), {
      timeoutMs: 15_000,
      message: 'calls to all four instances',
    });
    const before = new Map(running.perAddress);
    const okBefore = running.ok();
    await waitFor(() => running.ok() >= okBefore + weightedCalls, {
      timeoutMs: 60_000,
      message: `${weightedCalls} calls`,
    });
    const windowPerAddress = new Map(
      all.map((b) => [b.address, running.perAddress.get(b.address)! - before.get(b.address)!]),
    );
    const windowPerVersion = new Map<string, number>();
    for (const b of all) {
      const n = windowPerAddress.get(b.address)!;
      windowPerVersion.set(version(b), (windowPerVersion.get(version(b)) ?? 0) + n);
    }
    const windowTotal = [...windowPerAddress.values()].reduce((a, b) => a + b, 0);
    const weightedShares = shares(windowPerVersion);
    console.log(`\nweighted split over ${windowTotal} calls:`);
    for (const b of all) {
      console.log(
        `${String(windowPerAddress.get(b.address)).padStart(7)} ${b.name} (${b.address}) ` +
          `weight ${WEIGHTS[version(b)]}`,
      );
    }
    console.log(`→ shares ${JSON.stringify(weightedShares)} (expected v1 0.25, v2 0.75)\n`);

    // Rolling restart, one backend at a time.
    const steps: Step[] = [];
    for (const [i, b] of all.entries()) {
      const how: How = i % 2 === 0 ? 'deregister' : 'not-serving';
      const removedAt = performance.now();
      if (how === 'deregister') await deregister(b);
      else await b.setHealth('NOT_SERVING');
      await waitFor(() => !observer.endpoints().some((e) => e.address === b.address), {
        timeoutMs: 10_000,
        message: `${b.name} out of the channel`,
      });
      // Calls already picked finish on it; wait until none has come for a while.
      await drained(running, b.address, 300);
      const removeToLastCallMs = Math.max(
        0,
        Math.round((running.last.get(b.address) ?? removedAt) - removedAt),
      );
      await deregister(b);
      const exit = await b.stopGracefully();
      await b.restart();
      running.firstAfter.set(b.address, undefined);
      const registeredAt = performance.now();
      await register(b);
      const first = await waitFor(() => running.firstAfter.get(b.address), {
        timeoutMs: 15_000,
        message: `first call to ${b.name} after it registered again`,
      });
      running.firstAfter.delete(b.address);
      const registerToFirstCallMs = Math.round(first - registeredAt);
      steps.push({ backend: b.name, how, removeToLastCallMs, registerToFirstCallMs });
      console.log(
        `step ${i + 1}: ${b.name} ${how === 'deregister' ? 'deregistered' : 'NOT_SERVING'} → ` +
          `last call ${removeToLastCallMs} ms; stopped (exit ${exit.code ?? exit.signal}), ` +
          `restarted (pid ${b.pid}); registered → first call ${registerToFirstCallMs} ms`,
      );
    }

    // After the rollout every instance is back in the rotation.
    const afterRollout = running.ok();
    const backSince = new Map(running.perAddress);
    await waitFor(() => running.ok() >= afterRollout + 1_000, {
      timeoutMs: 20_000,
      message: 'calls after the rolling restart',
    });
    await running.stop();
    const servingAfterRollout = all
      .filter((b) => running.perAddress.get(b.address)! > backSince.get(b.address)!)
      .map((b) => b.name);

    console.log('\ncalls per backend:');
    for (const b of all) {
      console.log(`${String(running.perAddress.get(b.address) ?? 0).padStart(7)} ${b.name}`);
    }
    running.errors.print('ERROR ');
    const errors = running.errors.total;
    console.log(
      JSON.stringify({
        example: 'consul-registry',
        calls: running.ok() + errors,
        errors,
        steps,
        removeToLastCallMsMax: Math.max(...steps.map((s) => s.removeToLastCallMs)),
        registerToFirstCallMsMax: Math.max(...steps.map((s) => s.registerToFirstCallMs)),
        weightedCalls: windowTotal,
        weightedShares,
        expectedShares: { v1: 0.25, v2: 0.75 },
        servingAfterRollout,
      }),
    );
    return errors === 0 ? 0 : 1;
  } finally {
    await load?.stop();
    client?.close();
    for (const r of registrations.values()) await r.deregister().catch(() => undefined);
    await backends?.stopAll();
    await consul.dispose();
  }
});
