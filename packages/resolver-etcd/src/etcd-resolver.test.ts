import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { ConfigError, parseTargetUri, type Resolution, type ResolutionSink } from '@grpc-lb/core';
import { createEtcdResolverFactory } from './etcd-resolver-factory';
import type { EtcdConnectionSettings } from './etcd-options';
import { EtcdEndpointResolver, type EtcdResolverEnvironment } from './etcd-resolver';
import { EtcdResolutionError } from './errors';
import { parseEtcdTarget } from './etcd-target';
import { FakeEtcd } from './testing/fake-etcd';
import { EtcdPermissionDeniedError } from 'etcd3';

const A = '10.9.0.1:2379';
const B = '10.9.0.2:2379';
const C = '10.9.0.3:2379';
const PREFIX = 'services/hello/';

class Sink implements ResolutionSink {
  readonly updates: Resolution[] = [];
  readonly errors: Error[] = [];
  readonly warnings: string[] = [];
  update(resolution: Resolution): void {
    this.updates.push(resolution);
  }
  error(error: Error): void {
    this.errors.push(error);
  }
  warn(message: string): void {
    this.warnings.push(message);
  }
  latest(): string[] | undefined {
    const last = this.updates[this.updates.length - 1];
    return last?.endpoints.map((e) => `${e.host}:${e.port}`).sort();
  }
}

function settings(endpoints: string[]): EtcdConnectionSettings {
  return {
    endpoints,
    secure: false,
    ca: undefined,
    cert: undefined,
    key: undefined,
    serverName: undefined,
    auth: undefined,
    timeoutMs: 5_000,
  };
}

const naming = (addr: string, metadata: unknown = null): string =>
  JSON.stringify({ Op: 0, Addr: addr, Metadata: metadata });

/** Lets promise continuations and setImmediate callbacks (real, not mocked) run. */
async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

interface Harness {
  etcd: FakeEtcd;
  resolver: EtcdEndpointResolver;
  sink: Sink;
  clock: { now: number };
}

function startResolver(
  members: string[],
  env: Partial<EtcdResolverEnvironment> = {},
  etcd = new FakeEtcd(),
  query = '',
): Harness {
  const clock = { now: 0 };
  const target = `etcd:///${PREFIX.slice(0, -1)}${query}`;
  const environment: EtcdResolverEnvironment = {
    createClient: etcd.createClient,
    firstMember: () => 0,
    now: () => clock.now,
    ...env,
  };
  const resolver = new EtcdEndpointResolver(
    parseEtcdTarget(parseTargetUri(target), target),
    settings(members),
    environment,
  );
  const sink = new Sink();
  resolver.start(sink);
  return { etcd, resolver, sink, clock };
}

