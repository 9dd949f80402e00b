/**
 * Health-based ejection in the client, as Envoy outlier detection, Istio and Linkerd give it to
 * operators — with no proxy. Four backends under steady load:
 *   1. backend-1 starts failing 50% of calls  → ejected by failure-percentage detection;
 *   2. backend-2 reports NOT_SERVING          → out of rotation before any call fails;
 *   3. backend-3 shuts down gracefully        → drained with GOAWAY, no call fails;
 *   4. one backend becomes 10× slower         → least request (P2C, peak EWMA) sends it far less
 *                                               than round robin does.
 *
 *   npm run example -- outlier-ejection
 */
import * as grpc from '@grpc/grpc-js';
import {
  leastRequest,
  LoadBalancerObserver,
  OBSERVER_OPTION,
  register,
  roundRobin,
  serviceConfig,
  type LoadBalancingConfigJson,
} from '@grpc-lb/core';
import {
  type BackendSet,
  type GreeterClient,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from '@grpc-lb/test/harness';
import { run } from '../shared/cli';

const Greeter = loadGreeterService();

/** Steady load: `concurrency` callers back to back; counts by backend and failures. */
function load(client: GreeterClient, concurrency: number) {
  const counts = { ok: 0, failed: 0, perBackend: new Map<string, number>() };
  let running = true;
  const callers = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        const reply = await sayHello(client, 'load');
        counts.ok++;
        counts.perBackend.set(reply.address, (counts.perBackend.get(reply.address) ?? 0) + 1);
      } catch {
        counts.failed++;
      }
    }
  });
  return {
    counts,
    /** Counts from now on: a fresh window over the same load. */
    window() {
      const ok = counts.ok;
      const failed = counts.failed;
      return { ok: () => counts.ok - ok, failed: () => counts.failed - failed };
    },
    async stop() {
      running = false;
      await Promise.all(callers);
    },
  };
}

function client(set: BackendSet, policy: LoadBalancingConfigJson, observer: LoadBalancerObserver) {
  return new Greeter(`static:///${set.addresses.join(',')}`, grpc.credentials.createInsecure(), {
    'grpc.service_config': JSON.stringify(serviceConfig(policy)),
    [OBSERVER_OPTION]: observer,
  });
}

async function slowShare(
  set: BackendSet,
  policy: LoadBalancingConfigJson,
  slow: string,
  calls: number,
) {
  const c = client(set, policy, new LoadBalancerObserver());
  try {
    await sayHello(c, 'warm', { waitForReady: true });
    const l = load(c, 8);
    await waitFor(() => l.counts.ok >= calls, { timeoutMs: 60_000, message: `${calls} calls` });
    await l.stop();
    return (l.counts.perBackend.get(slow) ?? 0) / l.counts.ok;
  } finally {
    c.close();
  }
}

