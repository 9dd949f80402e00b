/**
 * Checks the real-backend harness against reality: real child processes, real sockets, a plain
 * grpc-js client. Later suites rely on every behaviour asserted here.
 */
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import {
  type BackendSet,
  type GreeterClient,
  type HealthClient,
  type HealthStatus,
  type StartBackendsOptions,
  BackendControlError,
  BackendStartError,
  GREETER_SERVICE,
  checkHealth,
  createGreeterClient,
  createHealthClient,
  isProcessAlive,
  isServiceError,
  once,
  sayGoodbye,
  sayHello,
  startBackends,
  waitFor,
} from './harness';

/** A guard against hangs, far above a test's normal duration (< 1 s, a few s on a loaded CI). */
const TEST_TIMEOUT_MS = 30_000;

interface Clients {
  greeter(target: string, options?: grpc.ClientOptions): GreeterClient;
  health(target: string, options?: grpc.ClientOptions): HealthClient;
}

/**
 * Runs `body` against fresh backends and always stops them and closes the clients it made. Clients
 * use a local subchannel pool so that each owns its connections (closing it closes them).
 */
async function withBackends(
  options: StartBackendsOptions,
  body: (set: BackendSet, clients: Clients) => Promise<void>,
): Promise<void> {
  const set = await startBackends(options);
  const made: grpc.Client[] = [];
  const local = (options?: grpc.ClientOptions): grpc.ClientOptions => ({
    'grpc.use_local_subchannel_pool': 1,
    ...options,
  });
  const clients: Clients = {
    greeter(target, options) {
      const client = createGreeterClient(target, local(options));
      made.push(client);
      return client;
    },
    health(target, options) {
      const client = createHealthClient(target, local(options));
      made.push(client);
      return client;
    },
  };
  try {
    await body(set, clients);
  } finally {
    for (const client of made) client.close();
    await set.stopAll();
  }
}

async function assertFailsWith(call: Promise<unknown>, code: grpc.status): Promise<void> {
  await assert.rejects(call, (error: unknown) => {
    assert.ok(isServiceError(error), `expected a grpc ServiceError, got ${String(error)}`);
    assert.equal(
      error.code,
      code,
      `expected ${grpc.status[code]}, got ${grpc.status[error.code]}: ${error.details}`,
    );
    return true;
  });
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Starts observing a call now without leaving a rejection unhandled while the test does other things. */
function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  );
}

function onlyBackend(set: BackendSet): NonNullable<BackendSet['backends'][number]> {
  const backend = set.backends[0];
  assert.ok(backend, 'the set has a backend');
  return backend;
}

