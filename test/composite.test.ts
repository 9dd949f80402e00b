/**
 * composite: targets in a real grpc-js channel against real backends: the union of two sources
 * (a static list and pushed endpoints) labelled by source, deduplicated; a traffic policy that a
 * source carries as a document, changed live without a reconnect; a bad document kept out; one
 * source failing while the other is followed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  LoadBalancerObserver,
  ManualEndpoints,
  OBSERVER_OPTION,
  register,
  type ConfigEvent,
  type ResolvedEndpoint,
} from '@grpc-lb/core';
import { podsSharePolicy } from './support/source-policy';
import {
  type Backend,
  type BackendSet,
  type GreeterClient,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from './harness';

const warnings: string[] = [];
register({ grpc, logger: { warn: (m) => warnings.push(m) } });
const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();

async function spread(client: GreeterClient, calls: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (issued < calls) {
      issued++;
      const reply = await sayHello(client, 'composite', { deadlineMs: 5_000 });
      counts.set(reply.address, (counts.get(reply.address) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return counts;
}

async function connectionsAccepted(set: BackendSet): Promise<number> {
  let total = 0;
  for (const b of set.backends) total += (await b.stats()).connectionsAccepted;
  return total;
}

const endpoint = (b: Backend): ResolvedEndpoint => ({
  host: b.host,
  port: b.port,
  labels: b.labels,
});

describe('composite: targets through a real channel', () => {
  let set: BackendSet;
  let vm1: Backend, vm2: Backend, pod1: Backend, pod2: Backend;
  before(async () => {
    set = await startBackends({
      count: 4,
      labels: [{ version: 'v1' }, { version: 'v2' }, { version: 'v1' }, { version: 'v2' }],
    });
    [vm1, vm2, pod1, pod2] = set.backends as [Backend, Backend, Backend, Backend];
  });
  after(() => set?.stopAll());

  test('the union of both sources takes calls; the address in both is the first-listed source’s', async () => {
    const pods = new ManualEndpoints([
      endpoint(pod1),
      endpoint(pod2),
      { ...endpoint(vm2), labels: { version: 'v9' } },
    ]);
    const observer = new LoadBalancerObserver();
    const target = `composite:///hello?vms=static:///${vm1.address};version=v1,${vm2.address};version=v2&pods=${pods.target}`;
    const client = new Greeter(target, insecure, { [OBSERVER_OPTION]: observer });
    try {
      const counts = await spread(client, 400);
      assert.deepEqual(
        [...counts.keys()].sort(),
        [vm1, vm2, pod1, pod2].map((b) => b.address).sort(),
      );
      // Round robin over four: even, give or take the calls issued while connections came up.
      for (const n of counts.values())
        assert.ok(Math.abs(n - 100) <= 5, JSON.stringify([...counts]));
      const shared = observer.endpoint(vm2.address);
      assert.deepEqual(shared?.labels, { version: 'v2', source: 'vms' });
      assert.deepEqual(observer.endpoint(pod1.address)?.labels, { version: 'v1', source: 'pods' });
      assert.equal(client.getChannel().getTarget().startsWith('composite:'), true);
    } finally {
      client.close();
      pods.dispose();
    }
  });

  test('a policy document carried by a source moves the split live, with no new connection', async () => {
    const pods = new ManualEndpoints({
      endpoints: [endpoint(pod1), endpoint(pod2)],
      serviceConfig: podsSharePolicy(0),
      serviceConfigSource: 'test document (revision 1)',
    });
    const vms = new ManualEndpoints([endpoint(vm1), endpoint(vm2)]);
    for (const b of set.backends) await b.resetStats();
    const observer = new LoadBalancerObserver();
    const applied: ConfigEvent[] = [];
    observer.on('config', (e) => applied.push(e));
    const client = new Greeter(
      `composite:///hello?vms=${vms.target}&pods=${pods.target}`,
      insecure,
      {
        [OBSERVER_OPTION]: observer,
      },
    );
    try {
      // Every endpoint connected (the split keeps even 0% subsets connected).
      await spread(client, 20);
      await waitFor(async () => (await connectionsAccepted(set)) >= 4, {
        timeoutMs: 10_000,
        message: 'all four connected',
      });
      const podsShare = (counts: Map<string, number>): number =>
        ((counts.get(pod1.address) ?? 0) + (counts.get(pod2.address) ?? 0)) /
        [...counts.values()].reduce((a, b) => a + b, 0);
      assert.equal(podsShare(await spread(client, 200)), 0, 'revision 1: no call to the pods');
      for (const b of set.backends) await b.resetStats();
      for (const [revision, share] of [
        [2, 10],
        [3, 50],
        [4, 100],
      ] as const) {
        const before = applied.length;
        pods.update({
          endpoints: [endpoint(pod1), endpoint(pod2)],
          serviceConfig: podsSharePolicy(share),
          serviceConfigSource: `test document (revision ${revision})`,
        });
        await waitFor(() => applied.length > before, {
          timeoutMs: 10_000,
          message: `revision ${revision} applied`,
        });
        assert.equal(applied.at(-1)!.status, 'applied');
        assert.equal(applied.at(-1)!.source, `source pods: test document (revision ${revision})`);
        const measured = podsShare(await spread(client, 400));
        assert.ok(
          Math.abs(measured * 100 - share) <= 0.5,
          `revision ${revision}: pods took ${measured * 100}%, policy ${share}%`,
        );
      }
      assert.equal(await connectionsAccepted(set), 0, 'no reconnect for a policy change');
      const [state] = observer.serviceConfigs();
      assert.equal(state?.source, 'source pods: test document (revision 4)');
    } finally {
      client.close();
      pods.dispose();
      vms.dispose();
    }
  });

  test('a bad document is refused with a warning naming it and the field; the last good one stays', async () => {
    warnings.length = 0;
    const pods = new ManualEndpoints({
      endpoints: [endpoint(pod1), endpoint(pod2)],
      serviceConfig: podsSharePolicy(100),
      serviceConfigSource: 'doc (revision 1)',
    });
    const vms = new ManualEndpoints([endpoint(vm1), endpoint(vm2)]);
    const observer = new LoadBalancerObserver();
    const client = new Greeter(
      `composite:///hello?vms=${vms.target}&pods=${pods.target}`,
      insecure,
      {
        [OBSERVER_OPTION]: observer,
      },
    );
    try {
      const onlyPods = (counts: Map<string, number>): boolean =>
        [...counts.keys()].every((a) => a === pod1.address || a === pod2.address);
      assert.ok(onlyPods(await spread(client, 100)));
      const rejected: ConfigEvent[] = [];
      observer.on('config', (e) => {
        if (e.status === 'rejected') rejected.push(e);
      });
      pods.update({
        endpoints: [endpoint(pod1), endpoint(pod2)],
        serviceConfig: '{"loadBalancingConfig": [',
        serviceConfigSource: 'doc (revision 2)',
      });
      await waitFor(() => rejected.length === 1, {
        timeoutMs: 10_000,
        message: 'revision 2 refused',
      });
      assert.match(
        warnings.join('\n'),
        /service config from source pods: doc \(revision 2\): not valid JSON.*keeping the previous service config \(source pods: doc \(revision 1\)\)/,
      );
      assert.ok(onlyPods(await spread(client, 100)), 'the last good policy still applies');
      const badField = podsSharePolicy(100).replace('"weight":100', '"weight":"all"');
      pods.update({
        endpoints: [endpoint(pod1), endpoint(pod2)],
        serviceConfig: badField,
        serviceConfigSource: 'doc (revision 3)',
      });
      await waitFor(() => rejected.length === 2, {
        timeoutMs: 10_000,
        message: 'revision 3 refused',
      });
      assert.match(
        rejected[1]!.status === 'rejected' ? rejected[1]!.error : '',
        /doc \(revision 3\).*routes\[0\]\.split\[1\]\.weight/,
      );
      assert.ok(onlyPods(await spread(client, 100)));
      assert.equal(observer.serviceConfigs()[0]?.source, 'source pods: doc (revision 1)');
      assert.match(observer.serviceConfigs()[0]?.rejected?.source ?? '', /revision 3/);
    } finally {
      client.close();
      pods.dispose();
      vms.dispose();
    }
  });

  test('one source failing keeps its endpoints in rotation while the other source is followed', async () => {
    warnings.length = 0;
    const vms = new ManualEndpoints([endpoint(vm1), endpoint(vm2)]);
    const pods = new ManualEndpoints([endpoint(pod1)]);
    const client = new Greeter(
      `composite:///hello?vms=${vms.target}&pods=${pods.target}`,
      insecure,
    );
    try {
      assert.equal((await spread(client, 30)).size, 3);
      vms.fail(new Error('registry unreachable'));
      pods.update([endpoint(pod1), endpoint(pod2)]);
      await waitFor(async () => (await spread(client, 40)).size === 4, {
        timeoutMs: 10_000,
        message: 'pod2 added while vms fails',
      });
      const counts = await spread(client, 400);
      for (const b of [vm1, vm2, pod1, pod2]) assert.equal(counts.get(b.address), 100, b.address);
      assert.match(
        warnings.join('\n'),
        /source vms: resolution failed, keeping its last 2 endpoints: registry unreachable/,
      );
      client.close();
      await waitFor(() => vms.activeResolvers === 0 && pods.activeResolvers === 0, {
        timeoutMs: 5_000,
        message: 'client.close() stops every source',
      });
    } finally {
      client.close();
      vms.dispose();
      pods.dispose();
    }
  });
});
