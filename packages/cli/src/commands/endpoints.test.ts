import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, test } from 'node:test';

import type { CliIo } from '../io';
import { runCli } from '../program';

function memoryIo(stderrIsTTY: boolean): CliIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stderrIsTTY,
    writeOut: (text: string) => {
      io.out += text;
    },
    writeErr: (text: string) => {
      io.err += text;
    },
    readStdin: () => Promise.resolve(''),
    readFile: () => Promise.reject(Object.assign(new Error('ENOENT'), { code: 'ENOENT' })),
  };
  return io;
}

/** A loopback port nobody listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

describe('grpc-lb endpoints: the progress line', () => {
  test('drawn on a terminal while waiting, then erased before the error line', async () => {
    const port = await closedPort();
    const io = memoryIo(true);
    const code = await runCli(
      ['endpoints', 'consul:///hello', '--consul-addr', `127.0.0.1:${port}`, '--timeout', '0.5'],
      io,
    );
    assert.equal(code, 1);
    const erase = '\r\u001b[K';
    assert.ok(io.err.startsWith(`${erase}resolving consul:///hello… `), JSON.stringify(io.err));
    assert.match(io.err.split(erase)[1]!, /^resolving consul:\/\/\/hello… \d+\.\d s$/);
    const last = io.err.slice(io.err.lastIndexOf(erase) + erase.length);
    assert.match(last, /^error: cannot resolve consul:\/\/\/hello within 0\.5 s: [^\n]*\n$/);
    assert.equal(io.out, '');
  });

  test('never drawn when stderr is not a terminal', async () => {
    const port = await closedPort();
    const io = memoryIo(false);
    const code = await runCli(
      ['endpoints', 'consul:///hello', '--consul-addr', `127.0.0.1:${port}`, '--timeout', '0.5'],
      io,
    );
    assert.equal(code, 1);
    assert.doesNotMatch(io.err, /resolving|\r/);
    assert.match(io.err, /^error: cannot resolve consul:\/\/\/hello within 0\.5 s: .*\n$/);
  });

  test('a resolution that comes at once draws nothing', async () => {
    const io = memoryIo(true);
    assert.equal(await runCli(['endpoints', 'static:///127.0.0.2:50051'], io), 0);
    assert.equal(io.err, '');
    assert.match(
      io.out,
      /^ADDRESS +WEIGHT +ZONE +SOURCE +LABELS\n127\.0\.0\.2:50051 +1 +- +- +-\n/,
    );
  });
});

describe('grpc-lb endpoints: options', () => {
  test('--timeout must be a positive number of seconds (exit 2)', async () => {
    for (const value of ['0', '-1', 'soon', '4000']) {
      const io = memoryIo(false);
      assert.equal(
        await runCli(['endpoints', 'static:///127.0.0.2:1', '--timeout', value], io),
        2,
        value,
      );
      assert.match(io.err, /^error: option '--timeout <seconds>' argument .* is invalid/);
    }
  });

  test('an unknown scheme lists the ones served (exit 2)', async () => {
    const io = memoryIo(false);
    assert.equal(await runCli(['endpoints', 'xds:///hello'], io), 2);
    assert.match(io.err, /unknown scheme "xds:".*static:.*composite:|unknown scheme "xds:".*etcd:/);
  });
});

describe('grpc-lb endpoints: settings', () => {
  test('a kubeconfig that does not exist is reported at once, not after --timeout (exit 1)', async () => {
    const io = memoryIo(false);
    const started = Date.now();
    const code = await runCli(
      [
        'endpoints',
        'k8s:///hello.prod:grpc',
        '--kubeconfig',
        '/nonexistent/kubeconfig',
        '--timeout',
        '60',
      ],
      io,
    );
    assert.equal(code, 1);
    assert.match(io.err, /^error: .*kubeconfig \/nonexistent\/kubeconfig does not exist\n$/);
    assert.ok(Date.now() - started < 30_000, 'well before the 60 s timeout');
  });
});

describe('grpc-lb endpoints: the progress line and --json', () => {
  test('on a terminal, stdout holds the JSON alone; the line was drawn and erased on stderr', async () => {
    // A "Consul agent" that accepts connections and never answers: the composite target waits
    // for it (up to its first-resolution wait), then resolves with the static source alone.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const io = memoryIo(true);
      const target = 'composite:///hello?a=static:///127.0.0.2:50051&b=consul:///hello';
      const code = await runCli(
        ['endpoints', target, '--json', '--consul-addr', `127.0.0.1:${port}`],
        io,
      );
      assert.equal(code, 0, io.err);
      const erase = '\r\u001b[K';
      assert.ok(io.err.startsWith(`${erase}resolving ${target}… `), JSON.stringify(io.err));
      assert.ok(io.err.endsWith(erase), 'erased before anything else is printed');
      assert.doesNotMatch(io.out, /resolving|\r/);
      assert.ok(!io.out.includes('\u001b'), 'no escape sequence on stdout');
      const json = JSON.parse(io.out) as { endpoints: { address: string }[] };
      assert.deepEqual(
        json.endpoints.map((e) => e.address),
        ['127.0.0.2:50051'],
      );
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
