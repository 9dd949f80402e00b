/**
 * The etcd resolver against a real 3-member etcd cluster on 127.0.0.1: a member that stops
 * following the cluster (no leader, or stuck) must not leave the resolver silent and stale.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { parseTargetUri, type Resolution, type ResolutionSink } from '@grpc-lb/core';
import { createEtcdResolverFactory, type EtcdEndpointResolver } from '@grpc-lb/resolver-etcd';
import { waitFor } from './harness';
import { requireEtcd } from './support/etcd';
import { type EtcdCluster, type EtcdMember, startEtcdCluster } from './support/etcd-cluster';

/** The cluster sends progress notifications every 500 ms (support/etcd-cluster.ts): a silent watch is noticed within 1.5 s. */
const PROGRESS_INTERVAL_MS = 500;

class Sink implements ResolutionSink {
  readonly updates: Resolution[] = [];
  readonly errors: Error[] = [];
  readonly warnings: string[] = [];
  resolver: EtcdEndpointResolver | undefined;
  update(resolution: Resolution): void {
    this.updates.push(resolution);
  }
  /** Like core's adapter: after an error, ask the resolver again (here after 200 ms). */
  error(error: Error): void {
    this.errors.push(error);
    setTimeout(() => this.resolver?.refresh(), 200).unref();
  }
  warn(message: string): void {
    this.warnings.push(message);
  }
  latest(): string {
    const last = this.updates[this.updates.length - 1];
    return (last?.endpoints ?? [])
      .map((e) => `${e.host}:${e.port}`)
      .sort()
      .join(',');
  }
}

const naming = (addr: string): string => JSON.stringify({ Op: 0, Addr: addr, Metadata: null });

let cluster: EtcdCluster | undefined;
let failed = false;
after(async () => {
  await cluster?.dispose(failed);
});

function startResolver(
  c: EtcdCluster,
  svc: string,
  watchProgressIntervalMs?: number,
): { resolver: EtcdEndpointResolver; sink: Sink } {
  const factory = createEtcdResolverFactory(
    { endpoints: c.members.map((m) => m.endpoint), timeoutMs: 1_000 },
    {
      firstMember: () => 0,
      ...(watchProgressIntervalMs !== undefined ? { watchProgressIntervalMs } : {}),
    },
  );
  const target = `etcd:///${svc}`;
  const resolver = factory.create(factory.parseTarget(parseTargetUri(target), target), {
    target,
    channelOptions: {},
  }) as EtcdEndpointResolver;
  const sink = new Sink();
  sink.resolver = resolver;
  resolver.start(sink);
  return { resolver, sink };
}

describe('etcd resolver on a 3-member cluster (real etcd)', () => {
  test('a stuck member (silent watch) and a member without a leader are left for another member; no change is lost', async (t) => {
    if (!requireEtcd(t)) return;
    const started = performance.now();
    cluster = await startEtcdCluster();
    const c = cluster;
    const [m0, m1, m2] = c.members as [EtcdMember, EtcdMember, EtcdMember];
    const svc = `services/cluster-${process.pid}`;
    try {
      await c.etcdctl(m1, 'put', `${svc}/a`, naming('127.0.0.2:1'));

      // 1. The watched member stops (SIGSTOP) while the other two go on taking writes.
      const first = startResolver(c, svc, PROGRESS_INTERVAL_MS);
      try {
        await waitFor(() => first.sink.latest() === '127.0.0.2:1', {
          timeoutMs: 10_000,
          message: 'listed',
        });
        await waitFor(() => first.resolver.state.phase === 'watching', {
          timeoutMs: 10_000,
          message: 'watching',
        });
        assert.equal(first.resolver.state.member, m0.endpoint);
        m0.process.freeze();
        const frozenAt = performance.now();
        // (If the stuck member led the cluster, the others elect a new leader first.)
        await waitFor(
          async () => (await c.etcdctl(m1, 'put', `${svc}/b`, naming('127.0.0.3:1'))) !== undefined,
          { timeoutMs: 10_000, message: 'a write through another member' },
        );
        const writtenAt = performance.now();
        await waitFor(() => first.sink.latest() === '127.0.0.2:1,127.0.0.3:1', {
          timeoutMs: 6_000,
          message: `the change made while ${m0.name} was stuck (warnings: ${first.sink.warnings.join(' | ')}; errors: ${first.sink.errors.map((e) => e.message).join(' | ')})`,
        });
        const now = performance.now();
        process.stdout.write(
          `# stuck member: change followed through another member ${Math.round(now - frozenAt)} ms after the freeze, ${Math.round(now - writtenAt)} ms after the write (progress interval ${PROGRESS_INTERVAL_MS} ms)\n`,
        );
        assert.match(
          first.sink.warnings.join('\n'),
          new RegExp(
            `on member ${m0.endpoint} .*sent neither an event nor a progress notification`,
          ),
        );
        assert.notEqual(first.resolver.state.member, m0.endpoint);
      } finally {
        first.resolver.stop();
        m0.process.thaw();
      }
      await waitFor(() => c.healthy(m0), {
        timeoutMs: 10_000,
        message: `${m0.name} healthy again`,
      });

      // 2. The watched member loses its leader (its two peers stop): etcd cancels the watch.
      const second = startResolver(c, svc);
      try {
        await waitFor(() => second.sink.latest() === '127.0.0.2:1,127.0.0.3:1', {
          timeoutMs: 10_000,
          message: 'listed',
        });
        await waitFor(() => second.resolver.state.phase === 'watching', {
          timeoutMs: 10_000,
          message: 'watching',
        });
        assert.equal(second.resolver.state.member, m0.endpoint);
        // A watch cancelled within 1 s of being opened is an error (no hopping between members).
        await new Promise((resolve) => setTimeout(resolve, 1_200));
        m1.process.freeze();
        m2.process.freeze();
        const isolatedAt = performance.now();
        await waitFor(() => /lost its leader/.test(second.sink.warnings.join('\n')), {
          timeoutMs: 5_000,
          message: `a "no leader" warning (warnings: ${second.sink.warnings.join(' | ')})`,
        });
        process.stdout.write(
          `# member without a leader: watch cancelled and left ${Math.round(performance.now() - isolatedAt)} ms after its peers stopped\n`,
        );
        assert.match(
          second.sink.warnings.join('\n'),
          new RegExp(`on member ${m0.endpoint} \\(at revision \\d+\\) lost its leader`),
        );
        m1.process.thaw();
        m2.process.thaw();
        await c.etcdctl(m2, 'put', `${svc}/c`, naming('127.0.0.4:1'));
        await c.etcdctl(m1, 'del', `${svc}/a`);
        await waitFor(() => second.sink.latest() === '127.0.0.3:1,127.0.0.4:1', {
          timeoutMs: 10_000,
          message: `changes after the cluster healed (latest ${second.sink.latest()})`,
        });
      } finally {
        second.resolver.stop();
      }
      process.stdout.write(`# cluster test took ${Math.round(performance.now() - started)} ms\n`);
    } catch (error) {
      failed = true;
      for (const member of c.members) {
        process.stderr.write(`--- ${member.name} log ---\n${member.process.logs(4_000)}\n`);
      }
      throw error;
    } finally {
      for (const member of c.members) member.process.thaw();
    }
  });
});
