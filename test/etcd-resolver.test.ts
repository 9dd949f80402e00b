/**
 * @grpc-lb/resolver-etcd against a real etcd 3.4 (Debian's), through the resolver contract: what
 * the registry's keys turn into, and how the watch survives restarts, outages and compaction.
 */
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { after, describe, test, type TestContext } from 'node:test';
import { parseTargetUri, type Resolution, type ResolutionSink } from '@grpc-lb/core';
import {
  createEtcdResolverFactory,
  EtcdResolutionError,
  type EtcdEndpointResolver,
  type EtcdResolverFactoryOptions,
} from '@grpc-lb/resolver-etcd';
import { Etcd3 } from 'etcd3';
import { waitFor } from './harness';
import { printEtcdLogsOnFailure, requireEtcd, startEtcd, type Etcd } from './support/etcd';

let shared: Promise<Etcd> | undefined;
after(async () => {
  if (shared) await (await shared).dispose();
});

/** The file's etcd, started on first use; undefined when the test was skipped (no etcd). */
async function etcdFor(t: TestContext): Promise<Etcd | undefined> {
  if (!requireEtcd(t)) return undefined;
  shared ??= startEtcd();
  return shared;
}

type Event =
  | { at: number; kind: 'update'; resolution: Resolution }
  | { at: number; kind: 'error'; error: Error }
  | { at: number; kind: 'warn'; message: string };

class Sink implements ResolutionSink {
  readonly events: Event[] = [];
  /** Like core's adapter: after an error, ask the resolver again (here after `retryMs`). */
  retryMs: number | undefined;
  resolver: EtcdEndpointResolver | undefined;
  update(resolution: Resolution): void {
    this.events.push({ at: performance.now(), kind: 'update', resolution });
  }
  error(error: Error): void {
    this.events.push({ at: performance.now(), kind: 'error', error });
    if (this.retryMs !== undefined) {
      setTimeout(() => this.resolver?.refresh(), this.retryMs).unref();
    }
  }
  warn(message: string): void {
    this.events.push({ at: performance.now(), kind: 'warn', message });
  }
  updates(): Resolution[] {
    return this.events.flatMap((e) => (e.kind === 'update' ? [e.resolution] : []));
  }
  errors(): Error[] {
    return this.events.flatMap((e) => (e.kind === 'error' ? [e.error] : []));
  }
  warnings(): string[] {
    return this.events.flatMap((e) => (e.kind === 'warn' ? [e.message] : []));
  }
  latest(): string[] | undefined {
    const updates = this.updates();
    const last = updates[updates.length - 1];
    return last ? addresses(last) : undefined;
  }
}

function addresses(resolution: Resolution): string[] {
  return resolution.endpoints.map((e) => `${e.host}:${e.port}`).sort();
}

let serial = 0;
/** A fresh service name per test, so tests sharing one etcd do not see each other's keys. */
function service(name: string): string {
  return `services/${name}-${process.pid}-${++serial}`;
}

function startResolver(
  etcd: Etcd,
  svc: string,
  options: EtcdResolverFactoryOptions = {},
  retryMs?: number,
  query = '',
): { resolver: EtcdEndpointResolver; sink: Sink } {
  const factory = createEtcdResolverFactory({
    endpoints: etcd.endpoint,
    timeoutMs: 2_000,
    ...options,
  });
  const target = `etcd:///${svc}${query}`;
  const resolver = factory.create(factory.parseTarget(parseTargetUri(target), target), {
    target,
    channelOptions: {},
  }) as EtcdEndpointResolver;
  const sink = new Sink();
  sink.resolver = resolver;
  sink.retryMs = retryMs;
  resolver.start(sink);
  return { resolver, sink };
}

async function waitForSet(sink: Sink, expected: string[], timeoutMs = 10_000): Promise<void> {
  const want = [...expected].sort();
  await waitFor(() => JSON.stringify(sink.latest()) === JSON.stringify(want), {
    timeoutMs,
    message: `endpoints ${want.join(',')} (latest: ${JSON.stringify(sink.latest())}, errors: ${sink
      .errors()
      .map((e) => e.message)
      .join(' | ')})`,
  });
}

const naming = (addr: string, metadata: unknown = null): string =>
  JSON.stringify({ Op: 0, Addr: addr, Metadata: metadata });

