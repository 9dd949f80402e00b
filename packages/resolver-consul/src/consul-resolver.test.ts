/**
 * The query loop against a scripted HTTP server (the real agent cannot be made to send a lower
 * index, garbage or a 5xx on demand; test/consul-resolver.test.ts runs against the real one).
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, test } from 'node:test';
import { parseTargetUri, type Resolution, type ResolutionSink } from '@grpc-lb/core';
import { resolveAgentSettings } from './consul-agent';
import { ConsulEndpointResolver } from './consul-resolver';
import { parseConsulTarget } from './consul-target';
import { ConsulResolutionError } from './errors';

interface Answer {
  status?: number;
  index?: string;
  body?: unknown;
  /** Never answer (a blocking query that waits). */
  hang?: boolean;
}

interface Scripted {
  readonly url: string;
  readonly requests: { query: URLSearchParams; token: string | undefined; at: number }[];
  /** Requests whose connection closed before an answer. */
  aborted: number;
  close(): Promise<void>;
}

const servers: Scripted[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function scripted(answers: Answer[]): Promise<Scripted> {
  const state: Scripted = {
    url: '',
    requests: [],
    aborted: 0,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const token = req.headers['x-consul-token'];
    state.requests.push({
      query: url.searchParams,
      token: typeof token === 'string' ? token : undefined,
      at: Date.now(),
    });
    const answer = answers.shift() ?? { hang: true };
    if (answer.hang) {
      res.on('close', () => state.aborted++);
      return;
    }
    res.writeHead(answer.status ?? 200, {
      'content-type': 'application/json',
      ...(answer.index !== undefined ? { 'x-consul-index': answer.index } : {}),
    });
    res.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body ?? []));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const result = { ...state, url: `127.0.0.1:${port}` };
  Object.defineProperty(result, 'aborted', { get: () => state.aborted });
  result.requests = state.requests;
  servers.push(result);
  return result;
}

function instance(host: string, port = 50051) {
  return {
    Node: { Node: 'n', Address: '10.9.9.9' },
    Service: { ID: `${host}-${port}`, Address: host, Port: port },
    Checks: [{ Status: 'passing' }],
  };
}

interface Recorded {
  updates: Resolution[];
  errors: Error[];
  warnings: string[];
  sink: ResolutionSink;
}

function recorder(): Recorded {
  const r: Recorded = {
    updates: [],
    errors: [],
    warnings: [],
    sink: {
      update: (u) => r.updates.push(u),
      error: (e) => r.errors.push(e),
      warn: (w) => r.warnings.push(w),
    },
  };
  return r;
}

function resolver(server: Scripted, target = 'consul:///hello', token?: string) {
  const parsed = parseConsulTarget(parseTargetUri(target), target);
  return new ConsulEndpointResolver(
    parsed,
    resolveAgentSettings(server.url, token !== undefined ? { token } : {}, {}),
    { queryBurst: 3, queryRefillMs: 150, random: () => 0 },
  );
}

