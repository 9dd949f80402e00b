/**
 * The blocking-query loop's rate limit (a token bucket) and churn backoff, on mocked time with a
 * fake agent behind the resolver's transport seam: no sockets, no wall clock.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';
import { parseTargetUri, type Resolution, type ResolutionSink } from '@grpc-lb/core';
import type { AgentResponse } from './consul-agent';
import { resolveAgentSettings } from './consul-agent';
import {
  ConsulEndpointResolver,
  DEFAULT_MAX_CHURN_BACKOFF_MS,
  DEFAULT_QUERY_BURST,
  DEFAULT_QUERY_REFILL_MS,
  type ConsulResolverOptions,
  type ConsulTransport,
} from './consul-resolver';
import { createConsulResolverFactory } from './consul-resolver-factory';
import { parseConsulTarget } from './consul-target';

beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 }));
afterEach(() => mock.timers.reset());

function instance(host: string) {
  return {
    Node: { Node: 'n', Address: '10.9.9.9' },
    Service: { ID: host, Address: host, Port: 50051 },
    Checks: [{ Status: 'passing' }],
  };
}

interface Query {
  readonly at: number;
  /** The index sent (0: none). */
  readonly index: number;
  answeredAt: number | undefined;
}

/**
 * A fake agent. `churn`: every blocking query is answered at once with a new index (the service
 * changes faster than any client follows). Otherwise a blocking query waits until `change()` (or
 * its wait runs out, answered with the same index, as Consul does).
 */
class FakeAgent {
  index = 10;
  churn = false;
  hosts = ['10.0.0.1'];
  readonly queries: Query[] = [];
  /** Queries whose caller aborted them. */
  aborted = 0;
  private pending: (() => void)[] = [];

  readonly transport = (
    path: string,
    options: { signal: AbortSignal; timeoutMs: number },
  ): Promise<AgentResponse> => {
    const url = new URL(path, 'http://agent');
    const sent = Number(url.searchParams.get('index') ?? '0');
    const query: Query = { at: Date.now(), index: sent, answeredAt: undefined };
    this.queries.push(query);
    return new Promise((resolve, reject) => {
      const wait: { timer?: NodeJS.Timeout } = {};
      const answer = (): void => {
        if (query.answeredAt !== undefined) return;
        clearTimeout(wait.timer);
        query.answeredAt = Date.now();
        resolve({
          status: 200,
          headers: { 'x-consul-index': String(this.index) },
          body: JSON.stringify(this.hosts.map(instance)),
        });
      };
      const waitMs = sent >= 1 ? 5 * 60_000 : 0;
      if (sent < 1 || sent < this.index || this.churn) {
        if (this.churn && sent >= 1) this.index++;
        queueMicrotask(answer);
        return;
      }
      wait.timer = setTimeout(answer, waitMs);
      this.pending.push(answer);
      options.signal.addEventListener('abort', () => {
        clearTimeout(wait.timer);
        this.aborted++;
        reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
      });
    });
  };

  /** The service changes: every blocking query in flight is answered. */
  change(hosts: string[]): void {
    this.hosts = hosts;
    this.index++;
    const pending = this.pending;
    this.pending = [];
    for (const answer of pending) answer();
  }

  inFlight(): number {
    return this.queries.filter((q) => q.answeredAt === undefined).length;
  }

  startsBetween(from: number, to: number): number {
    return this.queries.filter((q) => q.at >= from && q.at < to).length;
  }
}

function setup(options: ConsulResolverOptions = {}) {
  const agent = new FakeAgent();
  const target = 'consul:///hello';
  const resolver = new ConsulEndpointResolver(
    parseConsulTarget(parseTargetUri(target), target),
    resolveAgentSettings('127.0.0.1:8500', {}, {}),
    { random: () => 0, ...options, transport: agent.transport },
  );
  const updates: { at: number; resolution: Resolution }[] = [];
  const errors: Error[] = [];
  const sink: ResolutionSink = {
    update: (resolution) => updates.push({ at: Date.now(), resolution }),
    error: (error) => errors.push(error),
    warn: () => {},
  };
  return { agent, resolver, updates, errors, sink };
}

