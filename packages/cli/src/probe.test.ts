import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import type { CliIo } from './io';
import { mapLimited, probeEndpoint, probeHealthy } from './probe';
import { runCli } from './program';

/** HealthCheckRequest.service (field 1) of a request encoded with short names. */
function requestedService(request: Buffer): string {
  return request.length === 0 ? '' : request.subarray(2, 2 + request[1]!).toString('utf8');
}

type HealthMode = { readonly serving: Record<string, number> } | 'none';

/** A real grpc-js server on `host` whose Health/Check answers from `mode` (no health service: 'none'). */
async function healthServer(
  host: string,
  mode: HealthMode,
): Promise<grpc.Server & { port: number }> {
  const server = new grpc.Server();
  if (mode !== 'none') {
    server.register<Buffer, Buffer>(
      '/grpc.health.v1.Health/Check',
      (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const status = mode.serving[requestedService(call.request)];
        if (status === undefined) {
          callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        } else {
          callback(null, Buffer.from([0x08, status]));
        }
      },
      (response: Buffer) => response,
      (request: Buffer) => request,
      'unary',
    );
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (error, p) =>
      error ? reject(error) : resolve(p),
    ),
  );
  return Object.assign(server, { port });
}

/** A loopback port nobody listens on (bound, then released). */
async function closedPort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

function memoryIo(
  files: Readonly<Record<string, string>> = {},
): CliIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stderrIsTTY: false,
    writeOut: (text: string) => {
      io.out += text;
    },
    writeErr: (text: string) => {
      io.err += text;
    },
    readStdin: () => Promise.resolve(''),
    readFile: (path: string) =>
      files[path] === undefined
        ? Promise.reject(Object.assign(new Error('ENOENT'), { code: 'ENOENT' }))
        : Promise.resolve(files[path]),
  };
  return io;
}