describe('etcd resolver: a member cut off from the quorum (fake etcd)', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  test('a watch cancelled for "no leader" resumes on the next member from its revision: no change lost, no error', async () => {
    const etcd = new FakeEtcd();
    etcd.put(`${PREFIX}a`, naming('10.0.0.1:1'));
    const { resolver, sink, clock } = startResolver([A, B, C], {}, etcd);
    await settle();
    assert.deepEqual(sink.latest(), ['10.0.0.1:1']);
    assert.deepEqual(
      etcd.clients.map((c) => c.settings.endpoints),
      [[A]],
      'one member at a time',
    );
    // A loses the quorum: changes no longer reach its watch, then it cancels the watch.
    etcd.isolate(A);
    etcd.put(`${PREFIX}b`, naming('10.0.0.2:1'));
    etcd.delete(`${PREFIX}a`);
    await settle();
    assert.deepEqual(sink.latest(), ['10.0.0.1:1'], 'stale while cut off');
    clock.now += 5_000;
    etcd.cancelForNoLeader(A);
    await settle();
    assert.deepEqual(sink.latest(), ['10.0.0.2:1']);
    assert.deepEqual(sink.errors, []);
    assert.equal(sink.warnings.length, 1, sink.warnings.join('\n'));
    assert.match(
      sink.warnings[0]!,
      /etcd watch of "services\/hello\/" on member 10\.9\.0\.1:2379 \(at revision 2\) lost its leader .*no leader.*; resuming from member 10\.9\.0\.2:2379/,
    );
    assert.deepEqual(
      etcd.clients.map((c) => [c.settings.endpoints, c.closed]),
      [
        [[A], true],
        [[B], false],
      ],
    );
    assert.equal(resolver.state.lists, 1, 'resumed from the revision, not re-listed');
    assert.equal(resolver.state.member, B);
    resolver.stop();
  });

  test('a watch silent for 3 progress intervals is taken for dead and resumed on the next member; progress notifications keep a quiet one alive', async () => {
    const etcd = new FakeEtcd();
    etcd.put(`${PREFIX}a`, naming('10.0.0.1:1'));
    const { resolver, sink, clock } = startResolver(
      [A, B],
      { watchProgressIntervalMs: 1_000 },
      etcd,
    );
    await settle();
    // Quiet but alive: a progress notification every interval.
    for (let i = 0; i < 5; i++) {
      mock.timers.tick(1_000);
      clock.now += 1_000;
      etcd.progress();
    }
    await settle();
    assert.equal(etcd.clients.length, 1);
    // Cut off without a word: no event, no progress notification.
    etcd.isolate(A);
    etcd.put(`${PREFIX}b`, naming('10.0.0.2:1'));
    mock.timers.tick(2_999);
    clock.now += 2_999;
    etcd.progress();
    await settle();
    assert.equal(etcd.clients.length, 1, 'not before 3 intervals');
    mock.timers.tick(1);
    clock.now += 1;
    await settle();
    assert.deepEqual(sink.latest(), ['10.0.0.1:1', '10.0.0.2:1']);
    assert.deepEqual(sink.errors, []);
    assert.match(
      sink.warnings.join('\n'),
      /on member 10\.9\.0\.1:2379 .* sent neither an event nor a progress notification for 3000 ms; resuming from member 10\.9\.0\.2:2379/,
    );
    assert.deepEqual(
      etcd.clients.map((c) => c.settings.endpoints),
      [[A], [B]],
    );
    resolver.stop();
  });

  test('with one member, a dead watch is an error (the channel keeps its endpoints) and refresh() resumes from the revision', async () => {
    const etcd = new FakeEtcd();
    etcd.put(`${PREFIX}a`, naming('10.0.0.1:1'));
    const { resolver, sink, clock } = startResolver([A], { watchProgressIntervalMs: 1_000 }, etcd);
    await settle();
    etcd.isolate(A);
    mock.timers.tick(3_000);
    clock.now += 3_000;
    await settle();
    assert.equal(sink.errors.length, 1);
    assert.match(sink.errors[0]!.message, /sent neither an event nor a progress notification/);
    assert.equal(resolver.state.phase, 'broken');
    const updates = sink.updates.length;
    resolver.refresh();
    await settle();
    assert.equal(resolver.state.phase, 'watching');
    assert.equal(resolver.state.lists, 1);
    assert.equal(sink.updates.length, updates + 1);
    resolver.stop();
  });

  test('a "no leader" right after the watch was opened is an error, never a loop between members', async () => {
    const etcd = new FakeEtcd();
    const { resolver, sink } = startResolver([A, B], {}, etcd);
    await settle();
    etcd.cancelForNoLeader(A);
    await settle();
    assert.equal(sink.errors.length, 1);
    assert.match(sink.errors[0]!.message, /no leader/);
    assert.equal(etcd.clients.length, 1, 'nothing more until the channel asks again');
    resolver.refresh();
    await settle();
    assert.deepEqual(etcd.clients[1]?.settings.endpoints, [B]);
    resolver.stop();
  });

  test('after any failure, the next attempt goes to the next member', async () => {
    const etcd = new FakeEtcd();
    etcd.put(`${PREFIX}a`, naming('10.0.0.1:1'));
    etcd.failingLists.set(A, 'etcdserver: request timed out');
    const { resolver, sink } = startResolver([A, B], {}, etcd);
    await settle();
    assert.equal(sink.errors.length, 1);
    assert.match(
      sink.errors[0]!.message,
      /at http:\/\/10\.9\.0\.1:2379 failed: .*request timed out/,
    );
    resolver.refresh();
    await settle();
    assert.deepEqual(sink.latest(), ['10.0.0.1:1']);
    assert.equal(resolver.state.member, B);
    resolver.stop();
  });

  test('stop() leaves no timer: nothing happens after it, however long', async () => {
    const etcd = new FakeEtcd();
    const { resolver, sink } = startResolver([A, B], { watchProgressIntervalMs: 1_000 }, etcd);
    await settle();
    resolver.stop();
    mock.timers.tick(60_000);
    await settle();
    assert.equal(etcd.clients.length, 1);
    assert.ok(etcd.clients[0]!.closed);
    assert.deepEqual(sink.errors, []);
    assert.deepEqual(sink.warnings, []);
  });
});