run(async () => {
  register({ grpc });
  const set = await startBackends({ count: 4 });
  const [failing, notServing, draining] = set.backends as [
    (typeof set.backends)[0],
    (typeof set.backends)[0],
    (typeof set.backends)[0],
  ];
  const observer = new LoadBalancerObserver();
  observer.on('eject', (e) =>
    console.log(`eject  ${e.address} until +${e.ejectedUntil - Date.now()} ms: ${e.reason}`),
  );
  observer.on('return', (e) => console.log(`return ${e.address}`));
  observer.on('health', (e) => console.log(`health ${e.address} ${e.health}`));
  observer.on('panic', (e) =>
    console.log(`panic  ${e.active ? 'on' : 'off'} (${e.healthyPercent}% healthy)`),
  );
  const policy = roundRobin({
    outlierDetection: {
      interval: '1s',
      baseEjectionTime: '30s',
      consecutiveFailures: 0,
      maxEjectionPercent: 50,
      failurePercentageEjection: { threshold: 30, minimumHosts: 3, requestVolume: 20 },
    },
    healthCheck: { serviceName: '' },
  });
  console.log(`policy ${JSON.stringify(policy)}`);
  const c = client(set, policy, observer);
  const result: Record<string, unknown> = { example: 'outlier-ejection' };
  try {
    await sayHello(c, 'warm', { waitForReady: true });
    const l = load(c, 8);

    // 1. 50% failures → ejected.
    const startedFailing = Date.now();
    await failing.setFailRate(0.5);
    await waitFor(() => observer.endpoint(failing.address)?.ejected, {
      timeoutMs: 15_000,
      message: 'ejection',
    });
    result['ejectedAfterMs'] = Date.now() - startedFailing;
    await new Promise((resolve) => setTimeout(resolve, 100)); // calls in flight to it settle
    const afterEjection = l.window();
    await waitFor(() => afterEjection.ok() >= 2000, {
      timeoutMs: 30_000,
      message: '2000 calls after the ejection',
    });
    result['successRateAfterEjection'] =
      afterEjection.ok() / (afterEjection.ok() + afterEjection.failed());

    // 2. NOT_SERVING → out of rotation, no failed call.
    const duringNotServing = l.window();
    await notServing.setHealth('NOT_SERVING');
    await waitFor(() => observer.endpoint(notServing.address)?.health === 'not_serving', {
      timeoutMs: 5000,
      message: 'NOT_SERVING seen',
    });
    await waitFor(() => duringNotServing.ok() >= 1000, {
      timeoutMs: 30_000,
      message: '1000 calls',
    });
    result['notServingFailedCalls'] = duringNotServing.failed();

    // 3. Graceful shutdown (GOAWAY) → drained, no failed call.
    const duringDrain = l.window();
    await draining.stopGracefully(5000);
    await waitFor(() => duringDrain.ok() >= 1000, {
      timeoutMs: 30_000,
      message: '1000 calls after the drain',
    });
    result['drainFailedCalls'] = duringDrain.failed();
    await l.stop();
    console.log('\nendpoints:');
    for (const e of observer.endpoints()) {
      console.log(
        `  ${e.address} ${e.state.padEnd(17)} health=${e.health.padEnd(11)} ejected=${String(e.ejected).padEnd(5)} calls=${e.calls} failures=${e.failures} ewma=${e.latencyEwmaMs.toFixed(2)}ms`,
      );
    }
  } finally {
    c.close();
    await set.stopAll();
  }

  // 4. One backend 10× slower: round robin vs least request.
  const slowSet = await startBackends({ count: 4 });
  try {
    for (const b of slowSet.backends) await b.setDelay(2);
    const slow = slowSet.backends[3]!;
    await slow.setDelay(20);
    result['slowBackendShareRoundRobin'] = await slowShare(
      slowSet,
      roundRobin(),
      slow.address,
      2000,
    );
    result['slowBackendShareP2C'] = await slowShare(slowSet, leastRequest(), slow.address, 2000);
  } finally {
    await slowSet.stopAll();
  }
  console.log(
    `\nslow backend (20 ms vs 2 ms): round robin sent it ${((result['slowBackendShareRoundRobin'] as number) * 100).toFixed(1)}%, ` +
      `least request ${((result['slowBackendShareP2C'] as number) * 100).toFixed(1)}%`,
  );
  const ordered = {
    example: result['example'],
    ejectedAfterMs: result['ejectedAfterMs'],
    successRateAfterEjection: result['successRateAfterEjection'],
    notServingFailedCalls: result['notServingFailedCalls'],
    drainFailedCalls: result['drainFailedCalls'],
    slowBackendShareP2C: result['slowBackendShareP2C'],
    slowBackendShareRoundRobin: result['slowBackendShareRoundRobin'],
  };
  console.log(JSON.stringify(ordered));
  const ok =
    ordered.successRateAfterEjection === 1 &&
    ordered.notServingFailedCalls === 0 &&
    ordered.drainFailedCalls === 0 &&
    // On a busy machine the client's own pauses blur latencies; clearly less is what is promised.
    (ordered.slowBackendShareP2C as number) < (ordered.slowBackendShareRoundRobin as number) * 0.75;
  return ok ? 0 : 1;
});
