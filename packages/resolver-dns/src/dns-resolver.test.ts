/**
 * When the resolver looks again, with a scripted lookup and mocked timers: interval, TTL clamping,
 * the floor, refresh on connection failure, errors, max_stale, stop and restart.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import type { Resolution, ResolutionSink } from '@grpc-lb/core';
import { mergeSettings, type DnsOptions } from './dns-options';
import type { LookupOutcome } from './dns-lookup';
import { DnsEndpointResolver } from './dns-resolver';
import type { DnsTarget } from './dns-target';
import { DnsResolutionError } from './errors';
import type { HoldDownSettings } from './hold-down';

const TARGET: DnsTarget = {
  original: 'dns+lb://127.0.0.1:53/api.svc.test:50051',
  kind: 'address',
  name: 'api.svc.test',
  absolute: false,
  port: 50051,
  server: { host: '127.0.0.1', port: 53 },
  authority: 'api.svc.test:50051',
  options: {},
};

type Script = (call: number) => LookupOutcome | Error | Promise<LookupOutcome>;

function outcome(hosts: string[], ttl?: number): LookupOutcome {
  return {
    endpoints: hosts.map((host) => ({ host, port: 50051 })),
    ttl,
    note: `${hosts.length} endpoints`,
    warnings: [],
  };
}

class RecordingSink implements ResolutionSink {
  readonly events: ({ update: Resolution } | { error: Error } | { warn: string })[] = [];
  update(resolution: Resolution): void {
    this.events.push({ update: resolution });
  }
  error(error: Error): void {
    this.events.push({ error });
  }
  warn(message: string): void {
    this.events.push({ warn: message });
  }
  get updates(): Resolution[] {
    return this.events.flatMap((e) => ('update' in e ? [e.update] : []));
  }
  get errors(): Error[] {
    return this.events.flatMap((e) => ('error' in e ? [e.error] : []));
  }
}

interface Harness {
  resolver: DnsEndpointResolver;
  sink: RecordingSink;
  /** Times (mocked ms since start) at which lookups started. */
  calls: number[];
  signals: AbortSignal[];
}

function setup(
  script: Script,
  options: DnsOptions = {},
  target: DnsTarget = TARGET,
  extraSettings: Partial<HoldDownSettings> = {},
): Harness {
  const calls: number[] = [];
  const signals: AbortSignal[] = [];
  const settings = { ...mergeSettings(options), ...extraSettings };
  const resolver = new DnsEndpointResolver(target, settings, {
    resolvConfPath: '/nonexistent',
    hostsPath: undefined,
    now: () => Date.now(),
    lookup: (_target, env) => {
      calls.push(Date.now());
      signals.push(env.signal);
      const result = script(calls.length);
      return result instanceof Error ? Promise.reject(result) : Promise.resolve(result);
    },
  });
  return { resolver, sink: new RecordingSink(), calls, signals };
}

/** Lets the lookup's promise callbacks run (setImmediate is not mocked). */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function tick(ms: number): Promise<void> {
  mock.timers.tick(ms);
  await settle();
}