describe('etcd resolver: Metadata of an unexpected shape (fake etcd)', () => {
  test('the address is used, the bad field is left out, one warning per key and value', async () => {
    const etcd = new FakeEtcd();
    etcd.put(`${PREFIX}a`, naming('10.0.0.1:1', { weight: 'high', zone: 'z' }));
    const { resolver, sink } = startResolver([A], {}, etcd);
    await settle();
    assert.deepEqual(sink.updates.at(-1)?.endpoints, [{ host: '10.0.0.1', port: 1, zone: 'z' }]);
    assert.deepEqual(sink.warnings, [
      'etcd key "services/hello/a": Metadata weight "high" is not an integer 0-1000000; that field is ignored and the address is used',
    ]);
    // The same value again (a lease refresh rewriting it): no new warning.
    etcd.put(`${PREFIX}a`, naming('10.0.0.1:1', { weight: 'high', zone: 'z' }));
    await settle();
    assert.equal(sink.warnings.length, 1);
    // Another bad shape: warned once more; fixed: silent.
    etcd.put(`${PREFIX}a`, naming('10.0.0.1:1', { zone: 7, labels: { v: [1] } }));
    await settle();
    assert.equal(sink.warnings.length, 2);
    assert.match(
      sink.warnings[1]!,
      /Metadata zone 7 is not a string; Metadata labels\.v is not a string; those fields are ignored/,
    );
    etcd.put(`${PREFIX}a`, naming('10.0.0.1:1', { weight: 2 }));
    await settle();
    assert.deepEqual(sink.updates.at(-1)?.endpoints, [{ host: '10.0.0.1', port: 1, weight: 2 }]);
    assert.equal(sink.warnings.length, 2);
    resolver.stop();
  });
});

