/**
 * Chaos, etcd cluster: steady load on an `etcd://m0,m1,m2/…` target whose client watches the
 * leader of a real 3-member cluster. The leader is SIGKILLed, and changes are written through the
 * survivors as soon as they have elected a new one. No change may be lost (the client ends with
 * exactly the registry's set, new backends get calls, the removed one stops) and no call fails.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { LoadBalancerObserver, OBSERVER_OPTION, register } from '@grpc-lb/core';
import { createEtcdResolverFactory } from '@grpc-lb/resolver-etcd';
import { type GreeterClient, loadGreeterService, startBackends, waitFor } from './harness';
import { requireEtcd } from './support/etcd';
import { startEtcdCluster, type EtcdCluster, type EtcdMember } from './support/etcd-cluster';
import { startLoad, waitUntilQuiet } from './support/load';

// The client watches the first member of its target: the test puts the leader there.
register({
  grpc,
  resolvers: [createEtcdResolverFactory({ timeoutMs: 1_000 }, { firstMember: () => 0 })],
  logger: { warn: () => undefined },
});
const Greeter = loadGreeterService();

const FOLLOW_LIMIT_MS = 5_000;
const naming = (addr: string): string => JSON.stringify({ Op: 0, Addr: addr, Metadata: null });

/** Runs an etcdctl command on the first survivor that takes it (a new leader may be in election). */
async function write(
  cluster: EtcdCluster,
  survivors: EtcdMember[],
  ...args: string[]
): Promise<void> {
  const deadline = performance.now() + 15_000;
  let last: unknown;
  while (performance.now() < deadline) {
    for (const member of survivors) {
      try {
        await cluster.etcdctl(member, '--command-timeout=1s', ...args);
        return;
      } catch (error) {
        last = error;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`etcdctl ${args.join(' ')} failed on every survivor: ${String(last)}`);
}

describe('chaos: the leader of a 3-member etcd cluster killed under steady load', () => {
  test('the client watching the leader loses no change written right after the kill, and no call fails', async (t) => {
    if (!requireEtcd(t)) return;
    const cluster = await startEtcdCluster();
    let failed = true;
    const backends = await startBackends({ count: 4 });
    const [b1, b2, b3, b4] = backends.backends;
    assert.ok(b1 && b2 && b3 && b4);
    const svc = `services/chaos-cluster-${process.pid}`;
    const observer = new LoadBalancerObserver();
    let greeter: GreeterClient | undefined;
    try {
      const leader = await cluster.leader();
      const survivors = cluster.members.filter((m) => m !== leader);
      await write(cluster, survivors, 'put', `${svc}/b1`, naming(b1.address));
      await write(cluster, survivors, 'put', `${svc}/b2`, naming(b2.address));
      const members = [leader, ...survivors].map((m) => m.endpoint).join(',');
      greeter = new Greeter(`etcd://${members}/${svc}`, grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
        [OBSERVER_OPTION]: observer,
      });
      const load = startLoad(greeter, { concurrency: 3, deadlineMs: 5_000, pauseMs: 2 });
      try {
        await waitFor(() => [b1, b2].every((b) => load.result.perBackend.has(b.address)), {
          timeoutMs: 10_000,
          message: 'b1 and b2 take calls',
        });
        await leader.process.kill();
        const killedAt = performance.now();
        await write(cluster, survivors, 'put', `${svc}/b3`, naming(b3.address));
        const firstWriteMs = performance.now() - killedAt;
        await write(cluster, survivors, 'del', `${svc}/b1`);
        await write(cluster, survivors, 'put', `${svc}/b4`, naming(b4.address));
        const writtenAt = performance.now();
        const expected = [b2, b3, b4].map((b) => b.address).sort();
        await waitFor(
          () =>
            JSON.stringify(
              observer
                .endpoints()
                .map((e) => e.address)
                .sort(),
            ) === JSON.stringify(expected),
          {
            timeoutMs: 15_000,
            intervalMs: 5,
            message: `the client's set becomes ${expected.join(', ')}`,
          },
        );
        const followedMs = performance.now() - writtenAt;
        await waitFor(() => [b3, b4].every((b) => load.result.perBackend.has(b.address)), {
          timeoutMs: 10_000,
          message: 'b3 and b4 take calls',
        });
        const lastB1 = await waitUntilQuiet(load, b1.address, {
          quietMs: 1_000,
          timeoutMs: 15_000,
          message: 'b1, deleted, stops taking calls',
        });
        const result = await load.stop();
        t.diagnostic(
          JSON.stringify({
            registry: 'etcd cluster (3 members), leader killed',
            firstWriteAfterKillMs: Math.round(firstWriteMs),
            followedAfterLastWriteMs: Math.round(followedMs),
            b1LastCallAfterKillMs: Math.round(Math.max(0, lastB1 - killedAt)),
            calls: result.ok,
            failed: result.errors.length,
          }),
        );
        assert.deepEqual(
          result.errors.map((e) => `${e.code}: ${e.details}`),
          [],
          'no call fails',
        );
        assert.ok(followedMs <= FOLLOW_LIMIT_MS, `followed in ${Math.round(followedMs)} ms`);
        failed = false;
      } finally {
        await load.stop();
      }
    } finally {
      greeter?.close();
      await backends.stopAll();
      if (failed) {
        for (const m of cluster.members)
          process.stderr.write(`--- ${m.name} ---\n${m.process.logs(4_000)}\n`);
      }
      await cluster.dispose(failed);
    }
  });
});