/** Lets promise callbacks run (the fake agent answers in microtasks). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** Advances mocked time by `ms` in `step`s, letting answers run between steps. */
async function advance(ms: number, step = 50): Promise<void> {
  await settle();
  for (let elapsed = 0; elapsed < ms; elapsed += step) {
    mock.timers.tick(Math.min(step, ms - elapsed));
    await settle();
  }
}

test('defaults: a burst of 3, one query a second sustained, churn backoff up to 2 s', () => {
  assert.equal(DEFAULT_QUERY_BURST, 3);
  assert.equal(DEFAULT_QUERY_REFILL_MS, 1_000);
  assert.equal(DEFAULT_MAX_CHURN_BACKOFF_MS, 2_000);
});

test('a churning index: at most burst + one query per refill in any window, then the churn backoff spaces them up to its ceiling', async () => {
  const { agent, resolver, sink } = setup();
  agent.churn = true;
  const t0 = Date.now();
  resolver.start(sink);
  try {
    await advance(60_000);
    // The old loop's 100 ms floor allowed ~10 a second (600 here).
    const total = agent.queries.length;
    assert.ok(total <= DEFAULT_QUERY_BURST + 60, `${total} queries in 60 s`);
    // Any 10 s window: no more than the bucket's size plus what it earns at the base rate.
    for (let from = t0; from + 10_000 <= t0 + 60_000; from += 1_000) {
      const n = agent.startsBetween(from, from + 10_000);
      assert.ok(n <= DEFAULT_QUERY_BURST + 10, `${n} queries in the 10 s from ${from - t0}`);
    }
    // The churn backoff: after the first seconds, at most one query per 2 s (plus jitter).
    assert.equal(resolver.state().refillMs, 2_000);
    const late = agent.startsBetween(t0 + 30_000, t0 + 60_000);
    assert.ok(late <= 16, `${late} queries in the last 30 s`);
    assert.ok(late >= 12, `${late} queries in the last 30 s: the loop still follows the churn`);
    // Never more than one query in flight.
    assert.ok(agent.inFlight() <= 1);
    // The burst went back to back; the fourth query waited for a token.
    const starts = agent.queries.map((q) => q.at - t0);
    assert.deepEqual(starts.slice(0, 3), [0, 0, 0]);
    assert.ok(starts[3]! >= 1_000, `fourth query at ${starts[3]} ms`);
  } finally {
    resolver.stop();
  }
});

test('a quiet index keeps one blocking query open (one query per wait, answered with the same index)', async () => {
  const { agent, resolver, sink, updates } = setup();
  resolver.start(sink);
  try {
    await advance(1_000);
    assert.equal(agent.queries.length, 2, 'the first read, then one blocking query');
    assert.equal(agent.inFlight(), 1);
    assert.equal(resolver.state().phase, 'querying');
    await advance(20 * 60_000, 1_000);
    // 20 minutes at Consul's 5-minute wait: one blocking query per wait, never two at once.
    assert.ok(agent.queries.length <= 6, `${agent.queries.length} queries in 20 min`);
    assert.equal(agent.inFlight(), 1);
    assert.ok(agent.queries.slice(1).every((q) => q.index === 10));
    assert.equal(updates.length, agent.queries.length - 1);
  } finally {
    resolver.stop();
  }
  assert.equal(agent.aborted, 1, 'stop() aborted the blocking query');
});

test('after churn and a quiet spell, a change is delivered at once and the churn backoff is over', async () => {
  const { agent, resolver, sink, updates } = setup();
  agent.churn = true;
  resolver.start(sink);
  try {
    await advance(30_000);
    assert.equal(resolver.state().refillMs, 2_000, 'backing off while the index churns');
    agent.churn = false;
    // The next query (within the backoff) blocks: the index is quiet for a minute.
    await advance(60_000, 500);
    assert.equal(agent.inFlight(), 1);
    const queriesBefore = agent.queries.length;
    const changedAt = Date.now();
    agent.change(['10.0.0.2']);
    await settle();
    const last = updates[updates.length - 1]!;
    assert.equal(last.at, changedAt, 'delivered at the instant the agent answered');
    assert.deepEqual(
      last.resolution.endpoints.map((e) => e.host),
      ['10.0.0.2'],
    );
    assert.equal(resolver.state().refillMs, 1_000, 'quiet: back to the base refill');
    // The bucket refilled during the quiet spell: the next blocking query went out at once, and
    // a second change right after is delivered at once too.
    assert.equal(agent.queries.length, queriesBefore + 1);
    assert.equal(agent.queries[agent.queries.length - 1]!.at, changedAt);
    await advance(100);
    const secondAt = Date.now();
    agent.change(['10.0.0.3']);
    await settle();
    assert.equal(updates[updates.length - 1]!.at, secondAt);
  } finally {
    resolver.stop();
  }
});