async function until(condition: () => boolean, message: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${message}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('first query has no index; then blocks on the answered index; a lower index resets to none', async () => {
  const server = await scripted([
    { index: '10', body: [instance('10.0.0.1')] },
    { index: '12', body: [instance('10.0.0.1'), instance('10.0.0.2')] },
    { index: '3', body: [instance('10.0.0.2')] },
    { index: '4', body: [instance('10.0.0.2')] },
  ]);
  const r = resolver(server, 'consul:///hello?wait=30s&tag=v2');
  const rec = recorder();
  r.start(rec.sink);
  try {
    await until(() => server.requests.length === 5, 'five queries');
    const sent = server.requests.map((q) => [q.query.get('index'), q.query.get('wait')]);
    assert.deepEqual(sent, [
      [null, null],
      ['10', '30s'],
      ['12', '30s'],
      [null, null], // 3 < 12: reset, ask without an index
      ['4', '30s'],
    ]);
    assert.equal(server.requests[0]!.query.get('passing'), 'true');
    assert.equal(server.requests[0]!.query.get('tag'), 'v2');
    assert.deepEqual(
      rec.updates.map((u) => u.endpoints.map((e) => e.host)),
      [['10.0.0.1'], ['10.0.0.1', '10.0.0.2'], ['10.0.0.2'], ['10.0.0.2']],
    );
    assert.equal(r.state().indexResets, 1);
    // The rate limit between queries is tested with mocked time in consul-rate-limit.test.ts.
  } finally {
    r.stop();
  }
});

test('an index of 0 is never sent back', async () => {
  const server = await scripted([
    { index: '0', body: [instance('10.0.0.1')] },
    { body: [instance('10.0.0.1')] },
  ]);
  const r = resolver(server);
  r.start(recorder().sink);
  try {
    await until(() => server.requests.length === 3, 'three queries');
    assert.deepEqual(
      server.requests.map((q) => q.query.has('index')),
      [false, false, false],
    );
  } finally {
    r.stop();
  }
});

test('stop() aborts the blocking query in flight and leaves no timer', async () => {
  const server = await scripted([{ index: '10', body: [instance('10.0.0.1')] }]);
  const r = resolver(server);
  const rec = recorder();
  r.start(rec.sink);
  await until(() => server.requests.length === 2, 'the blocking query');
  assert.equal(r.state().phase, 'querying');
  r.stop();
  await until(() => server.aborted === 1, 'the server sees the query closed');
  assert.equal(r.state().phase, 'idle');
  assert.equal(rec.errors.length, 0, 'an abort is not reported as an error');
});

test('5xx, garbage and refused connections are errors (the last set is kept); refresh() re-queries without an index', async () => {
  const server = await scripted([
    { index: '10', body: [instance('10.0.0.1')] },
    { status: 500, body: 'rpc error: No cluster leader' },
    { index: '11', body: '{not json' },
    { index: '12', body: [{ Service: { ID: 'x', Address: '10.0.0.3' } }] },
    { index: '13', body: { not: 'a list' } },
    { index: '20', body: [instance('10.0.0.4')] },
  ]);
  const r = resolver(server);
  const rec = recorder();
  r.start(rec.sink);
  try {
    // [error, whether the loop stopped for a refresh()]: a listing whose every entry is
    // malformed is an error too (it must not empty the set) but the blocking loop goes on.
    const expected: [RegExp, boolean][] = [
      [/HTTP 500: rpc error: No cluster leader/, true],
      [/the answer is not JSON/, true],
      [/all 1 instances were malformed/, false],
      [/not a list of instances/, true],
    ];
    for (const [i, [pattern, broken]] of expected.entries()) {
      await until(() => rec.errors.length === i + 1, `error ${i + 1}`);
      const error = rec.errors[i]!;
      assert.ok(error instanceof ConsulResolutionError);
      assert.match(error.message, pattern);
      assert.match(error.message, /Consul service "hello" at http:\/\/127\.0\.0\.1:/);
      assert.equal(r.state().phase === 'broken', broken, `phase ${r.state().phase}`);
      r.refresh();
    }
    await until(() => rec.updates.length === 2, 'recovered');
    assert.deepEqual(
      rec.updates[1]!.endpoints.map((e) => e.host),
      ['10.0.0.4'],
    );
    // Every query after an error that stopped the loop went without an index.
    assert.deepEqual(
      server.requests.slice(1, 6).map((q) => q.query.get('index')),
      ['10', null, null, '12', null],
    );
    assert.match(rec.warnings.join('\n'), /x \(10\.0\.0\.3\): port missing/);
  } finally {
    r.stop();
  }
  await server.close();
  const refused = resolver(server);
  const rec2 = recorder();
  refused.start(rec2.sink);
  await until(() => rec2.errors.length === 1, 'connection refused');
  assert.match(rec2.errors[0]!.message, /connection refused \(is the agent running\?\)/);
  refused.stop();
});

test('403: names the service and service:read, never the token', async () => {
  const server = await scripted([
    { status: 403, body: 'Permission denied: token with AccessorID abc lacks permission' },
  ]);
  const r = resolver(server, 'consul:///hello', 'very-secret-token');
  const rec = recorder();
  r.start(rec.sink);
  try {
    await until(() => rec.errors.length === 1, 'the 403');
    assert.equal(server.requests[0]!.token, 'very-secret-token');
    const error = rec.errors[0] as ConsulResolutionError;
    assert.equal(error.status, 403);
    assert.match(error.message, /403 Permission denied/);
    assert.match(
      error.message,
      /the ACL token \(from the `token` option\) lacks service:read on "hello"/,
    );
    assert.doesNotMatch(error.message, /very-secret/);
  } finally {
    r.stop();
  }
});

test('403 ACL not found: says the agent does not know the token, never prints it', async () => {
  const server = await scripted([{ status: 403, body: 'ACL not found' }]);
  const r = resolver(server, 'consul:///hello', 'very-secret-token');
  const rec = recorder();
  r.start(rec.sink);
  try {
    await until(() => rec.errors.length === 1, 'the 403');
    const error = rec.errors[0] as ConsulResolutionError;
    assert.equal(error.status, 403);
    assert.match(
      error.message,
      /403 ACL not found: the ACL token \(from the `token` option\) is not one the agent knows/,
    );
    assert.doesNotMatch(error.message, /lacks service:read|very-secret/);
  } finally {
    r.stop();
  }
});

test('an empty listing is an honest empty update naming the service', async () => {
  const server = await scripted([{ index: '5', body: [] }]);
  const r = resolver(server);
  const rec = recorder();
  r.start(rec.sink);
  try {
    await until(() => rec.updates.length === 1, 'the update');
    assert.deepEqual(rec.updates[0]!.endpoints, []);
    assert.match(rec.updates[0]!.note ?? '', /no passing instances of Consul service "hello"/);
  } finally {
    r.stop();
  }
});

test('a malformed entry is warned about once while it persists, and again after it went away and came back', async () => {
  const bad = { Service: { ID: 'x', Address: '10.0.0.3' } };
  const server = await scripted([
    { index: '10', body: [instance('10.0.0.1'), bad] },
    { index: '11', body: [instance('10.0.0.1'), instance('10.0.0.2'), bad] },
    { index: '12', body: [instance('10.0.0.2'), bad] },
    { index: '13', body: [instance('10.0.0.2')] },
    { index: '14', body: [instance('10.0.0.2'), bad] },
  ]);
  const r = resolver(server);
  const rec = recorder();
  r.start(rec.sink);
  try {
    await until(() => rec.updates.length === 5, 'five answers');
    assert.deepEqual(
      rec.warnings.map((w) => /x \(10\.0\.0\.3\): port missing/.test(w)),
      [true, true],
      rec.warnings.join('\n'),
    );
  } finally {
    r.stop();
  }
});