describe('etcd resolver (real etcd)', () => {
  test('lists the prefix, then applies every put and delete from the watch, with metadata', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    await printEtcdLogsOnFailure(etcd, async () => {
      const svc = service('basic');
      await etcd.etcdctl('put', `${svc}/a`, naming('127.0.0.2:5000', { version: 'v1', weight: 3 }));
      await etcd.etcdctl('put', `${svc}/b`, '127.0.0.3:5000');
      await etcd.etcdctl('put', `${svc}x/other`, naming('127.0.0.9:1'));
      const { resolver, sink } = startResolver(etcd, svc);
      try {
        await waitForSet(sink, ['127.0.0.2:5000', '127.0.0.3:5000']);
        const first = sink.updates()[0]!;
        assert.deepEqual(
          first.endpoints.find((e) => e.host === '127.0.0.2'),
          { host: '127.0.0.2', port: 5000, weight: 3, labels: { version: 'v1' } },
        );
        assert.match(first.note ?? '', new RegExp(`2 endpoints under etcd prefix "${svc}/"`));
        await waitFor(() => resolver.state.phase === 'watching', {
          timeoutMs: 5_000,
          message: 'watching',
        });

        await etcd.etcdctl(
          'put',
          `${svc}/c`,
          naming('127.0.0.4:5000', { labels: { version: 'v2' }, zone: 'z' }),
        );
        await waitForSet(sink, ['127.0.0.2:5000', '127.0.0.3:5000', '127.0.0.4:5000']);
        await etcd.etcdctl('del', `${svc}/a`);
        await waitForSet(sink, ['127.0.0.3:5000', '127.0.0.4:5000']);
        await etcd.etcdctl('del', `${svc}/`, '--prefix');
        await waitForSet(sink, []);
        assert.deepEqual(sink.errors(), []);
        assert.equal(resolver.state.lists, 1);
      } finally {
        resolver.stop();
      }
    });
  });

  test('skips malformed values with one warning each, keeps the address of bad Metadata, and never lets one drop a good address', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    await printEtcdLogsOnFailure(etcd, async () => {
      const svc = service('malformed');
      await etcd.etcdctl('put', `${svc}/good`, naming('127.0.0.2:5000'));
      await etcd.etcdctl('put', `${svc}/json`, '{"Op":0,"Addr":');
      await etcd.etcdctl('put', `${svc}/noport`, naming('127.0.0.3'));
      await etcd.etcdctl('put', `${svc}/weight`, naming('127.0.0.4:1', { weight: -2 }));
      const { resolver, sink } = startResolver(etcd, svc);
      try {
        // A bad Metadata field only loses that field: the address is used, as Go's resolver would.
        await waitForSet(sink, ['127.0.0.2:5000', '127.0.0.4:1']);
        assert.equal(sink.warnings().length, 3, sink.warnings().join('\n'));
        assert.match(
          sink.warnings().join('\n'),
          new RegExp(`etcd key "${svc}/json" skipped: the value is not valid JSON`),
        );
        assert.match(sink.warnings().join('\n'), /no port/);
        assert.match(
          sink.warnings().join('\n'),
          new RegExp(
            `etcd key "${svc}/weight": Metadata weight -2 is not an integer .*; that field is ignored and the address is used`,
          ),
        );

        // The same bad value again: no new warning. A good key turned bad keeps its address.
        await etcd.etcdctl('put', `${svc}/json`, '{"Op":0,"Addr":');
        await etcd.etcdctl('put', `${svc}/weight`, naming('127.0.0.4:1', { weight: -2 }));
        await etcd.etcdctl('put', `${svc}/good`, 'garbage');
        await etcd.etcdctl('put', `${svc}/later`, naming('127.0.0.5:5000'));
        await waitForSet(sink, ['127.0.0.2:5000', '127.0.0.4:1', '127.0.0.5:5000']);
        const warnings = sink.warnings();
        assert.equal(warnings.length, 4, warnings.join('\n'));
        assert.match(warnings[3]!, /keeping its previous address 127\.0\.0\.2:5000/);
        // Fixed, then deleted: the key's endpoint follows.
        await etcd.etcdctl('put', `${svc}/noport`, naming('127.0.0.3:5000'));
        await waitForSet(sink, [
          '127.0.0.2:5000',
          '127.0.0.3:5000',
          '127.0.0.4:1',
          '127.0.0.5:5000',
        ]);
        await etcd.etcdctl('del', `${svc}/good`);
        await waitForSet(sink, ['127.0.0.3:5000', '127.0.0.4:1', '127.0.0.5:5000']);
        assert.equal(sink.warnings().length, 4);
        assert.deepEqual(sink.errors(), []);
      } finally {
        resolver.stop();
      }
    });
  });

  test('two keys with one address count once (the newer registration)', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    const svc = service('dup');
    await etcd.etcdctl('put', `${svc}/old`, naming('127.0.0.2:5000', { version: 'v1' }));
    await etcd.etcdctl('put', `${svc}/new`, naming('127.0.0.2:5000', { version: 'v2' }));
    const { resolver, sink } = startResolver(etcd, svc);
    try {
      await waitForSet(sink, ['127.0.0.2:5000']);
      assert.deepEqual(sink.updates().at(-1)!.endpoints[0]!.labels, { version: 'v2' });
      await etcd.etcdctl('del', `${svc}/new`);
      await waitFor(() => sink.updates().at(-1)!.endpoints[0]?.labels?.['version'] === 'v1', {
        timeoutMs: 5_000,
        message: 'the remaining key',
      });
    } finally {
      resolver.stop();
    }
  });

  test('etcd killed and restarted on the same data dir: no empty set, the watch resumes, no event lost', async (t) => {
    if (!requireEtcd(t)) return;
    const etcd = await startEtcd();
    try {
      await printEtcdLogsOnFailure(etcd, async () => {
        const svc = service('restart');
        await etcd.etcdctl('put', `${svc}/a`, naming('127.0.0.2:5000'));
        await etcd.etcdctl('put', `${svc}/b`, naming('127.0.0.3:5000'));
        const { resolver, sink } = startResolver(etcd, svc, {}, 300);
        try {
          await waitForSet(sink, ['127.0.0.2:5000', '127.0.0.3:5000']);
          const updatesBefore = sink.updates().length;
          await etcd.kill();
          await waitFor(() => sink.errors().length > 0, { timeoutMs: 10_000, message: 'an error' });
          const error = sink.errors()[0]!;
          assert.ok(error instanceof EtcdResolutionError, inspect(error));
          assert.match(
            error.message,
            new RegExp(
              `etcd watch of "${svc}/" \\(at revision \\d+\\) at http://${etcd.endpoint} failed`,
            ),
          );
          // Down for a while: errors, retries, and never an update (the last good set stands).
          await waitFor(() => sink.errors().length >= 3, { timeoutMs: 15_000, message: 'retries' });
          assert.equal(sink.updates().length, updatesBefore);

          await etcd.start();
          // Changes made before the resolver is back are replayed from its revision.
          await etcd.etcdctl('del', `${svc}/a`);
          await etcd.etcdctl('put', `${svc}/c`, naming('127.0.0.4:5000'));
          await etcd.etcdctl('put', `${svc}/d`, naming('127.0.0.5:5000'));
          await etcd.etcdctl('del', `${svc}/d`);
          await waitForSet(sink, ['127.0.0.3:5000', '127.0.0.4:5000'], 20_000);
          assert.equal(resolver.state.phase, 'watching');
          assert.equal(resolver.state.lists, 1, 'resumed from its revision, not re-listed');
          for (const update of sink.updates()) assert.ok(update.endpoints.length > 0);
          // And live again.
          await etcd.etcdctl('put', `${svc}/e`, naming('127.0.0.6:5000'));
          await waitForSet(sink, ['127.0.0.3:5000', '127.0.0.4:5000', '127.0.0.6:5000']);
        } finally {
          resolver.stop();
        }
      });
    } finally {
      await etcd.dispose();
    }
  });

  test('?config=<key>: etcd killed and restarted: the document is kept through the outage (no update), a document written after the restart arrives on the resumed watch', async (t) => {
    if (!requireEtcd(t)) return;
    const etcd = await startEtcd();
    try {
      await printEtcdLogsOnFailure(etcd, async () => {
        const svc = service('config-restart');
        const key = `${svc}.config`;
        await etcd.etcdctl('put', `${svc}/a`, naming('127.0.0.2:5000'));
        await etcd.etcdctl('put', key, '{"loadBalancingConfig":[{"round_robin":{}}]}');
        const first = await etcd.revision();
        const { resolver, sink } = startResolver(etcd, svc, {}, 300, `?config=${key}`);
        try {
          await waitForSet(sink, ['127.0.0.2:5000']);
          assert.equal(sink.updates().length, 1, 'endpoints and document in one resolution');
          assert.equal(
            sink.updates()[0]!.serviceConfig,
            '{"loadBalancingConfig":[{"round_robin":{}}]}',
          );
          assert.equal(
            sink.updates()[0]!.serviceConfigSource,
            `etcd key ${key} (revision ${first})`,
          );
          await etcd.kill();
          await waitFor(() => sink.errors().length >= 2, { timeoutMs: 15_000, message: 'errors' });
          assert.equal(sink.updates().length, 1, 'nothing replaces the last resolution');

          await etcd.start();
          await etcd.etcdctl('put', key, '{"loadBalancingConfig":[{"pick_first":{}}]}');
          const written = await etcd.revision();
          await waitFor(
            () =>
              sink.updates().at(-1)?.serviceConfigSource ===
              `etcd key ${key} (revision ${written})`,
            { timeoutMs: 20_000, message: 'the document written after the restart' },
          );
          const last = sink.updates().at(-1)!;
          assert.equal(last.serviceConfig, '{"loadBalancingConfig":[{"pick_first":{}}]}');
          assert.deepEqual(addresses(last), ['127.0.0.2:5000']);
          assert.equal(resolver.state.lists, 1, 'resumed from its revisions, not re-listed');
          for (const update of sink.updates()) assert.ok(update.serviceConfig !== undefined);
          // Deleted: no document, the endpoints stay.
          await etcd.etcdctl('del', key);
          await waitFor(() => sink.updates().at(-1)?.serviceConfig === undefined, {
            timeoutMs: 10_000,
            message: 'the deletion',
          });
          assert.match(
            sink.updates().at(-1)!.note!,
            new RegExp(`service config key "${key}" is absent`),
          );
          assert.deepEqual(sink.latest(), ['127.0.0.2:5000']);
        } finally {
          resolver.stop();
        }
      });
    } finally {
      await etcd.dispose();
    }
  });

  test('compaction while disconnected: re-lists, then watches from the new revision', async (t) => {
    if (!requireEtcd(t)) return;
    const etcd = await startEtcd();
    try {
      await printEtcdLogsOnFailure(etcd, async () => {
        const svc = service('compact');
        await etcd.etcdctl('put', `${svc}/a`, naming('127.0.0.2:5000'));
        await etcd.etcdctl('put', `${svc}/b`, naming('127.0.0.3:5000'));
        // No automatic retry: the test decides when the resolver comes back.
        const { resolver, sink } = startResolver(etcd, svc);
        try {
          await waitForSet(sink, ['127.0.0.2:5000', '127.0.0.3:5000']);
          await etcd.kill();
          await waitFor(() => resolver.state.phase === 'broken', {
            timeoutMs: 10_000,
            message: 'broken',
          });
          await etcd.start();
          await etcd.etcdctl('del', `${svc}/a`);
          await etcd.etcdctl('put', `${svc}/c`, naming('127.0.0.4:5000'));
          await etcd.compact();
          resolver.refresh();
          await waitForSet(sink, ['127.0.0.3:5000', '127.0.0.4:5000']);
          await waitFor(() => resolver.state.phase === 'watching', {
            timeoutMs: 5_000,
            message: 'watching',
          });
          assert.equal(
            resolver.state.lists,
            2,
            're-listed after the compacted watch was cancelled',
          );
          await etcd.etcdctl('put', `${svc}/d`, naming('127.0.0.5:5000'));
          await waitForSet(sink, ['127.0.0.3:5000', '127.0.0.4:5000', '127.0.0.5:5000']);
        } finally {
          resolver.stop();
        }
      });
    } finally {
      await etcd.dispose();
    }
  });

  test('a watch that etcd never answers (a frozen etcd) fails after timeoutMs, then resumes', async (t) => {
    if (!requireEtcd(t)) return;
    const etcd = await startEtcd();
    try {
      const svc = service('frozen');
      await etcd.etcdctl('put', `${svc}/a`, naming('127.0.0.2:5000'));
      const { resolver, sink } = startResolver(etcd, svc, { timeoutMs: 1_000 });
      try {
        await waitForSet(sink, ['127.0.0.2:5000']);
        await etcd.kill();
        await waitFor(() => resolver.state.phase === 'broken', {
          timeoutMs: 10_000,
          message: 'broken',
        });
        await etcd.start();
        etcd.freeze();
        const errors = sink.errors().length;
        const started = performance.now();
        resolver.refresh();
        await waitFor(() => sink.errors().length > errors, {
          timeoutMs: 10_000,
          message: 'a timeout',
        });
        const elapsed = performance.now() - started;
        assert.match(sink.errors().at(-1)!.message, /not established within 1000 ms/);
        assert.ok(elapsed >= 900 && elapsed < 5_000, `failed after ${Math.round(elapsed)} ms`);
        assert.equal(resolver.state.phase, 'broken');
        etcd.thaw();
        await etcd.etcdctl('put', `${svc}/b`, naming('127.0.0.3:5000'));
        resolver.refresh();
        await waitForSet(sink, ['127.0.0.2:5000', '127.0.0.3:5000']);
        assert.equal(resolver.state.lists, 1);
      } finally {
        resolver.stop();
      }
    } finally {
      await etcd.dispose();
    }
  });

  test('stop() cancels the watch and closes the connection; start() again lists afresh', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    const svc = service('stop');
    await etcd.etcdctl('put', `${svc}/a`, naming('127.0.0.2:5000'));
    const baseline = await etcd.metric('etcd_debugging_mvcc_watch_stream_total');
    const { resolver, sink } = startResolver(etcd, svc);
    await waitForSet(sink, ['127.0.0.2:5000']);
    await waitFor(
      async () => (await etcd.metric('etcd_debugging_mvcc_watch_stream_total')) > baseline,
      {
        timeoutMs: 5_000,
        message: 'a watch stream',
      },
    );
    resolver.stop();
    await waitFor(
      async () => (await etcd.metric('etcd_debugging_mvcc_watch_stream_total')) === baseline,
      {
        timeoutMs: 5_000,
        message: 'the watch stream closed',
      },
    );
    const count = sink.events.length;
    await etcd.etcdctl('put', `${svc}/b`, naming('127.0.0.3:5000'));
    assert.equal(sink.events.length, count, 'nothing reported after stop()');
    resolver.start(sink);
    await waitForSet(sink, ['127.0.0.2:5000', '127.0.0.3:5000']);
    resolver.stop();
  });

  test('10,000 keys under a prefix: listed in pages and watched', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    const svc = service('10k');
    const client = new Etcd3({ hosts: etcd.url });
    try {
      const count = 10_000;
      const writeStart = performance.now();
      for (let i = 0; i < count; i += 100) {
        await Promise.all(
          Array.from({ length: 100 }, (_, j) => {
            const n = i + j;
            const host = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
            return client
              .put(`${svc}/${n}`)
              .value(naming(`${host}:5000`, { version: `v${n % 3}` }))
              .exec();
          }),
        );
      }
      const writeMs = Math.round(performance.now() - writeStart);
      const started = performance.now();
      const { resolver, sink } = startResolver(etcd, svc);
      try {
        await waitFor(() => sink.updates().at(-1)?.endpoints.length === count, {
          timeoutMs: 30_000,
          message: `${count} endpoints`,
        });
        const listMs = Math.round(performance.now() - started);
        await waitFor(() => resolver.state.phase === 'watching', {
          timeoutMs: 5_000,
          message: 'watching',
        });
        const updates = sink.updates().length;
        const putAt = performance.now();
        await client.put(`${svc}/new`).value(naming('10.255.0.1:5000')).exec();
        await waitFor(() => sink.updates().at(-1)?.endpoints.length === count + 1, {
          timeoutMs: 10_000,
          message: 'the new key',
        });
        const putMs = Math.round(performance.now() - putAt);
        const deleteAt = performance.now();
        await client.delete().key(`${svc}/0`).exec();
        await waitFor(() => sink.updates().at(-1)?.endpoints.length === count, {
          timeoutMs: 10_000,
          message: 'the deleted key',
        });
        const deleteMs = Math.round(performance.now() - deleteAt);
        assert.equal(sink.updates().length, updates + 2);
        assert.deepEqual(sink.errors(), []);
        const report = {
          keys: count,
          writeMs,
          listMs,
          putToUpdateMs: putMs,
          deleteToUpdateMs: deleteMs,
        };
        t.diagnostic(JSON.stringify(report));
        process.stdout.write(`etcd 10k keys: ${JSON.stringify(report)}\n`);
      } finally {
        resolver.stop();
      }
    } finally {
      await client.delete().prefix(`${svc}/`).exec();
      client.close();
    }
  });
});