describe('startBackends', () => {
  test(
    'three backends on 127.0.0.2-4 share one port and answer with their identity',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const labels = [{ zone: 'a' }, { zone: 'b' }, { zone: 'c' }];
      await withBackends({ count: 3, labels }, async (set, clients) => {
        assert.deepEqual(
          set.addresses,
          [2, 3, 4].map((host) => `127.0.0.${host}:${set.port}`),
        );
        assert.equal(
          new Set(set.backends.map((backend) => backend.pid)).size,
          3,
          'one process each',
        );
        const expected = [
          { name: 'backend-1', hello: 'Hello eric', goodbye: 'Goodbye eric' },
          { name: 'backend-2', hello: 'Bonjour eric', goodbye: 'Au revoir eric' },
          { name: 'backend-3', hello: 'Hola eric', goodbye: 'Adiós eric' },
        ];
        for (const [index, backend] of set.backends.entries()) {
          const want = expected[index];
          assert.ok(want);
          const client = clients.greeter(`ipv4:${backend.address}`);
          assert.deepEqual(await sayHello(client, 'eric'), {
            message: want.hello,
            backend: want.name,
            address: backend.address,
            labels: labels[index],
          });
          assert.equal((await sayGoodbye(client, 'eric')).message, want.goodbye);
          const stats = await backend.stats();
          assert.deepEqual(stats.calls, { SayHello: 1, SayGoodbye: 1 });
          assert.equal(stats.totalCalls, 2);
        }
      });
    },
  );

  test(
    'ipv4Target names every backend, so round_robin reaches all of them',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withBackends({ count: 3 }, async (set, clients) => {
        assert.equal(set.ipv4Target, `ipv4:${set.addresses.join(',')}`);
        const client = clients.greeter(set.ipv4Target, {
          'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
        });
        const seen = new Set<string>();
        await waitFor(
          async () => {
            seen.add((await sayHello(client, 'rr')).backend);
            return seen.size === 3;
          },
          { timeoutMs: 5_000, intervalMs: 1, message: 'round_robin to reach all three backends' },
        );
      });
    },
  );

  test(
    'add() starts one more backend at the next IP on the same port',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withBackends({ count: 2 }, async (set, clients) => {
        const added = await set.add({ greeting: 'Hallo', labels: { zone: 'z' } });
        assert.equal(added.address, `127.0.0.4:${set.port}`);
        assert.equal(added.name, 'backend-3');
        assert.equal(set.backend('backend-3'), added);
        assert.equal(set.addresses.length, 3);
        const reply = await sayHello(clients.greeter(`ipv4:${added.address}`), 'eric');
        assert.deepEqual(reply, {
          message: 'Hallo eric',
          backend: 'backend-3',
          address: added.address,
          labels: { zone: 'z' },
        });
      });
    },
  );

  test(
    'a fixed port that is taken fails with EADDRINUSE instead of retrying',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withBackends({ count: 1 }, async (set) => {
        await assert.rejects(startBackends({ count: 1, port: set.port }), (error: unknown) => {
          assert.ok(error instanceof BackendStartError);
          assert.equal(error.code, 'EADDRINUSE');
          return true;
        });
      });
    },
  );

  test(
    'invalid options are rejected with the field named',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await assert.rejects(startBackends({ count: 0 }), /"count"/);
      await assert.rejects(startBackends({ count: 3, firstHost: 253 }), /"firstHost"/);
    },
  );
});

describe('connection counting', () => {
  test(
    'each new client connection is counted as accepted and open until it closes',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withBackends({ count: 1 }, async (set, clients) => {
        const backend = onlyBackend(set);
        const target = `ipv4:${backend.address}`;
        assert.equal((await backend.stats()).connectionsAccepted, 0);

        const first = clients.greeter(target);
        await sayHello(first, 'a');
        let stats = await backend.stats();
        assert.equal(stats.connectionsAccepted, 1);
        assert.equal(stats.connectionsOpen, 1);

        const second = clients.greeter(target);
        await sayHello(second, 'b');
        stats = await backend.stats();
        assert.equal(stats.connectionsAccepted, 2);
        assert.equal(stats.connectionsOpen, 2);
        assert.equal(stats.peers.length, 2, 'two distinct client sockets');

        first.close();
        second.close();
        await waitFor(async () => (await backend.stats()).connectionsOpen === 0, {
          timeoutMs: 5_000,
          message: 'both connections to close',
        });
        assert.equal((await backend.stats()).connectionsAccepted, 2);
      });
    },
  );
});

