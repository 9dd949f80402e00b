/**
 * Sticky routing without a mesh: every call carries a user id in the `x-user-id` header and
 * `grpc-lb.consistent_hash` (ring hash, gRFC A42) sends all of a user's calls to one backend —
 * where that user's cache is warm. Ten backends, 1,000 users, 10,000 calls; then one backend is
 * removed from the endpoint list and only its users move (about a tenth of them).
 *
 *   npm run example -- consistent-hash [--calls 10000] [--keys 1000] [--port 50051]
 *
 * The backends listen on 127.0.0.2 … 127.0.0.11 at one port, 50051 unless --port says otherwise
 * (a free one when it is taken). The ring hashes the addresses, port included, so on the same
 * port every run prints the same numbers; another port gives another ring, and the share moved
 * on removing one backend varies from run to run by about ±1.3 points around 10%.
 *
 * Last stdout line:
 * {"example":"consistent-hash","keys":1000,"calls":10000,"errors":0,"sticky":1,
 *  "movedShareOnRemove":…,"loadMaxOverMean":…}
 *   sticky              share of users whose calls all reached one backend (before the removal)
 *   movedShareOnRemove  share of users on another backend after one of the ten is removed
 *   loadMaxOverMean     calls of the busiest backend ÷ calls per backend on average
 */
import * as grpc from '@grpc/grpc-js';
import { consistentHash, ManualEndpoints, register, serviceConfig } from '@grpc-lb/core';
import {
  type Backend,
  BackendStartError,
  type BackendSet,
  type GreeterClient,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from '@grpc-lb/test/harness';
import { drive, intFlag, run, Tally } from '../shared/cli';

const Greeter = loadGreeterService();
const HEADER = 'x-user-id';

/** Ten backends on `port`, or on a free port when another process holds it. */
async function startOn(port: number): Promise<BackendSet> {
  try {
    return await startBackends({ count: 10, port });
  } catch (error) {
    if (!(error instanceof BackendStartError && error.code === 'EADDRINUSE')) throw error;
    console.log(
      `port ${port} is taken: the backends use a free one (other numbers than on ${port})`,
    );
    return startBackends({ count: 10 });
  }
}

function endpointsOf(backends: readonly Backend[]) {
  return backends.map((b) => ({ host: b.host, port: b.port }));
}

/** One call as user `key`; returns the backend that answered. */
async function callAs(client: GreeterClient, key: string): Promise<string> {
  const metadata = new grpc.Metadata();
  metadata.set(HEADER, key);
  return (await sayHello(client, key, { metadata })).address;
}

run(async () => {
  register({ grpc });
  const calls = intFlag('calls', 10_000);
  const keyCount = intFlag('keys', 1000);
  const keys = Array.from({ length: keyCount }, (_, i) => `user-${i}`);
  const set = await startOn(intFlag('port', 50051));
  const manual = new ManualEndpoints(endpointsOf(set.backends));
  const policy = consistentHash({ hashHeader: HEADER });
  console.log(`policy ${JSON.stringify(policy)}`);
  const client = new Greeter(manual.target, grpc.credentials.createInsecure(), {
    'grpc.service_config': JSON.stringify(serviceConfig(policy)),
  });
  try {
    await sayHello(client, 'warm-up', { waitForReady: true });
    // Every backend connected first: until then a user's calls go to the next one on the ring.
    await waitFor(
      async () => {
        for (const b of set.backends) if ((await b.stats()).connectionsOpen !== 1) return false;
        return true;
      },
      { timeoutMs: 10_000, intervalMs: 50, message: 'every backend connected' },
    );

    const errors = new Tally();
    const perBackend = new Tally();
    const reached = new Map<string, Set<string>>(keys.map((k) => [k, new Set<string>()]));
    await drive(
      calls,
      20,
      async (n) => {
        const key = keys[n % keys.length]!;
        const address = await callAs(client, key);
        perBackend.add(address);
        reached.get(key)!.add(address);
      },
      errors,
    );
    console.log(`${calls} calls as ${keyCount} users, per backend:`);
    perBackend.print();
    const sticky = [...reached.values()].filter((s) => s.size === 1).length / keyCount;
    const mean = perBackend.total / set.backends.length;
    const loadMaxOverMean = Math.max(...perBackend.keys().map((a) => perBackend.count(a))) / mean;

    const removed = set.backends[set.backends.length - 1]!;
    console.log(`removing ${removed.address} from the endpoint list`);
    manual.update(endpointsOf(set.backends.filter((b) => b !== removed)));
    await waitFor(
      async () => {
        for (const key of keys.slice(0, 100))
          if ((await callAs(client, key)) === removed.address) return false;
        return true;
      },
      { timeoutMs: 10_000, message: 'no call reaches the removed backend' },
    );
    let moved = 0;
    await drive(
      keyCount,
      20,
      async (n) => {
        const key = keys[n]!;
        const before = [...reached.get(key)!][0];
        if ((await callAs(client, key)) !== before) moved++;
      },
      errors,
    );
    const movedShareOnRemove = moved / keyCount;
    console.log(
      `${moved} of ${keyCount} users moved (the removed backend had ${perBackend.count(removed.address)} calls)`,
    );
    if (errors.total > 0) {
      console.log('errors:');
      errors.print();
    }
    const round = (x: number) => Math.round(x * 1000) / 1000;
    console.log(
      JSON.stringify({
        example: 'consistent-hash',
        keys: keyCount,
        calls,
        errors: errors.total,
        sticky: round(sticky),
        movedShareOnRemove: round(movedShareOnRemove),
        loadMaxOverMean: round(loadMaxOverMean),
      }),
    );
    return errors.total === 0 && sticky === 1 ? 0 : 1;
  } finally {
    client.close();
    manual.dispose();
    await set.stopAll();
  }
});