describe('etcd resolver with TLS and password auth (real etcd)', () => {
  const auth = { username: 'app', password: 'S3cret-pa55word' };
  let secure: Promise<Etcd> | undefined;
  after(async () => {
    if (secure) await (await secure).dispose();
  });
  async function secureEtcd(t: TestContext): Promise<Etcd | undefined> {
    if (!requireEtcd(t)) return undefined;
    secure ??= startEtcd({ tls: true, auth });
    return secure;
  }

  test('reads a prefix over TLS as an etcd user', async (t) => {
    const etcd = await secureEtcd(t);
    if (!etcd) return;
    await printEtcdLogsOnFailure(etcd, async () => {
      const svc = service('tls');
      await etcd.etcdctl('put', `${svc}/a`, naming('127.0.0.2:5000'));
      const { resolver, sink } = startResolver(etcd, svc, {
        endpoints: etcd.url,
        tls: { caFile: etcd.tls!.caFile },
        auth,
      });
      try {
        await waitForSet(sink, ['127.0.0.2:5000']);
        await etcd.etcdctl('put', `${svc}/b`, naming('127.0.0.3:5000'));
        await waitForSet(sink, ['127.0.0.2:5000', '127.0.0.3:5000']);
        assert.deepEqual(sink.errors(), []);
      } finally {
        resolver.stop();
      }
    });
  });

  test('a wrong password is a clear error that does not contain the password', async (t) => {
    const etcd = await secureEtcd(t);
    if (!etcd) return;
    const wrong = 'Wr0ng-pa55word';
    const { resolver, sink } = startResolver(etcd, service('badpw'), {
      endpoints: etcd.url,
      tls: { caFile: etcd.tls!.caFile },
      auth: { username: 'app', password: wrong },
    });
    try {
      await waitFor(() => sink.errors().length > 0, { timeoutMs: 10_000, message: 'an error' });
      const error = sink.errors()[0]!;
      assert.ok(error instanceof EtcdResolutionError);
      assert.equal(error.code, 'RESOLUTION_FAILED');
      assert.match(
        error.message,
        /authentication failed for user "app" \(wrong user name or password\)/,
      );
      assert.match(error.message, new RegExp(`https://${etcd.endpoint} as user "app"`));
      const everything = `${error.message}\n${error.stack ?? ''}\n${inspect(error, { depth: 10 })}\n${sink
        .warnings()
        .join('\n')}`;
      assert.ok(!everything.includes(wrong), everything);
      assert.ok(!everything.includes(auth.password), everything);
      assert.deepEqual(sink.updates(), []);
    } finally {
      resolver.stop();
    }
  });

  test("?config=<key> outside the user's keys: an error naming the key and the permission read; granted, the first resolution comes with the document", async (t) => {
    const etcd = await secureEtcd(t);
    if (!etcd) return;
    await printEtcdLogsOnFailure(etcd, async () => {
      const svc = service('perm');
      const key = `config/${svc.slice('services/'.length)}`;
      await etcd.etcdctl('put', `${svc}/a`, naming('127.0.0.2:5000'));
      await etcd.etcdctl('put', key, '{}');
      const { resolver, sink } = startResolver(
        etcd,
        svc,
        { endpoints: etcd.url, tls: { caFile: etcd.tls!.caFile }, auth },
        300,
        `?config=${key}`,
      );
      try {
        await waitFor(() => sink.errors().length > 0, { timeoutMs: 10_000, message: 'an error' });
        const error = sink.errors()[0]!;
        assert.ok(error instanceof EtcdResolutionError, inspect(error));
        assert.equal(error.configKey, key);
        assert.match(
          error.message,
          new RegExp(
            `^etcd read of service config key "${key}" \\(at revision \\d+\\) at https://${etcd.endpoint} as user "app" failed: permission denied for user "app": .*; the etcd user's role needs the permission read on key "${key}"$`,
          ),
        );
        assert.ok(!error.message.includes(auth.password));
        assert.equal(sink.updates().length, 0, 'no endpoints without the document');
        // The fix the message asks for.
        await etcd.etcdctl('role', 'grant-permission', 'services', 'read', key);
        await waitFor(() => sink.updates().length > 0, {
          timeoutMs: 15_000,
          message: 'a resolution once read is granted',
        });
        assert.equal(sink.updates()[0]!.serviceConfig, '{}');
        assert.deepEqual(sink.latest(), ['127.0.0.2:5000']);
      } finally {
        resolver.stop();
      }
    });
  });

  test('without the CA, TLS fails with an error naming the endpoint', async (t) => {
    const etcd = await secureEtcd(t);
    if (!etcd) return;
    const { resolver, sink } = startResolver(etcd, service('noca'), { endpoints: etcd.url, auth });
    try {
      await waitFor(() => sink.errors().length > 0, { timeoutMs: 15_000, message: 'an error' });
      assert.match(sink.errors()[0]!.message, new RegExp(`https://${etcd.endpoint}`));
      assert.ok(!sink.errors()[0]!.message.includes(auth.password));
    } finally {
      resolver.stop();
    }
  });
});