test('stop() during a wait for a token leaves no timer and makes no more queries', async () => {
  const { agent, resolver, sink } = setup({ queryBurst: 1 });
  agent.churn = true;
  resolver.start(sink);
  await advance(10);
  assert.equal(resolver.state().phase, 'waiting');
  const made = agent.queries.length;
  resolver.stop();
  await advance(30_000, 1_000);
  assert.equal(agent.queries.length, made);
  assert.equal(resolver.state().phase, 'idle');
});

test('bad rate-limit options are a ConfigError from the factory', () => {
  for (const [options, field] of [
    [{ queryBurst: 0 }, 'queryBurst'],
    [{ queryBurst: 1.5 }, 'queryBurst'],
    [{ queryRefillMs: -1 }, 'queryRefillMs'],
    [{ maxChurnBackoffMs: Number.NaN }, 'maxChurnBackoffMs'],
  ] as const) {
    assert.throws(
      () => createConsulResolverFactory(options),
      new RegExp(`invalid ${field}: expected`),
    );
  }
});

test('the service config loop (config=) has the same rate limit: a churning KV index costs at most burst + one query per refill, then the churn backoff', async () => {
  const kvQueries: number[] = [];
  let kvIndex = 10;
  let healthQueries = 0;
  const transport: ConsulTransport = (path, options) => {
    if (path.startsWith('/v1/kv/')) {
      kvQueries.push(Date.now());
      kvIndex++;
      const entry = { Key: 'grpc-lb/hello', Value: btoa('{}'), ModifyIndex: kvIndex };
      return Promise.resolve({
        status: 200,
        headers: { 'x-consul-index': String(kvIndex) },
        body: JSON.stringify([entry]),
      });
    }
    healthQueries++;
    if (healthQueries === 1) {
      return Promise.resolve({
        status: 200,
        headers: { 'x-consul-index': '5' },
        body: JSON.stringify([instance('10.0.0.1')]),
      });
    }
    // The health index stays quiet: a blocking query that waits until aborted.
    return new Promise((_, reject) => {
      options.signal.addEventListener('abort', () => reject(new Error('aborted')));
    });
  };
  const target = 'consul:///hello?config=grpc-lb/hello';
  const resolver = new ConsulEndpointResolver(
    parseConsulTarget(parseTargetUri(target), target),
    resolveAgentSettings('127.0.0.1:8500', {}, {}),
    { random: () => 0, transport },
  );
  const updates: Resolution[] = [];
  resolver.start({ update: (u) => updates.push(u), error: () => {}, warn: () => {} });
  const t0 = Date.now();
  try {
    await advance(60_000);
    assert.ok(
      kvQueries.length <= DEFAULT_QUERY_BURST + 60,
      `${kvQueries.length} KV queries in 60 s`,
    );
    assert.deepEqual(
      kvQueries.slice(0, 3).map((at) => at - t0),
      [0, 0, 0],
    );
    assert.ok(kvQueries[3]! - t0 >= 1_000, 'the fourth waited for a token');
    const late = kvQueries.filter((at) => at >= t0 + 30_000).length;
    assert.ok(late <= 16, `${late} KV queries in the last 30 s`);
    assert.equal(resolver.state().config?.refillMs, 2_000, 'the KV loop backs off');
    assert.equal(resolver.state().refillMs, 1_000, 'the quiet health loop does not');
    assert.equal(healthQueries, 2);
    // Every KV answer is a new document revision, each delivered with the endpoints.
    assert.equal(updates.at(-1)?.serviceConfigSource, `Consul KV grpc-lb/hello (index ${kvIndex})`);
  } finally {
    resolver.stop();
  }
});