function openSockets(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('probeEndpoint against real grpc-js servers on 127.0.0.x', () => {
  const servers: grpc.Server[] = [];
  let serving = '';
  let notServing = '';
  let noHealth = '';
  let nothing = '';

  before(async () => {
    const a = await healthServer('127.0.0.2', { serving: { '': 1, 'shop.Cart': 2 } });
    const b = await healthServer('127.0.0.3', { serving: { '': 2 } });
    const c = await healthServer('127.0.0.4', 'none');
    servers.push(a, b, c);
    serving = `127.0.0.2:${a.port}`;
    notServing = `127.0.0.3:${b.port}`;
    noHealth = `127.0.0.4:${c.port}`;
    nothing = `127.0.0.5:${await closedPort('127.0.0.5')}`;
  });
  after(() => {
    for (const server of servers) server.forceShutdown();
  });

  const options = { timeoutMs: 3_000, healthService: '' };

  test('SERVING: READY, with both latencies', async () => {
    const result = await probeEndpoint(serving, options);
    assert.equal(result.state, 'READY');
    assert.equal(result.health, 'SERVING');
    assert.equal(result.error, null);
    assert.ok(result.connectMs !== null && result.connectMs >= 0);
    assert.ok(result.checkMs !== null && result.checkMs >= 0);
    assert.ok(probeHealthy(result));
  });

  test('NOT_SERVING: READY but not healthy', async () => {
    const result = await probeEndpoint(notServing, options);
    assert.deepEqual([result.state, result.health, result.error], ['READY', 'NOT_SERVING', null]);
    assert.equal(probeHealthy(result), false);
  });

  test('the service name is asked for; one the server does not know is SERVICE_UNKNOWN', async () => {
    const named = await probeEndpoint(serving, { ...options, healthService: 'shop.Cart' });
    assert.equal(named.health, 'NOT_SERVING');
    const unknown = await probeEndpoint(serving, { ...options, healthService: 'shop.Nope' });
    assert.equal(unknown.health, 'SERVICE_UNKNOWN');
    assert.equal(probeHealthy(unknown), false);
  });

  test('no health service: UNIMPLEMENTED, counted healthy as a balancer counts it', async () => {
    const result = await probeEndpoint(noHealth, options);
    assert.deepEqual([result.state, result.health], ['READY', 'UNIMPLEMENTED']);
    assert.ok(probeHealthy(result));
  });

  test('nothing listening: TRANSIENT_FAILURE with the reason, well before the timeout', async () => {
    const started = Date.now();
    const result = await probeEndpoint(nothing, { ...options, timeoutMs: 20_000 });
    assert.equal(result.state, 'TRANSIENT_FAILURE');
    assert.equal(result.health, null);
    assert.equal(result.connectMs, null);
    assert.equal(result.error, `connect ECONNREFUSED ${nothing}`);
    assert.ok(Date.now() - started < 10_000);
  });

  test('a listener that never speaks HTTP/2: still CONNECTING at --probe-timeout, and no longer', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.6', resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const started = Date.now();
      const result = await probeEndpoint(`127.0.0.6:${port}`, { ...options, timeoutMs: 500 });
      assert.deepEqual(result, {
        state: 'CONNECTING',
        health: null,
        connectMs: null,
        checkMs: null,
        error: 'no connection within 0.5 s (still CONNECTING)',
      });
      assert.ok(Date.now() - started < 5_000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  test('grpc-lb endpoints --probe: the table, the reasons, exit 3, and every socket closed', async () => {
    const baseline = openSockets();
    const io = memoryIo();
    const target = `static:///${serving},${notServing},${noHealth},${nothing}`;
    const code = await runCli(['endpoints', target, '--probe'], io);
    assert.equal(code, 3);
    const lines = io.out.split('\n');
    assert.match(
      lines[0]!,
      /^ADDRESS +WEIGHT +ZONE +SOURCE +LABELS +STATE +HEALTH +CONNECT +CHECK$/,
    );
    const row = (address: string) => lines.find((l) => l.startsWith(`${address} `)) ?? '';
    assert.match(row(serving), / READY +SERVING +\d+\.\d ms +\d+\.\d ms$/);
    assert.match(row(notServing), / READY +NOT_SERVING +\d+\.\d ms +\d+\.\d ms$/);
    assert.match(row(noHealth), / READY +UNIMPLEMENTED +\d+\.\d ms +\d+\.\d ms$/);
    assert.match(row(nothing), / TRANSIENT_FAILURE +- +- +-$/);
    assert.ok(
      lines.includes(`${nothing}: TRANSIENT_FAILURE: connect ECONNREFUSED ${nothing}`),
      io.out,
    );
    assert.equal(io.err, 'error: 2 of 4 endpoints cannot take calls (not READY, or not SERVING)\n');
    await until(() => openSockets() <= baseline, 'the probes’ sockets are closed');
  });

  test('--json: the probe as fields of each endpoint, and a summary', async () => {
    const io = memoryIo();
    const code = await runCli(
      ['endpoints', `static:///${serving},${noHealth}`, '--probe', '--json'],
      io,
    );
    assert.equal(code, 0);
    assert.equal(io.err, '');
    const json = JSON.parse(io.out) as {
      endpoints: { address: string; probe: Record<string, unknown> }[];
      probe: Record<string, unknown>;
    };
    const probes = new Map(json.endpoints.map((e) => [e.address, e.probe]));
    assert.deepEqual(
      { ...probes.get(serving), connectMs: 0, checkMs: 0 },
      { state: 'READY', health: 'SERVING', connectMs: 0, checkMs: 0, error: null },
    );
    assert.equal(probes.get(noHealth)?.health, 'UNIMPLEMENTED');
    assert.deepEqual(json.probe, {
      healthService: '',
      timeoutSeconds: 3,
      endpoints: 2,
      healthy: 2,
    });
  });

  test('--health-service is the name asked for', async () => {
    const io = memoryIo();
    const code = await runCli(
      ['endpoints', `static:///${serving}`, '--probe', '--health-service', 'shop.Cart', '--json'],
      io,
    );
    assert.equal(code, 3);
    const json = JSON.parse(io.out) as { endpoints: { probe: { health: string } }[] };
    assert.equal(json.endpoints[0]!.probe.health, 'NOT_SERVING');
  });
});

describe('grpc-lb endpoints --probe: options', () => {
  test('probe options need --probe, and --probe cannot watch (exit 2)', async () => {
    for (const args of [
      ['--health-service', 'x'],
      ['--probe-timeout', '1'],
      ['--probe-concurrency', '4'],
      ['--probe-tls'],
      ['--probe-cacert', 'ca.pem'],
      ['--probe-server-name', 'hello.svc'],
      ['--probe', '--watch'],
    ]) {
      const io = memoryIo();
      assert.equal(await runCli(['endpoints', 'static:///127.0.0.2:1', ...args], io), 2, args[0]);
      assert.match(io.err, /^error: .*(only with --probe|cannot be used with).*\n$/);
    }
  });

  test('--probe-concurrency must be a whole number from 1 to 256 (exit 2)', async () => {
    for (const value of ['0', '257', '1.5', 'many']) {
      const io = memoryIo();
      const args = ['endpoints', 'static:///127.0.0.2:1', '--probe', '--probe-concurrency', value];
      assert.equal(await runCli(args, io), 2, value);
      assert.match(io.err, /^error: option '--probe-concurrency <n>' argument .* is invalid/);
    }
  });
});

describe('grpc-lb endpoints --probe: the TLS options', () => {
  test('a --probe-cacert that cannot be read, or holds no certificate: exit 1 naming the flag', async () => {
    const cases = [
      [
        '/nonexistent/ca.pem',
        'cannot read the CA certificate /nonexistent/ca.pem (--probe-cacert): no such file',
      ],
      ['garbage.pem', 'the CA certificate garbage.pem (--probe-cacert) is not PEM certificates'],
      ['broken.pem', 'the CA certificate broken.pem (--probe-cacert) is not PEM certificates'],
      ['empty.pem', 'the CA certificate empty.pem (--probe-cacert) is not PEM certificates'],
    ] as const;
    for (const [file, message] of cases) {
      const io = memoryIo({
        'garbage.pem': 'not a certificate\n',
        'empty.pem': '',
        'broken.pem': '-----BEGIN CERTIFICATE-----\nbm90IGRlcg==\n-----END CERTIFICATE-----\n',
      });
      const args = ['endpoints', 'static:///127.0.0.2:1', '--probe', '--probe-cacert', file];
      assert.equal(await runCli(args, io), 1, file);
      assert.equal(io.err, `error: ${message}\n`);
      assert.equal(io.out, '', 'nothing probed');
    }
  });
});

describe('mapLimited', () => {
  test('never runs more than the limit at once, and keeps the order', async () => {
    let running = 0;
    let most = 0;
    const seen: number[] = [];
    const results = await mapLimited(
      Array.from({ length: 50 }, (_v, i) => i),
      4,
      async (i) => {
        running++;
        most = Math.max(most, running);
        await new Promise((resolve) => setImmediate(resolve));
        running--;
        return i * 2;
      },
      (count) => seen.push(count),
    );
    assert.equal(most, 4);
    assert.deepEqual(
      results,
      Array.from({ length: 50 }, (_v, i) => i * 2),
    );
    assert.deepEqual(
      seen,
      Array.from({ length: 50 }, (_v, i) => i + 1),
    );
  });
});