describe('DnsEndpointResolver scheduling', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 }));
  afterEach(() => mock.timers.reset());

  test('resolves at start, then every interval', async () => {
    const h = setup(() => outcome(['127.0.0.2']), { intervalMs: 5_000 });
    h.resolver.start(h.sink);
    await settle();
    assert.deepEqual(h.calls, [0]);
    await tick(4_999);
    assert.equal(h.calls.length, 1);
    await tick(1);
    await tick(5_000);
    assert.deepEqual(h.calls, [0, 5_000, 10_000]);
    assert.equal(h.sink.updates.length, 3);
    h.resolver.stop();
  });

  test('with useTtl, the next lookup is when the TTL runs out, clamped to [min, max]', async () => {
    const ttls = [7, 0, 86_400, undefined];
    const h = setup((n) => outcome(['127.0.0.2'], ttls[n - 1]), {
      useTtl: true,
      intervalMs: 20_000,
      minIntervalMs: 1_000,
      maxIntervalMs: 60_000,
    });
    h.resolver.start(h.sink);
    await settle();
    await tick(7_000); // TTL 7 s
    await tick(1_000); // TTL 0 → the floor
    await tick(60_000); // TTL 1 day → the ceiling
    await tick(20_000); // no TTL (hosts file) → the interval
    assert.deepEqual(h.calls, [0, 7_000, 8_000, 68_000, 88_000]);
    h.resolver.stop();
  });

  test('refresh() resolves at once, but never sooner than min_interval after the last lookup', async () => {
    const h = setup(() => outcome(['127.0.0.2']), { intervalMs: 30_000, minIntervalMs: 2_000 });
    h.resolver.start(h.sink);
    await settle();
    await tick(500);
    h.resolver.refresh();
    h.resolver.refresh();
    await settle();
    assert.equal(h.calls.length, 1, 'held back by the floor');
    await tick(1_500);
    assert.deepEqual(h.calls, [0, 2_000]);
    await tick(10_000);
    h.resolver.refresh();
    await settle();
    assert.deepEqual(h.calls, [0, 2_000, 12_000], 'long after the last lookup: at once');
    await tick(30_000);
    assert.deepEqual(
      h.calls,
      [0, 2_000, 12_000, 42_000],
      'the interval counts from the last lookup',
    );
    h.resolver.stop();
  });

  test('refresh() while a lookup is in flight waits for that answer', async () => {
    let release: (value: LookupOutcome) => void = () => {};
    const h = setup(
      (n) =>
        n === 1
          ? new Promise<LookupOutcome>((resolve) => (release = resolve))
          : outcome(['127.0.0.2']),
      { minIntervalMs: 1_000 },
    );
    h.resolver.start(h.sink);
    await tick(5_000);
    h.resolver.refresh();
    await settle();
    assert.equal(h.calls.length, 1);
    release(outcome(['127.0.0.3']));
    await settle();
    assert.equal(h.sink.updates.length, 1);
    h.resolver.stop();
  });

  test('a failure goes to sink.error and the schedule goes on; the next answer is delivered', async () => {
    const h = setup(
      (n) => (n === 2 ? new DnsResolutionError('api', 'SERVFAIL') : outcome(['127.0.0.2'])),
      { intervalMs: 1_000 },
    );
    h.resolver.start(h.sink);
    await settle();
    await tick(1_000);
    await tick(1_000);
    assert.deepEqual(
      h.sink.events.map((e) => Object.keys(e)[0]),
      ['update', 'error', 'update'],
    );
    assert.ok(h.sink.errors[0] instanceof DnsResolutionError);
    h.resolver.stop();
  });

  test('an unexpected exception is reported as a DnsResolutionError naming the host', async () => {
    const h = setup(() => new TypeError('boom'));
    h.resolver.start(h.sink);
    await settle();
    const [error] = h.sink.errors;
    assert.ok(error instanceof DnsResolutionError);
    assert.match(error.message, /DNS resolution of api.svc.test failed: boom/);
    h.resolver.stop();
  });

  test('max_stale: once DNS has failed that long, the endpoints are dropped (once)', async () => {
    const h = setup(
      (n) => (n === 1 ? outcome(['127.0.0.2']) : new DnsResolutionError('api', 'timed out')),
      { intervalMs: 1_000, maxStaleMs: 2_500 },
    );
    h.resolver.start(h.sink);
    await settle();
    for (let i = 0; i < 4; i++) await tick(1_000);
    assert.deepEqual(
      h.sink.events.map((e) => ('update' in e ? `update:${e.update.endpoints.length}` : 'error')),
      ['update:1', 'error', 'error', 'update:0', 'error'],
    );
    assert.match(h.sink.updates[1]!.note!, /DNS has failed for 3s, longer than max_stale 2.5s/);
    h.resolver.stop();
  });

  test('stop() clears the timer, aborts the lookup in flight and silences the sink; start() again works', async () => {
    const h = setup(
      (n) => (n === 2 ? new Promise<LookupOutcome>(() => {}) : outcome(['127.0.0.2'])),
      { intervalMs: 1_000 },
    );
    h.resolver.start(h.sink);
    await settle();
    assert.equal(h.resolver.busy, true, 'timer pending');
    h.resolver.stop();
    assert.equal(h.resolver.busy, false);
    await tick(10_000);
    assert.equal(h.calls.length, 1);

    const sink2 = new RecordingSink();
    h.resolver.start(sink2);
    await settle();
    assert.equal(h.signals[1]!.aborted, false);
    h.resolver.stop();
    assert.equal(h.signals[1]!.aborted, true, 'the hung lookup was aborted');
    assert.equal(h.resolver.busy, false);
    h.resolver.refresh();
    await tick(10_000);
    assert.equal(h.calls.length, 2);
    assert.equal(sink2.events.length, 0);
    assert.equal(h.sink.updates.length, 1);
  });

  test('an IP address is delivered once, with no timer', async () => {
    const h = setup(
      () => outcome(['10.0.0.1']),
      {},
      {
        ...TARGET,
        kind: 'ip',
        name: '10.0.0.1',
        server: undefined,
      },
    );
    h.resolver.start(h.sink);
    await settle();
    assert.equal(h.resolver.busy, false);
    h.resolver.refresh();
    await tick(100_000);
    assert.equal(h.calls.length, 1);
    h.resolver.stop();
  });

  test('the same warning is given once per start', async () => {
    const h = setup(() => ({ ...outcome(['127.0.0.2']), warnings: ['SRV target x skipped'] }), {
      intervalMs: 1_000,
    });
    h.resolver.start(h.sink);
    await settle();
    await tick(1_000);
    await tick(1_000);
    assert.equal(h.sink.events.filter((e) => 'warn' in e).length, 1);
    h.resolver.stop();
  });
});

