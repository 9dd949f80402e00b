/**
 * The service config loop (`config=<KV key>`) against a scripted HTTP server that answers health
 * and KV queries from separate scripts (the real agent cannot be made to fail one and not the
 * other on demand; test/consul-config.test.ts runs against the real one).
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, test } from 'node:test';
import { parseTargetUri, type Resolution, type ResolutionSink } from '@grpc-lb/core';
import { resolveAgentSettings } from './consul-agent';
import { ConsulEndpointResolver, keyReadRules, readKvEntry } from './consul-resolver';
import { parseConsulTarget } from './consul-target';
import { ConsulResolutionError } from './errors';

interface Answer {
  status?: number;
  index?: string;
  body?: unknown;
}

interface Request {
  readonly path: string;
  readonly query: URLSearchParams;
  readonly token: string | undefined;
}

/** Answers `/v1/health/...` and `/v1/kv/...` from their own queues; an empty queue never answers. */
class Scripted {
  readonly health: Answer[] = [];
  readonly kv: Answer[] = [];
  readonly requests: Request[] = [];
  private readonly waiting = new Map<'health' | 'kv', http.ServerResponse[]>([
    ['health', []],
    ['kv', []],
  ]);
  private server: http.Server | undefined;
  url = '';

  async listen(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const token = req.headers['x-consul-token'];
      this.requests.push({
        path: url.pathname,
        query: url.searchParams,
        token: typeof token === 'string' ? token : undefined,
      });
      const which = url.pathname.startsWith('/v1/kv/') ? 'kv' : 'health';
      this.waiting.get(which)!.push(res);
      this.flush(which);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Queue an answer; it goes to the query waiting, or the next one. */
  answer(which: 'health' | 'kv', answer: Answer): void {
    (which === 'kv' ? this.kv : this.health).push(answer);
    this.flush(which);
  }

  private flush(which: 'health' | 'kv'): void {
    const queue = which === 'kv' ? this.kv : this.health;
    const waiting = this.waiting.get(which)!;
    while (queue.length > 0 && waiting.length > 0) {
      const answer = queue.shift()!;
      const res = waiting.shift()!;
      res.writeHead(answer.status ?? 200, {
        'content-type': 'application/json',
        ...(answer.index !== undefined ? { 'x-consul-index': answer.index } : {}),
      });
      res.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body ?? []));
    }
  }

  kvRequests(): Request[] {
    return this.requests.filter((r) => r.path.startsWith('/v1/kv/'));
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

const servers: Scripted[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function scripted(): Promise<Scripted> {
  const server = new Scripted();
  await server.listen();
  servers.push(server);
  return server;
}

function instance(host: string) {
  return {
    Node: { Node: 'n', Address: '10.9.9.9' },
    Service: { ID: host, Address: host, Port: 50051 },
    Checks: [{ Status: 'passing' }],
  };
}

function kvEntry(key: string, text: string | null, modifyIndex: number) {
  return [
    {
      Key: key,
      Value: text === null ? null : Buffer.from(text).toString('base64'),
      Flags: 0,
      CreateIndex: 5,
      ModifyIndex: modifyIndex,
      LockIndex: 0,
    },
  ];
}

interface Recorded {
  updates: Resolution[];
  errors: Error[];
  sink: ResolutionSink;
}

function recorder(): Recorded {
  const r: Recorded = {
    updates: [],
    errors: [],
    sink: {
      update: (u) => r.updates.push(u),
      error: (e) => r.errors.push(e),
      warn: () => {},
    },
  };
  return r;
}

function resolver(server: Scripted, target: string, token?: string): ConsulEndpointResolver {
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

const DOC_V1 = '{"loadBalancingConfig":[{"round_robin":{}}]}';
const DOC_V2 = '{"loadBalancingConfig":[{"pick_first":{}}]}';

test('the first resolution waits for the KV read; then each carries the text and source, blocking on the KV index', async () => {
  const server = await scripted();
  const r = resolver(server, 'consul:///hello?config=grpc-lb/hello&dc=dc2&wait=30s', 'tok-1');
  const rec = recorder();
  r.start(rec.sink);
  try {
    server.answer('health', { index: '10', body: [instance('10.0.0.1')] });
    await until(() => server.requests.length >= 3, 'health answered, KV asked');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(rec.updates.length, 0, 'no resolution before the document is read');
    server.answer('kv', { index: '42', body: kvEntry('grpc-lb/hello', DOC_V1, 42) });
    await until(() => rec.updates.length === 1, 'the first resolution');
    const first = rec.updates[0]!;
    assert.deepEqual(
      first.endpoints.map((e) => e.host),
      ['10.0.0.1'],
    );
    assert.equal(first.serviceConfig, DOC_V1);
    assert.equal(first.serviceConfigSource, 'Consul KV grpc-lb/hello (index 42)');
    assert.match(first.note ?? '', /1 passing instances .*; service config from Consul KV/);
    // A health change carries the document too.
    server.answer('health', { index: '11', body: [instance('10.0.0.1'), instance('10.0.0.2')] });
    await until(() => rec.updates.length === 2, 'the health change');
    assert.equal(rec.updates[1]!.serviceConfig, DOC_V1);
    assert.equal(rec.updates[1]!.endpoints.length, 2);
    // A write to the key.
    server.answer('kv', { index: '50', body: kvEntry('grpc-lb/hello', DOC_V2, 50) });
    await until(() => rec.updates.length === 3, 'the new document');
    assert.equal(rec.updates[2]!.serviceConfig, DOC_V2);
    assert.equal(rec.updates[2]!.serviceConfigSource, 'Consul KV grpc-lb/hello (index 50)');
    assert.equal(rec.updates[2]!.endpoints.length, 2);
    // A wake-up that leaves the key as it was is not delivered again.
    server.answer('kv', { index: '51', body: kvEntry('grpc-lb/hello', DOC_V2, 50) });
    await until(() => server.kvRequests().length === 4, 'the next KV query');
    assert.equal(rec.updates.length, 3);
    const kv = server.kvRequests();
    assert.ok(kv.every((q) => q.path === '/v1/kv/grpc-lb/hello'));
    assert.deepEqual(
      kv.map((q) => [q.query.get('index'), q.query.get('wait'), q.query.get('dc')]),
      [
        [null, null, 'dc2'],
        ['42', '30s', 'dc2'],
        ['50', '30s', 'dc2'],
        ['51', '30s', 'dc2'],
      ],
    );
    assert.ok(
      server.requests.every((q) => q.token === 'tok-1'),
      'the same token on both loops',
    );
    assert.equal(r.state().config?.index, 51);
    assert.equal(rec.errors.length, 0);
  } finally {
    r.stop();
  }
});

test('404: no serviceConfig and a note naming the absent key; it applies when written, and deletion removes it', async () => {
  const server = await scripted();
  const r = resolver(server, 'consul:///hello?config=grpc-lb/hello');
  const rec = recorder();
  r.start(rec.sink);
  try {
    server.answer('health', { index: '10', body: [instance('10.0.0.1')] });
    server.answer('kv', { status: 404, index: '7', body: '' });
    await until(() => rec.updates.length === 1, 'the first resolution');
    assert.equal(rec.updates[0]!.serviceConfig, undefined);
    assert.equal(rec.updates[0]!.serviceConfigSource, undefined);
    assert.match(rec.updates[0]!.note ?? '', /key "grpc-lb\/hello" is absent/);
    server.answer('kv', { index: '8', body: kvEntry('grpc-lb/hello', DOC_V1, 8) });
    await until(() => rec.updates.length === 2, 'the key written');
    assert.equal(rec.updates[1]!.serviceConfig, DOC_V1);
    server.answer('kv', { status: 404, index: '9', body: '' });
    await until(() => rec.updates.length === 3, 'the key deleted');
    assert.equal(rec.updates[2]!.serviceConfig, undefined);
    await until(() => server.kvRequests().length === 4, 'the next KV query');
    assert.deepEqual(
      server.kvRequests().map((q) => q.query.get('index')),
      [null, '7', '8', '9'],
    );
  } finally {
    r.stop();
  }
});

test('403 on the key: an error naming the key and the ACL rule, never the token; no resolution without the document', async () => {
  const server = await scripted();
  const r = resolver(server, 'consul:///hello?config=grpc-lb/hello', 'very-secret-token');
  const rec = recorder();
  r.start(rec.sink);
  try {
    server.answer('health', { index: '10', body: [instance('10.0.0.1')] });
    server.answer('kv', { status: 403, body: 'Permission denied: token lacks permission' });
    await until(() => rec.errors.length === 1, 'the 403');
    const error = rec.errors[0] as ConsulResolutionError;
    assert.ok(error instanceof ConsulResolutionError);
    assert.equal(error.status, 403);
    assert.equal(error.key, 'grpc-lb/hello');
    assert.match(error.message, /Consul KV key "grpc-lb\/hello"/);
    assert.match(error.message, /lacks key:read on "grpc-lb\/hello"/);
    assert.match(error.message, /key_prefix "grpc-lb\/" \{ policy = "read" \}/);
    assert.match(error.message, /key "grpc-lb\/hello" \{ policy = "read" \}/);
    assert.doesNotMatch(error.message, /very-secret/);
    assert.equal(rec.updates.length, 0);
    assert.equal(r.state().config?.phase, 'broken');
    assert.equal(r.state().phase, 'querying', 'the health loop goes on');
    // Fixed policy: the channel's retry reads it.
    server.answer('kv', { index: '3', body: kvEntry('grpc-lb/hello', DOC_V1, 3) });
    r.refresh();
    await until(() => rec.updates.length === 1, 'the resolution after the retry');
    assert.equal(rec.updates[0]!.serviceConfig, DOC_V1);
  } finally {
    r.stop();
  }
});

test('KV outage after a good read: the error is reported; later resolutions keep the last document and report it again', async () => {
  const server = await scripted();
  const r = resolver(server, 'consul:///hello?config=grpc-lb/hello');
  const rec = recorder();
  r.start(rec.sink);
  try {
    server.answer('health', { index: '10', body: [instance('10.0.0.1')] });
    server.answer('kv', { index: '42', body: kvEntry('grpc-lb/hello', DOC_V1, 42) });
    await until(() => rec.updates.length === 1, 'the first resolution');
    server.answer('kv', { status: 500, body: 'rpc error: No cluster leader' });
    await until(() => rec.errors.length === 1, 'the KV error');
    assert.match(rec.errors[0]!.message, /Consul KV key "grpc-lb\/hello".*HTTP 500/);
    server.answer('health', { index: '11', body: [instance('10.0.0.2')] });
    await until(() => rec.updates.length === 2, 'the health change');
    assert.equal(rec.updates[1]!.serviceConfig, DOC_V1, 'the last document is kept');
    assert.equal(rec.updates[1]!.endpoints[0]!.host, '10.0.0.2');
    await until(() => rec.errors.length === 2, 'the KV error reported again');
    assert.equal(rec.errors[1], rec.errors[0]);
    // The retry reads it without an index.
    server.answer('kv', { index: '43', body: kvEntry('grpc-lb/hello', DOC_V2, 43) });
    r.refresh();
    await until(() => rec.updates.length === 3, 'recovered');
    assert.equal(rec.updates[2]!.serviceConfig, DOC_V2);
    await until(() => server.kvRequests().length === 4, 'the next KV query');
    assert.deepEqual(
      server.kvRequests().map((q) => q.query.get('index')),
      [null, '42', null, '43'],
    );
  } finally {
    r.stop();
  }
});

test('a key with characters to encode is requested segment by segment; an unusable answer is an error naming the key', async () => {
  const server = await scripted();
  const r = resolver(server, 'consul:///hello?config=lb%20policies/h%3Fllo');
  const rec = recorder();
  r.start(rec.sink);
  try {
    server.answer('health', { index: '10', body: [instance('10.0.0.1')] });
    server.answer('kv', { index: '2', body: '{"not":"a list"}' });
    await until(() => rec.errors.length === 1, 'the error');
    assert.equal(server.kvRequests()[0]!.path, '/v1/kv/lb%20policies/h%3Fllo');
    assert.match(
      rec.errors[0]!.message,
      /Consul KV key "lb policies\/h\?llo".*not a list holding the entry/,
    );
  } finally {
    r.stop();
  }
});

test('stop() aborts both blocking queries; no config loop without config=', async () => {
  const server = await scripted();
  const r = resolver(server, 'consul:///hello?config=grpc-lb/hello');
  r.start(recorder().sink);
  await until(() => server.requests.length === 2, 'both queries');
  r.stop();
  assert.equal(r.state().phase, 'idle');
  assert.equal(r.state().config?.phase, 'idle');
  const plain = resolver(server, 'consul:///hello');
  assert.equal(plain.state().config, undefined);
});

test('readKvEntry and keyReadRules', () => {
  assert.deepEqual(readKvEntry(JSON.stringify(kvEntry('a/b', 'x', 4)), 'a/b'), {
    present: true,
    text: 'x',
    modifyIndex: 4,
  });
  assert.deepEqual(readKvEntry(JSON.stringify(kvEntry('a/b', null, 4)), 'a/b'), {
    present: true,
    text: '',
    modifyIndex: 4,
  });
  assert.equal(readKvEntry('nope', 'a/b'), 'the answer is not JSON');
  assert.equal(
    readKvEntry('[{"Key":"a/b","Value":3,"ModifyIndex":1}]', 'a/b'),
    "the entry's Value is not base64 text",
  );
  assert.equal(readKvEntry('[{"Key":"a/b","Value":""}]', 'a/b'), 'the entry has no ModifyIndex');
  assert.equal(
    keyReadRules('grpc-lb/hello'),
    'key_prefix "grpc-lb/" { policy = "read" }, or key "grpc-lb/hello" { policy = "read" }',
  );
  assert.equal(keyReadRules('hello'), 'key "hello" { policy = "read" }');
});
