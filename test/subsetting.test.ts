/**
 * The `subsetting` option against real grpc-js backends (child processes on
 * 127.0.0.2 … 127.0.0.11, one port): each channel connects to its subset
 * only (connections counted by the servers), its calls stay there, and a
 * member that stops is not replaced: the other members take its calls
 * without a failed call.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { register, roundRobin, serviceConfig } from '@grpc-lb/core';
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

const BACKENDS = 10;
const SUBSET = 3;

type Subsetting = NonNullable<NonNullable<Parameters<typeof roundRobin>[0]>['subsetting']>;

/** A channel of its own (no subchannel shared with another channel) with `subsetting`. */
function channel(set: BackendSet, subsetting: Subsetting): GreeterClient {
  const config = serviceConfig(roundRobin({ subsetting }));
  return new Greeter(`static:///${set.addresses.join(',')}`, insecure, {
    'grpc.service_config': JSON.stringify(config),
    'grpc.use_local_subchannel_pool': 1,
  });
}

/** `calls` calls, `concurrency` at a time: replies per backend address, and the errors. */
async function drive(client: GreeterClient, calls: number, concurrency = 5) {
  const perBackend = new Map<string, number>();
  const errors: grpc.ServiceError[] = [];
  let issued = 0;
  const worker = async () => {
    while (issued < calls) {
      issued++;
      try {
        const reply = await sayHello(client, 'subset', { deadlineMs: 5000 });
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

async function openConnections(backends: readonly Backend[]): Promise<Map<string, number>> {
  const open = new Map<string, number>();
  for (const backend of backends) {
    if (backend.isRunning) open.set(backend.address, (await backend.stats()).connectionsOpen);
  }
  return open;
}

const total = (counts: ReadonlyMap<string, number>) =>
  [...counts.values()].reduce((a, b) => a + b, 0);

describe('subsetting with real backends: 10 servers, subsetSize 3', () => {
  let set: BackendSet;
  before(async () => {
    set = await startBackends({ count: BACKENDS });
  });
  after(async () => {
    await set.stopAll();
  });

  test('deterministic: 3 channels with client ids 0, 1, 2 (one round) split 10 servers: every server has exactly one connection', async () => {
    await waitFor(async () => total(await openConnections(set.backends)) === 0, {
      timeoutMs: 5000,
      message: 'no connection left from an earlier test',
    });
    const clients = [0, 1, 2].map((clientId) =>
      channel(set, { subsetSize: SUBSET, mode: 'deterministic', clientId }),
    );
    try {
      const called = new Set<string>();
      for (const client of clients) {
        const { perBackend, errors } = await drive(client, 40);
        assert.deepEqual(errors, []);
        for (const address of perBackend.keys()) {
          assert.ok(!called.has(address), `${address} is in two channels' subsets`);
          called.add(address);
        }
      }
      assert.equal(called.size, BACKENDS);
      await waitFor(
        async () => [...(await openConnections(set.backends)).values()].every((n) => n === 1),
        { timeoutMs: 5000, message: 'one connection on every server' },
      );
    } finally {
      for (const client of clients) client.close();
    }
  });

  test('random: each of 4 channels connects to exactly 3 servers and calls only them; a stopped member fails no call', async () => {
    await waitFor(async () => total(await openConnections(set.backends)) === 0, {
      timeoutMs: 5000,
      message: 'no connection left from an earlier test',
    });
    const clients: GreeterClient[] = [];
    const subsets: string[][] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const before = await openConnections(set.backends);
        const client = channel(set, { subsetSize: SUBSET });
        clients.push(client);
        await sayHello(client, 'first', { waitForReady: true });
        // The servers see one new connection on each of 3 servers, and none elsewhere.
        const after = await waitFor(
          async () => {
            const open = await openConnections(set.backends);
            return total(open) === total(before) + SUBSET ? open : undefined;
          },
          { timeoutMs: 5000, message: `channel ${i}: ${SUBSET} new connections in all` },
        );
        const members = set.backends
          .filter((b) => after.get(b.address)! - before.get(b.address)! === 1)
          .map((b) => b.address)
          .sort();
        assert.equal(members.length, SUBSET, `channel ${i}: one connection on each of 3 servers`);
        const { perBackend, errors } = await drive(client, 60);
        assert.deepEqual(errors, []);
        assert.deepEqual([...perBackend.keys()].sort(), members, `channel ${i}: calls`);
        subsets.push(members);
      }

      // Stop one member of the first channel's subset while its calls run.
      const [first] = clients as [GreeterClient];
      const members = subsets[0]!;
      const stopped = set.backends.find((b) => b.address === members[0])!;
      const others = set.backends.filter((b) => b !== stopped);
      const elsewhere = total(await openConnections(others));
      const callsBefore = (await stopped.stats()).totalCalls;
      const running = drive(first, 400);
      await waitFor(async () => (await stopped.stats()).totalCalls > callsBefore + 10, {
        timeoutMs: 5000,
        message: 'calls reach the member about to stop',
      });
      await stopped.stopGracefully(2000);
      const { perBackend, errors } = await running;
      assert.deepEqual(
        errors.map((e) => `${e.code} ${e.details}`),
        [],
        'no call failed',
      );
      for (const address of perBackend.keys()) assert.ok(members.includes(address), address);

      // Not replaced: its calls go to the 2 others, and no channel opened a connection elsewhere.
      const afterStop = await drive(first, 60);
      assert.deepEqual(afterStop.errors, []);
      assert.deepEqual([...afterStop.perBackend.keys()].sort(), members.slice(1));
      assert.equal(total(await openConnections(others)), elsewhere);
    } finally {
      for (const client of clients) client.close();
    }
  });
});