describe('fault injection', () => {
  test(
    'setFailRate(1) fails every call with UNAVAILABLE, or the given code',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withBackends({ count: 1 }, async (set, clients) => {
        const backend = onlyBackend(set);
        const client = clients.greeter(`ipv4:${backend.address}`);
        await backend.setFailRate(1);
        await assertFailsWith(sayHello(client, 'x'), grpc.status.UNAVAILABLE);
        await assertFailsWith(sayGoodbye(client, 'x'), grpc.status.UNAVAILABLE);
        await backend.setFailRate(1, grpc.status.RESOURCE_EXHAUSTED);
        await assertFailsWith(sayHello(client, 'x'), grpc.status.RESOURCE_EXHAUSTED);
        assert.equal((await backend.stats()).failedCalls, 3);
        await backend.setFailRate(0);
        assert.equal((await sayHello(client, 'x')).message, 'Hello x');
      });
    },
  );

  test('setFailRate(0.5) fails half of 200 calls', { timeout: TEST_TIMEOUT_MS }, async () => {
    await withBackends({ count: 1 }, async (set, clients) => {
      const backend = onlyBackend(set);
      const client = clients.greeter(`ipv4:${backend.address}`);
      await backend.setFailRate(0.5);
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => settle(sayHello(client, `n${i}`))),
      );
      const failures = results.filter((result) => !result.ok);
      for (const failure of failures) {
        assert.ok(isServiceError(failure.error) && failure.error.code === grpc.status.UNAVAILABLE);
      }
      // Failures are spread deterministically, so the share is exact, not just close.
      assert.equal(failures.length, 100);
      assert.equal((await backend.stats()).failedCalls, 100);
    });
  });

  test(
    'hang() holds calls past their deadline and hang(false) answers the held ones',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withBackends({ count: 1 }, async (set, clients) => {
        const backend = onlyBackend(set);
        const client = clients.greeter(`ipv4:${backend.address}`);
        await sayHello(client, 'warm-up');
        await backend.hang();
        await assertFailsWith(
          sayHello(client, 'late', { deadlineMs: 200 }),
          grpc.status.DEADLINE_EXCEEDED,
        );

        const held = settle(sayHello(client, 'held', { deadlineMs: 10_000 }));
        await waitFor(
          async () => {
            const stats = await backend.stats();
            return stats.totalCalls === 3 && stats.inFlight === 1;
          },
          {
            timeoutMs: 5_000,
            message: 'the held call to arrive and the expired one to be dropped',
          },
        );
        await backend.hang(false);
        const result = await held;
        assert.ok(result.ok, `held call failed: ${result.ok ? '' : String(result.error)}`);
        assert.equal(result.value.message, 'Hello held');
        assert.equal((await sayHello(client, 'after')).message, 'Hello after');
      });
    },
  );

  test(
    'setDelay() answers each call only after the delay',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withBackends({ count: 1 }, async (set, clients) => {
        const backend = onlyBackend(set);
        const client = clients.greeter(`ipv4:${backend.address}`);
        await sayHello(client, 'warm-up');
        await backend.setDelay(400);
        await assertFailsWith(
          sayHello(client, 'slow', { deadlineMs: 100 }),
          grpc.status.DEADLINE_EXCEEDED,
        );
        assert.equal(
          (await sayHello(client, 'patient', { deadlineMs: 5_000 })).message,
          'Hello patient',
        );
      });
    },
  );
});

describe('health', () => {
  test(
    'setHealth is visible via Health/Check and streamed to Health/Watch',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withBackends({ count: 1 }, async (set, clients) => {
        const backend = onlyBackend(set);
        const health = clients.health(`ipv4:${backend.address}`);
        assert.equal(await checkHealth(health), 'SERVING');
        assert.equal(await checkHealth(health, GREETER_SERVICE), 'SERVING');
        await assertFailsWith(checkHealth(health, 'no.such.Service'), grpc.status.NOT_FOUND);

        const watch = health.Watch({ service: '' });
        const updates: HealthStatus[] = [];
        watch.on('data', (response: { status: HealthStatus }) => updates.push(response.status));
        const ended = settle(once(watch, 'status', 5_000));
        watch.on('error', () => undefined); // CANCELLED after watch.cancel() below
        const nextUpdate = (): Promise<HealthStatus> =>
          waitFor(() => updates.shift(), { timeoutMs: 5_000, message: 'a Health/Watch update' });

        assert.equal(await nextUpdate(), 'SERVING');
        await backend.setHealth('NOT_SERVING');
        assert.equal(await nextUpdate(), 'NOT_SERVING');
        assert.equal(await checkHealth(health), 'NOT_SERVING');
        assert.equal(
          await checkHealth(health, GREETER_SERVICE),
          'SERVING',
          'per-service status is separate',
        );

        await backend.setHealth('NOT_SERVING', GREETER_SERVICE);
        assert.equal(await checkHealth(health, GREETER_SERVICE), 'NOT_SERVING');
        await backend.setHealth('SERVING');
        assert.equal(await nextUpdate(), 'SERVING');
        assert.equal((await backend.stats()).watchers, 1);

        watch.cancel();
        await ended;
        await waitFor(async () => (await backend.stats()).watchers === 0, {
          timeoutMs: 5_000,
          message: 'the cancelled watch to be forgotten',
        });
        assert.deepEqual(updates, [], 'no update for a status that did not change');
      });
    },
  );
});