describe('etcd resolver: ?config=<key>, the service config beside the prefix (fake etcd)', () => {
  const KEY = 'config/hello';
  const doc = (weight: number): string =>
    JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }], weight });

  test('every resolution carries the document and its revision; absent, put, rewritten and deleted', async () => {
    const etcd = new FakeEtcd();
    etcd.put(`${PREFIX}a`, naming('10.0.0.1:1'));
    const { resolver, sink } = startResolver([A], {}, etcd, `?config=${KEY}`);
    await settle();
    assert.equal(sink.updates.length, 1);
    assert.equal(sink.updates[0]!.serviceConfig, undefined);
    assert.equal(sink.updates[0]!.serviceConfigSource, undefined);
    assert.equal(
      sink.updates[0]!.note,
      '1 endpoints under etcd prefix "services/hello/" at revision 2; service config key "config/hello" is absent (at revision 2): the channel\'s own service config applies',
    );
    assert.equal(resolver.state.configPresent, false);

    etcd.put(KEY, doc(1));
    await settle();
    let last = sink.updates.at(-1)!;
    assert.equal(last.serviceConfig, doc(1));
    assert.equal(last.serviceConfigSource, 'etcd key config/hello (revision 3)');
    assert.match(last.note!, /; service config from etcd key config\/hello \(revision 3\)$/);
    assert.deepEqual(sink.latest(), ['10.0.0.1:1']);

    // An endpoint change carries the document too: a resolution is the complete state.
    etcd.put(`${PREFIX}b`, naming('10.0.0.2:1'));
    await settle();
    last = sink.updates.at(-1)!;
    assert.deepEqual(sink.latest(), ['10.0.0.1:1', '10.0.0.2:1']);
    assert.equal(last.serviceConfig, doc(1));
    assert.equal(last.serviceConfigSource, 'etcd key config/hello (revision 3)');

    // Text as stored, even when it is not JSON: the adapter judges it.
    etcd.put(KEY, 'not json');
    await settle();
    assert.equal(sink.updates.at(-1)!.serviceConfig, 'not json');
    assert.equal(sink.updates.at(-1)!.serviceConfigSource, 'etcd key config/hello (revision 5)');

    // A key that merely starts like it is not it.
    const before = sink.updates.length;
    etcd.put(`${KEY}2`, doc(9));
    etcd.put(`${KEY}/x`, doc(9));
    await settle();
    assert.equal(sink.updates.length, before);

    etcd.delete(KEY);
    await settle();
    last = sink.updates.at(-1)!;
    assert.equal(last.serviceConfig, undefined);
    assert.equal(last.serviceConfigSource, undefined);
    assert.match(last.note!, /service config key "config\/hello" is absent \(at revision 8\)/);
    assert.deepEqual(sink.latest(), ['10.0.0.1:1', '10.0.0.2:1']);
    assert.deepEqual(sink.errors, []);
    assert.deepEqual(sink.warnings, []);
    assert.equal(resolver.state.watches, 2, 'the prefix and the key, one watch each');
    assert.equal(etcd.clients.length, 1, 'on one client');
    resolver.stop();
  });

  test('the first resolution waits for the document: a failed read of the key is an error naming it, and no endpoints go out without it', async () => {
    const etcd = new FakeEtcd();
    etcd.put(`${PREFIX}a`, naming('10.0.0.1:1'));
    etcd.put(KEY, doc(1));
    etcd.failingGets.set(KEY, 'etcdserver: request timed out');
    const { resolver, sink } = startResolver([A], {}, etcd, `?config=${KEY}`);
    await settle();
    assert.equal(sink.updates.length, 0, 'no endpoints without the document');
    assert.equal(sink.errors.length, 1);
    assert.match(
      sink.errors[0]!.message,
      /^etcd read of service config key "config\/hello" \(at revision 3\) at http:\/\/10\.9\.0\.1:2379 failed: .*request timed out$/,
    );
    assert.equal((sink.errors[0] as EtcdResolutionError).configKey, KEY);
    etcd.failingGets.delete(KEY);
    resolver.refresh();
    await settle();
    assert.equal(sink.updates.length, 1);
    assert.deepEqual(sink.latest(), ['10.0.0.1:1']);
    assert.equal(sink.updates[0]!.serviceConfig, doc(1));
    resolver.stop();
  });

  test('permission denied on the key names the key and the permission read', async () => {
    const etcd = new FakeEtcd();
    etcd.failingGets.set(KEY, new EtcdPermissionDeniedError('etcdserver: permission denied'));
    const { resolver, sink } = startResolver([A], {}, etcd, `?config=${KEY}`);
    await settle();
    assert.equal(sink.errors.length, 1);
    assert.match(
      sink.errors[0]!.message,
      /etcd read of service config key "config\/hello" .* failed: permission denied for an unauthenticated client: .*; the etcd user's role needs the permission read on key "config\/hello"$/,
    );
    resolver.stop();
  });

  test('resumed on another member, each watch replays from its own revision: a document written meanwhile arrives, nothing is re-listed', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const etcd = new FakeEtcd();
      etcd.put(`${PREFIX}a`, naming('10.0.0.1:1'));
      etcd.put(KEY, doc(1));
      const { resolver, sink, clock } = startResolver([A, B], {}, etcd, `?config=${KEY}`);
      await settle();
      assert.equal(sink.updates.at(-1)!.serviceConfig, doc(1));
      // The key moves ahead of the prefix.
      etcd.put(KEY, doc(2));
      await settle();
      assert.equal(resolver.state.configRevision, 4n);
      assert.equal(resolver.state.revision, 3n);
      etcd.isolate(A);
      etcd.put(KEY, doc(3));
      etcd.put(`${PREFIX}b`, naming('10.0.0.2:1'));
      await settle();
      assert.equal(sink.updates.at(-1)!.serviceConfig, doc(2), 'stale while cut off');
      clock.now += 5_000;
      etcd.cancelForNoLeader(A);
      await settle();
      const last = sink.updates.at(-1)!;
      assert.equal(last.serviceConfig, doc(3));
      assert.equal(last.serviceConfigSource, 'etcd key config/hello (revision 5)');
      assert.deepEqual(sink.latest(), ['10.0.0.1:1', '10.0.0.2:1']);
      assert.equal(resolver.state.lists, 1);
      assert.equal(resolver.state.configRevision, 5n);
      assert.deepEqual(sink.errors, []);
      resolver.stop();
    } finally {
      mock.timers.reset();
    }
  });

  test('etcd cancels the config watch (its revision compacted): both are re-listed at one revision and watched afresh, the document kept in every update', async () => {
    const etcd = new FakeEtcd();
    etcd.put(`${PREFIX}a`, naming('10.0.0.1:1'));
    etcd.put(KEY, doc(1));
    const { resolver, sink, clock } = startResolver([A], {}, etcd, `?config=${KEY}`);
    await settle();
    clock.now += 5_000;
    const [prefixWatch, configWatch] = etcd.clients[0]!.watchers;
    assert.equal(configWatch?.prefix, KEY);
    etcd.put(KEY, doc(2));
    await settle();
    configWatch.emit(
      'error',
      new Error('Watcher canceled: etcdserver: mvcc: required revision has been compacted'),
    );
    await settle();
    assert.equal(resolver.state.lists, 2);
    assert.equal(resolver.state.phase, 'watching');
    assert.ok(prefixWatch!.cancelled, 'the prefix watch was replaced too');
    assert.deepEqual(sink.errors, []);
    for (const update of sink.updates) assert.ok(update.serviceConfig !== undefined);
    assert.equal(sink.updates.at(-1)!.serviceConfig, doc(2));
    // Watched afresh: a later write arrives.
    etcd.put(KEY, doc(3));
    await settle();
    assert.equal(sink.updates.at(-1)!.serviceConfig, doc(3));
    resolver.stop();
  });

  test('a config watch that goes silent is dead like the prefix watch; stop() leaves no timer', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const etcd = new FakeEtcd();
      etcd.put(KEY, doc(1));
      const { resolver, sink, clock } = startResolver(
        [A],
        { watchProgressIntervalMs: 1_000 },
        etcd,
        `?config=${KEY}`,
      );
      await settle();
      etcd.isolate(A);
      mock.timers.tick(3_000);
      clock.now += 3_000;
      await settle();
      assert.equal(sink.errors.length, 1);
      assert.match(sink.errors[0]!.message, /sent neither an event nor a progress notification/);
      assert.equal(resolver.state.phase, 'broken');
      resolver.refresh();
      await settle();
      assert.equal(resolver.state.phase, 'watching');
      resolver.stop();
      const errors = sink.errors.length;
      mock.timers.tick(60_000);
      await settle();
      assert.equal(sink.errors.length, errors);
      assert.ok(etcd.clients.every((c) => c.closed));
    } finally {
      mock.timers.reset();
    }
  });
});

test('watchProgressIntervalMs out of range is a ConfigError when the factory is made', () => {
  for (const bad of [0, -1, Number.NaN, 5, 86_400_001]) {
    assert.throws(
      () => createEtcdResolverFactory({}, { watchProgressIntervalMs: bad }),
      (error: unknown) =>
        error instanceof ConfigError &&
        /watchProgressIntervalMs.*expected milliseconds between 10 and 86400000/.test(
          error.message,
        ),
    );
  }
  assert.doesNotThrow(() => createEtcdResolverFactory({}, { watchProgressIntervalMs: 500 }));
});
