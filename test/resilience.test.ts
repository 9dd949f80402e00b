/**
 * Outlier detection, active health checks, panic threshold, least request, slow start and
 * graceful drain, against real backends.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  leastRequest,
  LoadBalancerObserver,
  ManualEndpoints,
  OBSERVER_OPTION,
  register,
  roundRobin,
  serviceConfig,
  type EjectionEvent,
  type LoadBalancingConfigJson,
  type PanicEvent,
} from '@grpc-lb/core';
import {
  type Backend,
  type BackendSet,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from './harness';
import { shareOf, startLoad } from './support/load';

register({ grpc });
const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();

function clientFor(
  set: BackendSet | readonly Backend[],
  policy: LoadBalancingConfigJson,
  observer: LoadBalancerObserver,
) {
  const backends: readonly Backend[] = 'backends' in set ? set.backends : set;
  return new Greeter(`static:///${backends.map((b) => b.address).join(',')}`, insecure, {
    'grpc.service_config': JSON.stringify(serviceConfig(policy)),
    [OBSERVER_OPTION]: observer,
  });
}

async function nextEvent<K extends 'eject' | 'return' | 'health' | 'panic'>(
  observer: LoadBalancerObserver,
  event: K,
  timeoutMs: number,
) {
  const [value] = (await once(observer, event, { signal: AbortSignal.timeout(timeoutMs) })) as [
    Parameters<LoadBalancerObserver['emit']>[1],
  ];
  return value;
}

describe('passive outlier detection', () => {
  test('consecutive failures eject an endpoint at once; it returns after the ejection time, doubled on repeat', async () => {
    const set = await startBackends({ count: 3 });
    const [bad] = set.backends as [Backend];
    const observer = new LoadBalancerObserver();
    const client = clientFor(
      set,
      roundRobin({
        outlierDetection: {
          consecutiveFailures: 5,
          baseEjectionTime: '1s',
          maxEjectionPercent: 50,
        },
      }),
      observer,
    );
    const ejections: (EjectionEvent & { at: number })[] = [];
    observer.on('eject', (e) => ejections.push({ ...e, at: Date.now() }));
    try {
      await sayHello(client, 'warm', { waitForReady: true });
      await bad.setFailRate(1);
      const load = startLoad(client, { concurrency: 3 });
      await waitFor(() => ejections.length === 1, {
        timeoutMs: 5000,
        message: 'the failing endpoint is ejected',
      });
      const first = ejections[0]!;
      assert.equal(first.address, bad.address);
      assert.equal(first.timesEjected, 1);
      assert.match(first.reason, /5 consecutive failures/);
      const failuresAtEjection = (await bad.stats()).failedCalls;
      assert.ok(
        failuresAtEjection <= 5 + 3,
        `${failuresAtEjection} calls failed before the ejection (5 + in flight)`,
      );
      assert.equal(observer.endpoint(bad.address)?.ejected, true);

      // Back after ~1 s, still failing: ejected again for 2 s.
      await nextEvent(observer, 'return', 5000);
      await waitFor(() => ejections.length === 2, { timeoutMs: 5000, message: 'ejected again' });
      const second = ejections[1]!;
      assert.equal(second.timesEjected, 2);
      const firstMs = first.ejectedUntil - first.at;
      const secondMs = second.ejectedUntil - second.at;
      assert.ok(firstMs > 900 && firstMs <= 1000, `the first ejection is for 1 s (${firstMs} ms)`);
      assert.ok(
        secondMs > 1900 && secondMs <= 2000,
        `the second ejection is for 2 s (${secondMs} ms)`,
      );
      assert.ok(second.at - first.at >= 1000, 'it was out for at least the first ejection time');
      const result = await load.stop();
      assert.ok(result.ok > 0);
      // Every successful call went to the two healthy backends.
      assert.equal(result.perBackend.size, 2);
      assert.ok(result.errors.length < 20, `${result.errors.length} calls failed in all`);
    } finally {
      client.close();
      await set.stopAll();
    }
  });

  test('failure percentage ejects a backend failing 50% of calls within one interval', async () => {
    const set = await startBackends({ count: 4 });
    const bad = set.backends[0]!;
    const observer = new LoadBalancerObserver();
    const client = clientFor(
      set,
      roundRobin({
        outlierDetection: {
          interval: '0.5s',
          consecutiveFailures: 0,
          baseEjectionTime: '30s',
          maxEjectionPercent: 25,
          failurePercentageEjection: { threshold: 40, minimumHosts: 3, requestVolume: 20 },
        },
      }),
      observer,
    );
    try {
      await sayHello(client, 'warm', { waitForReady: true });
      await bad.setFailRate(0.5);
      const started = Date.now();
      const load = startLoad(client, { concurrency: 4 });
      const ejection = (await nextEvent(observer, 'eject', 5000)) as EjectionEvent;
      const ejectedAfterMs = Date.now() - started;
      assert.equal(ejection.address, bad.address);
      assert.match(ejection.reason, /of calls failed \(threshold 40%\)/);
      // The first interval boundary after enough volume: at most two intervals (~1 s) in.
      assert.ok(ejectedAfterMs < 2500, `ejected after ${ejectedAfterMs} ms`);
      // Calls already on their way to it when it was ejected may still fail; none issued after.
      const ejectedAt = performance.now();
      const okAtEjection = load.result.ok;
      const callsAtEjection = (await bad.stats()).totalCalls;
      await waitFor(() => load.result.ok >= okAtEjection + 300, {
        timeoutMs: 10_000,
        message: '300 more calls',
      });
      const result = await load.stop();
      const late = result.errors.filter((_, i) => result.errorStarts[i]! > ejectedAt);
      assert.deepEqual(
        late.map((e) => `${e.code} ${e.details}`),
        [],
        'no call issued after the ejection failed',
      );
      const callsAfter = (await bad.stats()).totalCalls - callsAtEjection;
      assert.ok(
        callsAfter <= 4,
        `${callsAfter} calls reached it after the ejection (at most those in flight)`,
      );
    } finally {
      client.close();
      await set.stopAll();
    }
  });

  test('success-rate ejection singles out the outlier among five', async () => {
    const set = await startBackends({ count: 5 });
    const bad = set.backends[2]!;
    const observer = new LoadBalancerObserver();
    const client = clientFor(
      set,
      roundRobin({
        outlierDetection: {
          interval: '0.5s',
          consecutiveFailures: 0,
          successRateEjection: { stdevFactor: 1000, minimumHosts: 5, requestVolume: 20 },
        },
      }),
      observer,
    );
    try {
      await sayHello(client, 'warm', { waitForReady: true });
      await bad.setFailRate(0.5);
      const load = startLoad(client, { concurrency: 5 });
      const ejection = (await nextEvent(observer, 'eject', 5000)) as EjectionEvent;
      await load.stop();
      assert.equal(ejection.address, bad.address);
      assert.match(ejection.reason, /success rate \d+\.\d% below \d+\.\d% \(mean \d+\.\d%\)/);
    } finally {
      client.close();
      await set.stopAll();
    }
  });

  test('max ejection percent is respected', async () => {
    const set = await startBackends({ count: 4 });
    const observer = new LoadBalancerObserver();
    const client = clientFor(
      set,
      roundRobin({
        outlierDetection: {
          consecutiveFailures: 3,
          maxEjectionPercent: 25,
          baseEjectionTime: '30s',
        },
      }),
      observer,
    );
    try {
      await sayHello(client, 'warm', { waitForReady: true });
      await set.backends[0]!.setFailRate(1);
      await set.backends[1]!.setFailRate(1);
      const load = startLoad(client, { concurrency: 4 });
      await nextEvent(observer, 'eject', 5000);
      await waitFor(
        async () =>
          (await set.backends[1]!.stats()).failedCalls +
            (await set.backends[0]!.stats()).failedCalls >
          30,
        {
          timeoutMs: 5000,
          message: 'the second failing backend keeps failing',
        },
      );
      await load.stop();
      const ejected = observer.endpoints().filter((e) => e.ejected);
      assert.equal(ejected.length, 1, 'only 25% of 4 endpoints may be ejected');
    } finally {
      client.close();
      await set.stopAll();
    }
  });
});

describe('active health checks', () => {
  test('NOT_SERVING takes an endpoint out of rotation before any call fails, and SERVING brings it back', async () => {
    const set = await startBackends({ count: 3 });
    const target = set.backends[0]!;
    const observer = new LoadBalancerObserver();
    const client = clientFor(set, roundRobin({ healthCheck: { serviceName: '' } }), observer);
    try {
      await sayHello(client, 'warm', { waitForReady: true });
      await waitFor(() => observer.endpoints().every((e) => e.health === 'serving'), {
        timeoutMs: 5000,
        message: 'every endpoint reports SERVING',
      });
      const load = startLoad(client, { concurrency: 3 });
      await target.setHealth('NOT_SERVING');
      await waitFor(() => observer.endpoint(target.address)?.health === 'not_serving', {
        timeoutMs: 5000,
        message: 'the watch reports NOT_SERVING',
      });
      // A call picked just before the answer may still be on its way: count from when none is.
      await waitFor(() => observer.endpoint(target.address)?.outstanding === 0, {
        timeoutMs: 5000,
        message: 'the calls picked before NOT_SERVING have ended',
      });
      const callsAtRemoval = (await target.stats()).totalCalls;
      await waitFor(() => load.result.ok > 300, { timeoutMs: 10_000, message: '300 calls' });
      assert.equal(
        (await target.stats()).totalCalls,
        callsAtRemoval,
        'no call reached the NOT_SERVING endpoint',
      );
      await target.setHealth('SERVING');
      await waitFor(async () => (await target.stats()).totalCalls > callsAtRemoval + 20, {
        timeoutMs: 5000,
        message: 'calls return to it',
      });
      const result = await load.stop();
      assert.equal(result.errors.length, 0);
      assert.equal(observer.endpoint(target.address)?.inRotation, true);
    } finally {
      client.close();
      await set.stopAll();
    }
  });

  test('falls back to Check when Watch is unimplemented, and treats no health service as healthy', async () => {
    const checkOnly = await startBackends({ count: 2, healthService: 'check-only' });
    const none = await startBackends({ count: 1, healthService: 'none', firstHost: 20 });
    const observer = new LoadBalancerObserver();
    const client = clientFor(
      [...checkOnly.backends, ...none.backends],
      roundRobin({ healthCheck: { checkInterval: '0.1s' } }),
      observer,
    );
    try {
      await sayHello(client, 'warm', { waitForReady: true });
      await waitFor(
        () => observer.endpoint(none.backends[0]!.address)?.health === 'unimplemented',
        {
          timeoutMs: 5000,
          message: 'the backend without a health service counts as healthy',
        },
      );
      await waitFor(
        () => checkOnly.backends.every((b) => observer.endpoint(b.address)?.health === 'serving'),
        {
          timeoutMs: 5000,
          message: 'Check reports SERVING',
        },
      );
      await checkOnly.backends[0]!.setHealth('NOT_SERVING');
      await waitFor(
        () => observer.endpoint(checkOnly.backends[0]!.address)?.health === 'not_serving',
        {
          timeoutMs: 5000,
          message: 'polling Check sees NOT_SERVING',
        },
      );
      const load = startLoad(client, { concurrency: 2 });
      await waitFor(() => load.result.ok >= 100, { timeoutMs: 10_000, message: '100 calls' });
      await load.stop();
      assert.equal(load.result.errors.length, 0);
      assert.equal(load.result.perBackend.get(checkOnly.backends[0]!.address), undefined);
      assert.ok((load.result.perBackend.get(none.backends[0]!.address) ?? 0) > 0);
      assert.ok((await checkOnly.backends[1]!.stats()).healthCalls.Check >= 2);
    } finally {
      client.close();
      await checkOnly.stopAll();
      await none.stopAll();
    }
  });

  test('panic mode engages when too few endpoints are healthy, spreads over all, and disengages', async () => {
    const set = await startBackends({ count: 2 });
    const observer = new LoadBalancerObserver();
    const client = clientFor(set, roundRobin({ healthCheck: {}, panicThreshold: 50 }), observer);
    const panics: PanicEvent[] = [];
    observer.on('panic', (e) => panics.push(e));
    try {
      await sayHello(client, 'warm', { waitForReady: true });
      for (const backend of set.backends) await backend.setHealth('NOT_SERVING');
      await waitFor(() => panics.length === 1, { timeoutMs: 5000, message: 'panic mode on' });
      assert.deepEqual(
        {
          active: panics[0]!.active,
          healthyPercent: panics[0]!.healthyPercent,
          thresholdPercent: panics[0]!.thresholdPercent,
        },
        { active: true, healthyPercent: 0, thresholdPercent: 50 },
      );
      const load = startLoad(client, { concurrency: 2 });
      await waitFor(() => load.result.ok >= 100, {
        timeoutMs: 10_000,
        message: 'calls still served in panic',
      });
      const result = await load.stop();
      assert.equal(result.errors.length, 0);
      assert.equal(result.perBackend.size, 2, 'panic spreads over every endpoint');
      await set.backends[0]!.setHealth('SERVING');
      await waitFor(() => panics.length === 2, { timeoutMs: 5000, message: 'panic mode off' });
      assert.equal(panics[1]!.active, false);
    } finally {
      client.close();
      await set.stopAll();
    }
  });
});

describe('draining and latency', () => {
  for (const health of [false, true]) {
    test(`a backend shutting down gracefully costs no failed call${health ? ' (with health checks)' : ''}`, async () => {
      const set = await startBackends({ count: 3 });
      const observer = new LoadBalancerObserver();
      const client = clientFor(set, roundRobin(health ? { healthCheck: {} } : {}), observer);
      try {
        await sayHello(client, 'warm', { waitForReady: true });
        const load = startLoad(client, { concurrency: 6 });
        await waitFor(() => load.result.ok >= 100, { timeoutMs: 10_000, message: 'load running' });
        await set.backends[1]!.stopGracefully(5000);
        const at = load.result.ok;
        await waitFor(() => load.result.ok >= at + 300, {
          timeoutMs: 10_000,
          message: '300 calls after the drain',
        });
        const result = await load.stop();
        assert.deepEqual(
          result.errors.map((e) => `${e.code} ${e.details}`),
          [],
        );
      } finally {
        client.close();
        await set.stopAll();
      }
    });
  }

  test('least request (P2C, peak EWMA) sends a slow backend a clearly smaller share than round robin', async () => {
    const set = await startBackends({ count: 4 });
    const slow = set.backends[3]!;
    // Far slower than the others, so the client's own pauses on a busy machine do not drown it.
    await slow.setDelay(100);
    const shares: Record<string, number> = {};
    for (const [name, policy] of [
      ['round robin', roundRobin()],
      ['least request', leastRequest()],
    ] as const) {
      const client = clientFor(set, policy, new LoadBalancerObserver());
      try {
        await sayHello(client, 'warm', { waitForReady: true });
        const load = startLoad(client, { concurrency: 8 });
        await waitFor(() => load.result.ok >= 800, {
          timeoutMs: 30_000,
          message: `800 calls (${name})`,
        });
        const result = await load.stop();
        assert.equal(result.errors.length, 0);
        shares[name] = shareOf(result, slow.address);
        console.log(`${name}: slow backend share ${shares[name].toFixed(3)}`);
      } finally {
        client.close();
      }
    }
    await set.stopAll();
    assert.ok(
      shares['round robin']! > 0.2,
      `round robin gave the slow backend ${shares['round robin']}`,
    );
    assert.ok(
      shares['least request']! < shares['round robin']! / 2,
      `least request gave the slow backend ${shares['least request']}, round robin ${shares['round robin']}`,
    );
  });

  test('slow start gives a new endpoint a growing share', async () => {
    const set = await startBackends({ count: 3 });
    const [a, b, fresh] = set.backends as [Backend, Backend, Backend];
    const endpoints = (list: Backend[]) => list.map((x) => ({ host: x.host, port: x.port }));
    const manual = new ManualEndpoints(endpoints([a, b]));
    const client = new Greeter(manual.target, insecure, {
      'grpc.service_config': JSON.stringify(
        serviceConfig(roundRobin({ slowStart: { window: '3s', minWeightPercent: 5 } })),
      ),
    });
    try {
      await sayHello(client, 'warm', { waitForReady: true });
      const load = startLoad(client, { concurrency: 3 });
      // Past the window for a and b.
      await new Promise((resolve) => setTimeout(resolve, 3200));
      manual.update(endpoints([a, b, fresh]));
      await waitFor(async () => (await fresh.stats()).totalCalls > 0, {
        timeoutMs: 5000,
        message: 'the new endpoint gets calls',
      });
      const early = (await fresh.stats()).totalCalls;
      const earlyAll = load.result.ok;
      await new Promise((resolve) => setTimeout(resolve, 600));
      const earlyShare =
        ((await fresh.stats()).totalCalls - early) / Math.max(1, load.result.ok - earlyAll);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const late = (await fresh.stats()).totalCalls;
      const lateAll = load.result.ok;
      await new Promise((resolve) => setTimeout(resolve, 600));
      const lateShare =
        ((await fresh.stats()).totalCalls - late) / Math.max(1, load.result.ok - lateAll);
      const result = await load.stop();
      assert.equal(result.errors.length, 0);
      assert.ok(earlyShare < 0.2, `early share ${earlyShare.toFixed(3)} should be well below 1/3`);
      assert.ok(lateShare > 0.28, `late share ${lateShare.toFixed(3)} should be about 1/3`);
    } finally {
      client.close();
      manual.dispose();
      await set.stopAll();
    }
  });
});