describe('stopping and restarting', () => {
  test(
    'stopGracefully lets an in-flight delayed call complete, then exits 0',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withBackends({ count: 1 }, async (set, clients) => {
        const backend = onlyBackend(set);
        const client = clients.greeter(`ipv4:${backend.address}`);
        await backend.setDelay(300);
        const inFlight = settle(sayHello(client, 'slow', { deadlineMs: 10_000 }));
        await waitFor(async () => (await backend.stats()).inFlight === 1, {
          timeoutMs: 5_000,
          message: 'the slow call to reach the backend',
        });

        const started = Date.now();
        assert.deepEqual(await backend.stopGracefully(5_000), { code: 0, signal: null });
        assert.ok(Date.now() - started < 4_000, 'stop does not wait for the whole grace period');
        assert.equal(backend.isRunning, false);
        const result = await inFlight;
        assert.ok(result.ok, `in-flight call failed: ${result.ok ? '' : String(result.error)}`);
        assert.equal(result.value.message, 'Hello slow');
        await assertFailsWith(sayHello(client, 'after'), grpc.status.UNAVAILABLE);
      });
    },
  );

  test(
    'graceful stop reports NOT_SERVING to watchers and ends their streams',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withBackends({ count: 1 }, async (set, clients) => {
        const backend = onlyBackend(set);
        const watch = clients.health(`ipv4:${backend.address}`).Watch({ service: '' });
        const updates: HealthStatus[] = [];
        watch.on('data', (response: { status: HealthStatus }) => updates.push(response.status));
        watch.on('error', () => undefined);
        const ended = settle(once<[grpc.StatusObject]>(watch, 'status', 5_000));
        await waitFor(() => updates.length === 1, {
          timeoutMs: 5_000,
          message: 'the first Watch update',
        });
        await backend.stopGracefully(5_000);
        const end = await ended;
        assert.ok(end.ok, `watch did not end cleanly: ${end.ok ? '' : String(end.error)}`);
        assert.equal(end.value[0].code, grpc.status.OK);
        assert.deepEqual(updates, ['SERVING', 'NOT_SERVING']);
      });
    },
  );

  test(
    'kill() fails in-flight and later calls with UNAVAILABLE',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withBackends({ count: 1 }, async (set, clients) => {
        const backend = onlyBackend(set);
        const client = clients.greeter(`ipv4:${backend.address}`);
        await backend.setDelay(10_000);
        const inFlight = settle(sayHello(client, 'doomed', { deadlineMs: 15_000 }));
        await waitFor(async () => (await backend.stats()).inFlight === 1, {
          timeoutMs: 5_000,
          message: 'the call to reach the backend',
        });

        assert.deepEqual(await backend.kill(), { code: null, signal: 'SIGKILL' });
        const result = await inFlight;
        assert.ok(!result.ok && isServiceError(result.error), 'in-flight call fails');
        assert.equal(result.error.code, grpc.status.UNAVAILABLE);
        await assertFailsWith(sayHello(client, 'after'), grpc.status.UNAVAILABLE);
        await assert.rejects(backend.stats(), (error: unknown) => {
          assert.ok(error instanceof BackendControlError);
          assert.equal(error.code, 'NOT_RUNNING');
          return true;
        });
        assert.deepEqual(
          await backend.kill(),
          { code: null, signal: 'SIGKILL' },
          'kill() again is a no-op',
        );
      });
    },
  );

  test(
    'restart() comes back as a new process on the same address',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withBackends({ count: 2 }, async (set, clients) => {
        const backend = set.backend('backend-2');
        const firstPid = backend.pid;
        await backend.kill();
        await backend.restart();
        assert.ok(backend.isRunning);
        assert.notEqual(backend.pid, firstPid);
        const reply = await sayHello(clients.greeter(`ipv4:${backend.address}`), 'eric');
        assert.deepEqual(
          [reply.backend, reply.address, reply.message],
          ['backend-2', `127.0.0.3:${set.port}`, 'Bonjour eric'],
        );
        assert.equal(
          (await backend.stats()).totalCalls,
          1,
          'a new process starts with fresh stats',
        );

        const secondPid = backend.pid;
        await backend.restart();
        assert.notEqual(
          backend.pid,
          secondPid,
          'restart() of a running backend replaces its process',
        );
        assert.equal(await isProcessAlive(secondPid), false);
      });
    },
  );

  test(
    'freeze() leaves TCP accepted by the kernel but unanswered until thaw()',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      await withBackends({ count: 1 }, async (set, clients) => {
        const backend = onlyBackend(set);
        const client = clients.greeter(`ipv4:${backend.address}`);
        await backend.freeze();
        assert.ok(backend.isFrozen);

        const socket = net.connect({ host: backend.host, port: backend.port });
        try {
          await once(socket, 'connect', 5_000);
        } finally {
          socket.destroy();
        }
        await assertFailsWith(
          sayHello(client, 'frozen', { deadlineMs: 300 }),
          grpc.status.DEADLINE_EXCEEDED,
        );
        await assert.rejects(backend.stats(), { code: 'FROZEN' });

        await backend.thaw();
        assert.equal(backend.isFrozen, false);
        assert.equal((await sayHello(client, 'thawed')).message, 'Hello thawed');
      });
    },
  );

  test(
    'stopAll() leaves no child process and can be called again',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const set = await startBackends({ count: 3 });
      const pids = set.backends.map((backend) => backend.pid);
      await onlyBackend(set).freeze();
      await set.stopAll();
      for (const pid of pids) assert.equal(await isProcessAlive(pid), false, `pid ${pid} is gone`);
      assert.ok(set.backends.every((backend) => !backend.isRunning));
      await set.stopAll();
      await set[Symbol.asyncDispose]();
    },
  );

  for (const ending of ['crashes', 'exits without stopAll'] as const) {
    test(
      `backends do not outlive a test process that ${ending}`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const harness = path.join(__dirname, 'harness', 'index.js');
        const finish = ending === 'crashes' ? "process.kill(process.pid, 'SIGKILL');" : '';
        const script = `
        require(${JSON.stringify(harness)}).startBackends({ count: 2 }).then((set) => {
          process.stdout.write(JSON.stringify(set.backends.map((b) => b.pid)) + '\\n');
          ${finish}
        });`;
        const parent = spawn(process.execPath, ['-e', script], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let stdout = '';
        parent.stdout.setEncoding('utf8');
        parent.stdout.on('data', (chunk: string) => (stdout += chunk));
        const [code, signal] = await once<[number | null, NodeJS.Signals | null]>(
          parent,
          'close',
          15_000,
        );
        if (ending === 'crashes') assert.equal(signal, 'SIGKILL');
        else
          assert.equal(code, 0, 'the process exits by itself although backends were left running');

        const pids: unknown = JSON.parse(stdout);
        assert.ok(
          Array.isArray(pids) && pids.length === 2 && pids.every((pid) => typeof pid === 'number'),
        );
        await waitFor(
          async () => {
            const alive = await Promise.all(pids.map((pid: number) => isProcessAlive(pid)));
            return alive.every((isAlive) => !isAlive);
          },
          { timeoutMs: 5_000, message: `backend processes ${pids.join(', ')} to exit` },
        );
      },
    );
  }
});
