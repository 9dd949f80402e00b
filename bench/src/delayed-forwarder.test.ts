import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import { after, describe, test } from 'node:test';
import { DelayedForwarder, type Wait } from './delayed-forwarder';

/** An echo server on 127.0.0.1 that counts the connections it accepted. */
async function echoServer(): Promise<{ port: number; connections: () => number; close(): void }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    connections: () => connections,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** A Wait that runs nothing by itself: the test fires each delay when it chooses. */
function manualWait() {
  const pending: { ms: number; fn: () => void; cancelled: boolean }[] = [];
  let notify: (() => void) | undefined;
  const wait: Wait = (ms, fn) => {
    const entry = { ms, fn, cancelled: false };
    pending.push(entry);
    notify?.();
    return () => {
      entry.cancelled = true;
    };
  };
  const next = async () => {
    if (pending.length === 0) await new Promise<void>((resolve) => (notify = resolve));
    return pending.shift()!;
  };
  return { wait, next };
}

describe('DelayedForwarder', async () => {
  const upstream = await echoServer();
  after(() => upstream.close());

  test('connects upstream only once the delay has passed, then forwards both ways', async () => {
    const manual = manualWait();
    const forwarder = await DelayedForwarder.start({
      upstream: { host: '127.0.0.1', port: upstream.port },
      delayMs: 25,
      wait: manual.wait,
    });
    const before = upstream.connections();
    const client = net.connect(forwarder.port, forwarder.host);
    await once(client, 'connect');
    client.write('hello');
    const delay = await manual.next();
    assert.equal(delay.ms, 25);
    assert.equal(upstream.connections(), before, 'no upstream connection before the delay');
    const echoed = once(client, 'data');
    delay.fn();
    const [data] = (await echoed) as [Buffer];
    assert.equal(data.toString(), 'hello');
    assert.equal(upstream.connections(), before + 1);
    const closed = once(client, 'close');
    await forwarder.close();
    await closed;
  });

  test('a client gone before the delay cancels it and never reaches the upstream', async () => {
    const manual = manualWait();
    const forwarder = await DelayedForwarder.start({
      upstream: { host: '127.0.0.1', port: upstream.port },
      delayMs: 25,
      wait: manual.wait,
    });
    const before = upstream.connections();
    const client = net.connect(forwarder.port, forwarder.host);
    await once(client, 'connect');
    const delay = await manual.next();
    client.destroy();
    while (!delay.cancelled) await new Promise((resolve) => setImmediate(resolve));
    await forwarder.close();
    assert.equal(upstream.connections(), before);
  });
});
