/**
 * grpc-lb.round_robin against real grpc-js backends (child processes on 127.0.0.x, one port).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  ConfigError,
  ManualEndpoints,
  register,
  ROUND_ROBIN_POLICY,
  TargetError,
} from '@grpc-lb/core';
import {
  type Backend,
  type BackendSet,
  type GreeterClient,
  isServiceError,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from './harness';

register({ grpc });
const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();

function endpointsOf(backends: readonly Backend[]) {
  return backends.map((b) => ({ host: b.host, port: b.port }));
}

/** `calls` calls, `concurrency` at a time; returns replies per backend address and the errors. */
async function drive(client: GreeterClient, calls: number, concurrency = 10) {
  const perBackend = new Map<string, number>();
  const errors: grpc.ServiceError[] = [];
  let issued = 0;
  const worker = async () => {
    while (issued < calls) {
      issued++;
      try {
        const reply = await sayHello(client, 'test');
        perBackend.set(reply.address, (perBackend.get(reply.address) ?? 0) + 1);
      } catch (error) {
        if (!isServiceError(error)) throw error;
        errors.push(error);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { perBackend, errors };
}

function maxMinShare(perBackend: Map<string, number>, expectedBackends: number): number {
  assert.equal(
    perBackend.size,
    expectedBackends,
    `calls reached ${perBackend.size} of ${expectedBackends} backends`,
  );
  const counts = [...perBackend.values()];
  return Math.max(...counts) / Math.min(...counts);
}

async function callError(client: GreeterClient, deadlineMs = 5000): Promise<grpc.ServiceError> {
  try {
    await sayHello(client, 'test', { deadlineMs });
  } catch (error) {
    if (isServiceError(error)) return error;
    throw error;
  }
  assert.fail('the call succeeded');
}

describe('grpc-lb.round_robin with real backends', () => {
  test('spreads 10,000 calls evenly over 3 backends from a plain static: target', async () => {
    const set = await startBackends({ count: 3 });
    const client = new Greeter(`static:///${set.addresses.join(',')}`, insecure);
    try {
      const { perBackend, errors } = await drive(client, 10_000);
      assert.equal(errors.length, 0);
      const ratio = maxMinShare(perBackend, 3);
      assert.ok(
        ratio <= 1.05,
        `max/min share ${ratio.toFixed(3)} > 1.05: ${JSON.stringify([...perBackend])}`,
      );
      for (const backend of set.backends) {
        assert.equal((await backend.stats()).calls.SayHello, perBackend.get(backend.address));
        assert.equal(
          (await backend.stats()).connectionsAccepted,
          1,
          `${backend.address}: one connection`,
        );
      }
    } finally {
      client.close();
      await set.stopAll();
    }
  });

  test('spreads 10,000 calls evenly over 10 backends', async () => {
    const set = await startBackends({ count: 10 });
    const client = new Greeter(`static:///${set.addresses.join(',')}`, insecure);
    try {
      const { perBackend, errors } = await drive(client, 10_000);
      assert.equal(errors.length, 0);
      const ratio = maxMinShare(perBackend, 10);
      assert.ok(
        ratio <= 1.05,
        `max/min share ${ratio.toFixed(3)} > 1.05: ${JSON.stringify([...perBackend])}`,
      );
    } finally {
      client.close();
      await set.stopAll();
    }
  });

  describe('endpoint updates', () => {
    let set: BackendSet;
    before(async () => {
      set = await startBackends({ count: 4 });
    });
    after(async () => {
      await set.stopAll();
    });

    test('an update that keeps 2 of 3 endpoints opens no new connection to them', async () => {
      const [a, b, c, d] = set.backends as [Backend, Backend, Backend, Backend];
      for (const backend of set.backends) await backend.resetStats();
      const manual = new ManualEndpoints(endpointsOf([a, b, c]));
      const client = new Greeter(manual.target, insecure);
      try {
        const first = await drive(client, 300);
        assert.equal(first.errors.length, 0);
        assert.equal(first.perBackend.size, 3);

        manual.update(endpointsOf([a, b, d]));
        await waitFor(async () => (await d.stats()).connectionsOpen === 1, {
          timeoutMs: 5000,
          message: 'the new endpoint is connected',
        });
        const cCallsBefore = (await c.stats()).totalCalls;
        const second = await drive(client, 300);
        assert.equal(
          (await c.stats()).totalCalls,
          cCallsBefore,
          'no call reaches the removed endpoint',
        );
        assert.equal(second.errors.length, 0);
        assert.deepEqual(
          [...second.perBackend.keys()].sort(),
          [a.address, b.address, d.address].sort(),
        );
        for (const kept of [a, b]) {
          const stats = await kept.stats();
          assert.equal(stats.connectionsAccepted, 1, `${kept.address} kept its connection`);
          assert.equal(stats.connectionsOpen, 1);
        }
        assert.equal((await d.stats()).connectionsAccepted, 1);

        // Labels and weights change, addresses do not: still no reconnection.
        manual.update([
          { host: a.host, port: a.port, labels: { version: 'v2' }, weight: 5 },
          { host: b.host, port: b.port, zone: 'z' },
          { host: d.host, port: d.port },
        ]);
        const third = await drive(client, 300);
        assert.equal(third.errors.length, 0);
        for (const kept of [a, b, d]) assert.equal((await kept.stats()).connectionsAccepted, 1);

        // grpc-js's subchannel pool closes an unused connection on its 10 s sweep.
        await waitFor(async () => (await c.stats()).connectionsOpen === 0, {
          timeoutMs: 15_000,
          intervalMs: 200,
          message: 'the removed endpoint is disconnected',
        });
      } finally {
        client.close();
        manual.dispose();
      }
    });

    test('removing every endpoint fails calls with UNAVAILABLE naming the target once the removal hold-down (2 s) is over; they recover', async () => {
      const manual = new ManualEndpoints(endpointsOf(set.backends.slice(0, 2)));
      const client = new Greeter(manual.target, insecure);
      try {
        assert.equal((await drive(client, 20)).errors.length, 0);
        manual.update([]);
        const error = await waitFor(
          async () => {
            const e = await callError(client).catch(() => undefined);
            return e?.code === grpc.status.UNAVAILABLE ? e : undefined;
          },
          { timeoutMs: 5000, message: 'calls fail once the set is empty' },
        );
        assert.match(error.details, new RegExp(`grpc-lb: no endpoints for ${manual.target}`));
        const started = Date.now();
        const next = await callError(client, 10_000);
        assert.equal(
          next.code,
          grpc.status.UNAVAILABLE,
          'fails fast rather than waiting for the deadline',
        );
        assert.ok(Date.now() - started < 5000);

        manual.update(endpointsOf(set.backends.slice(0, 1)));
        const reply = await sayHello(client, 'back', { waitForReady: true });
        assert.equal(reply.address, set.backends[0]!.address);
      } finally {
        client.close();
        manual.dispose();
      }
    });

    test('an empty first resolution fails calls fast instead of queueing them', async () => {
      const manual = new ManualEndpoints([]);
      const client = new Greeter(manual.target, insecure);
      try {
        const error = await callError(client, 10_000);
        assert.equal(error.code, grpc.status.UNAVAILABLE);
        assert.match(error.details, /no endpoints for manual:/);
      } finally {
        client.close();
        manual.dispose();
      }
    });

    test('a registry error before any endpoint fails calls with the error; after one it keeps the set', async () => {
      const manual = new ManualEndpoints();
      manual.fail(new Error('registry unreachable'));
      const client = new Greeter(manual.target, insecure);
      try {
        const error = await callError(client);
        assert.equal(error.code, grpc.status.UNAVAILABLE);
        assert.match(error.details, /registry unreachable/);
        manual.update(endpointsOf(set.backends.slice(0, 2)));
        await sayHello(client, 'x', { waitForReady: true });
        manual.fail(new Error('registry unreachable again'));
        const { errors, perBackend } = await drive(client, 50);
        assert.equal(errors.length, 0);
        assert.equal(perBackend.size, 2);
      } finally {
        client.close();
        manual.dispose();
      }
    });
  });

  test('a killed backend is skipped: its calls go to the others, and it is used again after a restart', async () => {
    const set = await startBackends({ count: 3 });
    const client = new Greeter(`static:///${set.addresses.join(',')}`, insecure);
    try {
      assert.equal((await drive(client, 30)).errors.length, 0);
      const victim = set.backends[1]!;
      await victim.kill();
      // Calls in flight on the victim at the moment it died may fail; after that none do.
      await waitFor(async () => (await drive(client, 6, 1)).errors.length === 0, {
        timeoutMs: 5000,
        message: 'calls succeed again after the kill',
      });
      const { perBackend, errors } = await drive(client, 300);
      assert.equal(errors.length, 0);
      assert.equal(perBackend.get(victim.address), undefined);
      assert.equal(perBackend.size, 2);

      await victim.restart();
      await waitFor(async () => (await drive(client, 30)).perBackend.has(victim.address), {
        timeoutMs: 15_000,
        message: 'the restarted backend gets calls again',
      });
    } finally {
      client.close();
      await set.stopAll();
    }
  });

  test('a dropped endpoint asks for re-resolution, rate-limited to one per interval', async () => {
    const set = await startBackends({ count: 2 });
    const manual = new ManualEndpoints(endpointsOf(set.backends));
    const client = new Greeter(manual.target, insecure, { 'grpc-lb.min_refresh_interval_ms': 500 });
    try {
      assert.equal((await drive(client, 20)).errors.length, 0);
      const before = manual.refreshCount;
      const killedAt = Date.now();
      await set.backends[0]!.kill();
      await waitFor(() => manual.refreshCount > before, {
        timeoutMs: 5000,
        message: 'the balancer asks the resolver for fresh endpoints',
      });
      // pick_first retries the dead address and asks again each time; the adapter lets one
      // request through per 500 ms (grpc-js would let thousands per second through: nothing in it rate-limits a resolver).
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const refreshes = manual.refreshCount - before;
      const allowed = Math.floor((Date.now() - killedAt) / 500) + 1;
      assert.ok(
        refreshes >= 1 && refreshes <= allowed,
        `${refreshes} refreshes, at most ${allowed} allowed`,
      );
    } finally {
      client.close();
      manual.dispose();
      await set.stopAll();
    }
  });

  test('with every backend down, calls fail fast with UNAVAILABLE naming the target', async () => {
    const set = await startBackends({ count: 2 });
    const target = `static:///${set.addresses.join(',')}`;
    const client = new Greeter(target, insecure);
    try {
      await sayHello(client, 'x', { waitForReady: true });
      for (const backend of set.backends) await backend.kill();
      const error = await waitFor(
        async () => {
          const e = await callError(client).catch(() => undefined);
          return e?.details.includes('can take calls') ? e : undefined;
        },
        { timeoutMs: 10_000, message: 'calls report that no endpoint is reachable' },
      );
      assert.equal(error.code, grpc.status.UNAVAILABLE);
      assert.ok(error.details.includes(target), error.details);
      assert.match(error.details, /2 of 2 endpoints in TRANSIENT_FAILURE/);
    } finally {
      client.close();
      await set.stopAll();
    }
  });

  test('method config still applies through our ConfigSelector: timeouts and retries', async () => {
    const set = await startBackends({ count: 2 });
    const serviceConfig = {
      loadBalancingConfig: [{ [ROUND_ROBIN_POLICY]: {} }],
      methodConfig: [
        {
          name: [{ service: 'grpclb.test.Greeter', method: 'SayHello' }],
          timeout: '0.3s',
          retryPolicy: {
            maxAttempts: 5,
            initialBackoff: '0.01s',
            maxBackoff: '0.05s',
            backoffMultiplier: 2,
            retryableStatusCodes: ['UNAVAILABLE'],
          },
        },
      ],
    };
    const client = new Greeter(`static:///${set.addresses.join(',')}`, insecure, {
      'grpc.service_config': JSON.stringify(serviceConfig),
    });
    try {
      await sayHello(client, 'x', { waitForReady: true });
      // One backend fails every call; calls one at a time alternate, so each failed attempt is
      // retried on the healthy one. Without the retry policy half the calls would fail.
      const [broken, healthy] = set.backends as [Backend, Backend];
      await broken.setFailRate(1);
      const retried = await drive(client, 100, 1);
      assert.deepEqual(
        retried.errors.map((e) => `${e.code} ${e.details}`),
        [],
        'the retry policy hides the failures',
      );
      assert.equal(retried.perBackend.get(healthy.address), 100);
      assert.ok((await broken.stats()).failedCalls >= 40, 'the broken backend failed attempts');

      for (const backend of set.backends) {
        await backend.setFailRate(0);
        await backend.setDelay(3000);
      }
      const started = Date.now();
      const error = await callError(client, 10_000);
      assert.equal(error.code, grpc.status.DEADLINE_EXCEEDED);
      assert.ok(
        Date.now() - started < 2500,
        'the 0.3 s method timeout applied, not the 10 s call deadline',
      );
    } finally {
      client.close();
      await set.stopAll();
    }
  });

  test('malformed targets and configs throw typed errors from the client constructor', () => {
    assert.throws(
      () => new Greeter('static:///127.0.0.1', insecure),
      (e: unknown) =>
        e instanceof TargetError && e.code === 'BAD_TARGET' && /has no port/.test(e.message),
    );
    assert.throws(
      () => new Greeter('static:///127.0.0.1:1;weight=heavy', insecure),
      (e: unknown) => e instanceof TargetError && /weight "heavy"/.test(e.message),
    );
    assert.throws(
      () => new Greeter('manual:///no-such-id', insecure),
      (e: unknown) =>
        e instanceof TargetError && /no ManualEndpoints with id "no-such-id"/.test(e.message),
    );
    assert.throws(
      () =>
        new Greeter('static:///127.0.0.1:1', insecure, {
          'grpc.service_config': JSON.stringify({
            loadBalancingConfig: [{ [ROUND_ROBIN_POLICY]: { mode: 'x' } }],
          }),
        }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.code === 'BAD_CONFIG' &&
        e.field === `loadBalancingConfig[0].${ROUND_ROBIN_POLICY}.mode`,
    );
  });

  test('a bad service config from a resolver fails calls with the field named, not a silent pick_first', async () => {
    const set = await startBackends({ count: 1 });
    const manual = new ManualEndpoints({
      endpoints: endpointsOf(set.backends),
      // A bad value (an unknown field from a resolver would be ignored with a warning).
      serviceConfig: { loadBalancingConfig: [{ [ROUND_ROBIN_POLICY]: { panicThreshold: 'x' } }] },
    });
    const client = new Greeter(manual.target, insecure);
    try {
      const error = await callError(client);
      assert.equal(error.code, grpc.status.UNAVAILABLE);
      assert.match(
        error.details,
        /loadBalancingConfig\[0\]\.grpc-lb\.round_robin\.panicThreshold: expected an integer 0-100/,
      );
    } finally {
      client.close();
      manual.dispose();
      await set.stopAll();
    }
  });

  test('registering twice is harmless', async () => {
    const before = register({ grpc });
    assert.deepEqual(register({ grpc }), before);
    const set = await startBackends({ count: 2 });
    const client = new Greeter(`static:///${set.addresses.join(',')}`, insecure);
    try {
      const { perBackend, errors } = await drive(client, 100);
      assert.equal(errors.length, 0);
      assert.equal(perBackend.size, 2, 'both backends get calls');
    } finally {
      client.close();
      await set.stopAll();
    }
  });

  test('after client.close() no resolver, socket or connection of ours is left', async () => {
    const set = await startBackends({ count: 3 });
    const manual = new ManualEndpoints(endpointsOf(set.backends));
    const client = new Greeter(manual.target, insecure);
    try {
      assert.equal((await drive(client, 30)).errors.length, 0);
      assert.equal(manual.activeResolvers, 1);
      for (const backend of set.backends) assert.equal((await backend.stats()).connectionsOpen, 1);
      client.close();
      assert.equal(manual.activeResolvers, 0, 'the resolver was stopped');
      for (const backend of set.backends) {
        await waitFor(async () => (await backend.stats()).connectionsOpen === 0, {
          timeoutMs: 5000,
          message: `${backend.address} sees its connection closed`,
        });
      }
    } finally {
      client.close();
      manual.dispose();
      await set.stopAll();
    }
  });
});