/** `update:N` for an update of N endpoints, `error` for an error (warnings left out). */
function kinds(sink: RecordingSink): string[] {
  return sink.events.flatMap((e) =>
    'update' in e ? [`update:${e.update.endpoints.length}`] : 'error' in e ? ['error'] : [],
  );
}

describe('negative answers: the hold-down before a name counts as gone', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 }));
  afterEach(() => mock.timers.reset());

  test('one transient NXDOMAIN does not empty the set: the last set is kept and an error says why', async () => {
    const h = setup((n) => (n === 2 ? outcome([]) : outcome(['127.0.0.2'])), {
      intervalMs: 1_000,
    });
    h.resolver.start(h.sink);
    await settle();
    await tick(1_000);
    await tick(1_000);
    assert.deepEqual(kinds(h.sink), ['update:1', 'error', 'update:1']);
    const [error] = h.sink.errors;
    assert.ok(error instanceof DnsResolutionError);
    assert.match(
      error.message,
      /0 endpoints; the last endpoints are kept until the name has been missing for 2 answers and 5s \(1 so far, over 0ms\)/,
    );
    h.resolver.stop();
  });

  test('defaults: gone after 2 negative answers and 5 s, whichever is later; looked up again 5 s after the first', async () => {
    const h = setup((n) => (n === 1 ? outcome(['127.0.0.2']) : outcome([])));
    h.resolver.start(h.sink);
    await settle();
    await tick(30_000);
    assert.deepEqual(kinds(h.sink), ['update:1', 'error']);
    await tick(4_999);
    assert.equal(h.calls.length, 2);
    await tick(1);
    assert.deepEqual(kinds(h.sink), ['update:1', 'error', 'update:0']);
    await tick(30_000);
    assert.deepEqual(h.calls, [0, 30_000, 35_000, 65_000], 'then the interval again');
    assert.deepEqual(kinds(h.sink), ['update:1', 'error', 'update:0', 'update:0']);
    h.resolver.stop();
  });

  test('with a short interval, many negative answers are not enough: 5 s must pass too', async () => {
    const h = setup((n) => (n === 1 ? outcome(['127.0.0.2']) : outcome([])), {
      intervalMs: 1_000,
    });
    h.resolver.start(h.sink);
    await settle();
    for (let i = 0; i < 5; i++) await tick(1_000);
    assert.deepEqual(kinds(h.sink), ['update:1', 'error', 'error', 'error', 'error', 'error']);
    await tick(1_000);
    assert.deepEqual(kinds(h.sink).slice(-1), ['update:0'], 'at 6 s: 5 s after the first');
    h.resolver.stop();
  });

  test('an answer with endpoints ends the run: the next negative answer starts counting again', async () => {
    const answers = [['a'], [], ['a'], [], [], [], [], [], [], []];
    const h = setup((n) => outcome((answers[n - 1] ?? []).map(() => '127.0.0.2')), {
      intervalMs: 1_000,
    });
    h.resolver.start(h.sink);
    await settle();
    for (let i = 0; i < 8; i++) await tick(1_000);
    // 1 s: negative (held); 2 s: positive; 3 s..7 s: held; 8 s: 5 s after 3 s → gone.
    assert.deepEqual(kinds(h.sink), [
      'update:1',
      'error',
      'update:1',
      'error',
      'error',
      'error',
      'error',
      'error',
      'update:0',
    ]);
    h.resolver.stop();
  });

  test('errors between negative answers do not end the run', async () => {
    const h = setup(
      (n) =>
        n === 1
          ? outcome(['127.0.0.2'])
          : n % 2 === 0
            ? outcome([])
            : new DnsResolutionError('api', 'timed out'),
      { intervalMs: 1_000 },
    );
    h.resolver.start(h.sink);
    await settle();
    for (let i = 0; i < 6; i++) await tick(1_000);
    // Negative answers at 1, 3 and 5 s, errors at 2, 4 and 6 s: at 6 s the run has lasted 4 s.
    assert.ok(!kinds(h.sink).includes('update:0'), 'held at 6 s (4 s of negative answers)');
    await tick(1_000);
    assert.deepEqual(kinds(h.sink).slice(-1), ['update:0'], 'gone at 7 s (6 s after the first)');
    h.resolver.stop();
  });

  test('a channel that wakes up (stop, start) still holds its set: a negative answer then is held down', async () => {
    const h = setup((n) => (n === 1 ? outcome(['127.0.0.2']) : outcome([])), {
      intervalMs: 1_000,
    });
    h.resolver.start(h.sink);
    await settle();
    h.resolver.stop();
    const woken = new RecordingSink();
    h.resolver.start(woken);
    await settle();
    assert.deepEqual(kinds(woken), ['error']);
    h.resolver.stop();
  });

  test('an empty answer before any endpoints is delivered at once (there is no set to keep)', async () => {
    const h = setup(() => outcome([]), { intervalMs: 1_000 });
    h.resolver.start(h.sink);
    await settle();
    assert.deepEqual(kinds(h.sink), ['update:0']);
    await tick(1_000);
    assert.deepEqual(kinds(h.sink), ['update:0', 'update:0']);
    h.resolver.stop();
  });

  test('holdDownAnswers 1 and holdDownMs 0 in the settings turn the hold-down off', async () => {
    const h = setup(
      (n) => (n === 1 ? outcome(['127.0.0.2']) : outcome([])),
      { intervalMs: 1_000 },
      TARGET,
      { holdDownAnswers: 1, holdDownMs: 0 },
    );
    h.resolver.start(h.sink);
    await settle();
    await tick(1_000);
    assert.deepEqual(kinds(h.sink), ['update:1', 'update:0']);
    h.resolver.stop();
  });

  test('holdDownAnswers 3 and holdDownMs 0: gone at the third negative answer', async () => {
    const h = setup(
      (n) => (n === 1 ? outcome(['127.0.0.2']) : outcome([])),
      { intervalMs: 1_000 },
      TARGET,
      { holdDownAnswers: 3, holdDownMs: 0 },
    );
    h.resolver.start(h.sink);
    await settle();
    for (let i = 0; i < 3; i++) await tick(1_000);
    assert.deepEqual(kinds(h.sink), ['update:1', 'error', 'error', 'update:0']);
    h.resolver.stop();
  });
});
