/**
 * A headless Service scales up under load. bind9 serves `api.svc.test` with two backends
 * (127.0.0.2-3, one port, like two pod IPs); a third backend starts and its A record is added;
 * then the first record is removed.
 *
 * - `dns+lb:` (grpc-lb) re-resolves every interval: the new backend gets calls within it, the
 *   removed one stops getting them, no call fails.
 * - grpc-js's built-in `dns:` resolver, same scenario, same DNS server, round_robin: it resolves
 *   again only when a connection fails, so the new backend never gets a call.
 *
 *   npm run example -- headless-dns [--interval-ms 1000] [--concurrency 8]
 */
import './use-c-ares';
import * as grpc from '@grpc/grpc-js';
import { LoadBalancerObserver, OBSERVER_OPTION } from '@grpc-lb/core';
import { registerDns } from '@grpc-lb/resolver-dns';
import {
  type GreeterClient,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from '@grpc-lb/test/harness';
import { startBind9 } from '@grpc-lb/test/support/bind9';
import { intFlag, run, Tally } from '../shared/cli';

interface AddressCalls {
  count: number;
  firstAt: number;
  lastAt: number;
}

/** Calls back to back from `concurrency` callers, recording when each address answered. */
function startLoad(client: GreeterClient, concurrency: number) {
  const calls = new Map<string, AddressCalls>();
  const errors = new Tally();
  let running = true;
  const caller = async (): Promise<void> => {
    while (running) {
      try {
        const reply = await sayHello(client, 'headless', { deadlineMs: 5_000 });
        const now = performance.now();
        const seen = calls.get(reply.address);
        if (seen) {
          seen.count++;
          seen.lastAt = now;
        } else {
          calls.set(reply.address, { count: 1, firstAt: now, lastAt: now });
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
    stop: async () => {
      running = false;
      await Promise.all(callers);
    },
  };
}

run(async () => {
  const intervalMs = intFlag('interval-ms', 1_000);
  const concurrency = intFlag('concurrency', 8);
  registerDns({ grpc });

  const dns = await startBind9();
  const backends = await startBackends({ count: 3 });
  const [first, second, third] = backends.backends as [
    (typeof backends.backends)[number],
    (typeof backends.backends)[number],
    (typeof backends.backends)[number],
  ];
  const name = 'api.svc.test';
  const Greeter = loadGreeterService();
  const insecure = grpc.credentials.createInsecure();
  const observer = new LoadBalancerObserver();
  const ourTarget = `dns+lb://${dns.address}/${name}:${backends.port}?interval=${intervalMs}ms`;
  const builtinTarget = `dns://${dns.address}/${name}:${backends.port}`;
  let ours: GreeterClient | undefined;
  let builtin: GreeterClient | undefined;
  let oursLoad: ReturnType<typeof startLoad> | undefined;
  let builtinLoad: ReturnType<typeof startLoad> | undefined;
  try {
    await dns.update(`add ${name}. 1 A ${first.host}`, `add ${name}. 1 A ${second.host}`);
    console.log(`bind9 on ${dns.address}: ${name} → ${first.host}, ${second.host}`);
    ours = new Greeter(ourTarget, insecure, {
      'grpc.use_local_subchannel_pool': 1,
      [OBSERVER_OPTION]: observer,
    });
    builtin = new Greeter(builtinTarget, insecure, {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
    });
    oursLoad = startLoad(ours, concurrency);
    builtinLoad = startLoad(builtin, concurrency);
    const loads = [oursLoad, builtinLoad];
    await waitFor(
      () => loads.every((l) => l.calls.has(first.address) && l.calls.has(second.address)),
      {
        timeoutMs: 15_000,
        message: 'both clients calling both backends',
      },
    );
    console.log(`load running: ${ourTarget} (grpc-lb) and ${builtinTarget} (grpc-js built-in)`);

    const addedAt = performance.now();
    await dns.update(`add ${name}. 1 A ${third.host}`);
    console.log(`+ ${third.host} added to DNS (the backend was already serving)`);
    const firstNew = await waitFor(() => oursLoad?.calls.get(third.address), {
      timeoutMs: 10 * intervalMs + 10_000,
      message: `grpc-lb to call the new backend ${third.address}`,
    });
    const newEndpointFirstCallMs = Math.round(firstNew.firstAt - addedAt);
    console.log(`  grpc-lb: first call to ${third.address} after ${newEndpointFirstCallMs} ms`);

    const removedAt = performance.now();
    await dns.update(`delete ${name}. A ${first.host}`);
    console.log(`- ${first.host} removed from DNS`);
    await waitFor(() => !observer.endpoints().some((e) => e.address === first.address), {
      timeoutMs: 10 * intervalMs + 10_000,
      message: `grpc-lb to drop ${first.address}`,
    });
    // Calls already sent to it may still be answered; let a round of calls pass before reading.
    const settledAt = oursLoad.total();
    await waitFor(() => (oursLoad?.total() ?? 0) >= settledAt + 10 * concurrency, {
      timeoutMs: 10_000,
      message: 'more calls after the removal',
    });
    const lastOld = oursLoad.calls.get(first.address)!.lastAt;
    const removedEndpointLastCallMs = Math.max(0, Math.round(lastOld - removedAt));
    console.log(`  grpc-lb: last call to ${first.address} ${removedEndpointLastCallMs} ms after`);

    // The built-in resolver has no event to wait for: it never looks again. Watch it for a while.
    const windowMs = Math.max(5 * intervalMs, 3 * newEndpointFirstCallMs);
    await waitFor(() => performance.now() - addedAt >= windowMs, {
      timeoutMs: windowMs + 10_000,
      intervalMs: 50,
      message: 'the observation window',
    });
    const grpcJsBuiltinSawNewEndpoint = builtinLoad.calls.has(third.address);
    console.log(
      `  grpc-js built-in dns: ${grpcJsBuiltinSawNewEndpoint ? 'called' : 'never called'} ${third.address} in ${windowMs} ms`,
    );

    await Promise.all(loads.map((l) => l.stop()));
    for (const [label, load] of [
      ['grpc-lb dns+lb', oursLoad],
      ['grpc-js dns', builtinLoad],
    ] as const) {
      console.log(`\n${label}:`);
      for (const [address, c] of load.calls)
        console.log(`${String(c.count).padStart(7)} ${address}`);
      load.errors.print('ERROR ');
    }
    const errors = oursLoad.errors.total;
    console.log(
      JSON.stringify({
        example: 'headless-dns',
        intervalMs,
        newEndpointFirstCallMs,
        removedEndpointLastCallMs,
        errors,
        grpcJsBuiltinSawNewEndpoint,
      }),
    );
    return errors === 0 ? 0 : 1;
  } finally {
    await Promise.all([oursLoad?.stop(), builtinLoad?.stop()]);
    ours?.close();
    builtin?.close();
    await backends.stopAll();
    await dns.dispose();
  }
});
