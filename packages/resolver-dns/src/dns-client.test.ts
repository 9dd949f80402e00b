import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { readdirSync, readlinkSync } from 'node:fs';
import * as net from 'node:net';
import { after, describe, test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { QueryAbortedError, queryDns, type QueryOptions } from './dns-client';
import { DnsResolutionError } from './errors';

type Reply = (query: dnsPacket.DecodedPacket, send: (packet: Buffer) => void) => void;

interface TestServer {
  readonly port: number;
  readonly queries: dnsPacket.DecodedPacket[];
  close(): Promise<void>;
}

const servers: TestServer[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

function answer(query: dnsPacket.DecodedPacket, extra: Partial<dnsPacket.Packet> = {}): Buffer {
  return dnsPacket.encode({
    type: 'response',
    id: query.id ?? 0,
    flags: 0,
    questions: query.questions ?? [],
    answers: [{ name: query.questions![0]!.name, type: 'A', ttl: 5, data: '127.0.0.2' }],
    ...extra,
  });
}

/** A UDP DNS responder on 127.0.0.1 (and, with `tcp`, a TCP one on the same port). */
async function startServer(udp: Reply, tcp?: Reply): Promise<TestServer> {
  for (let attempt = 0; ; attempt++) {
    const queries: dnsPacket.DecodedPacket[] = [];
    const tcpServer = tcp
      ? net.createServer((socket) => {
          socket.on('data', (data) => {
            const query = dnsPacket.decode(data.subarray(2));
            queries.push(query);
            tcp(query, (packet) => {
              const framed = Buffer.alloc(2 + packet.length);
              framed.writeUInt16BE(packet.length);
              packet.copy(framed, 2);
              socket.end(framed);
            });
          });
        })
      : undefined;
    let port = 0;
    if (tcpServer) {
      await new Promise<void>((resolve) => tcpServer.listen(0, '127.0.0.1', resolve));
      port = (tcpServer.address() as net.AddressInfo).port;
    }
    const socket = dgram.createSocket('udp4');
    socket.on('message', (message, rinfo) => {
      const query = dnsPacket.decode(message);
      queries.push(query);
      udp(query, (packet) => socket.send(packet, rinfo.port, rinfo.address));
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(port, '127.0.0.1', resolve);
      });
    } catch (error) {
      tcpServer?.close();
      if (attempt < 5) continue;
      throw error;
    }
    const server: TestServer = {
      port: socket.address().port,
      queries,
      close: async () => {
        socket.close();
        if (tcpServer) await new Promise((resolve) => tcpServer.close(resolve));
      },
    };
    servers.push(server);
    return server;
  }
}

/** A port nothing listens on (ICMP port unreachable → ECONNREFUSED on a connected socket). */
async function closedPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(resolve));
  return port;
}

function options(ports: number[], extra: Partial<QueryOptions> = {}): QueryOptions {
  return {
    servers: ports.map((port) => ({ host: '127.0.0.1', port })),
    timeoutMs: 500,
    attempts: 1,
    unref: false,
    ...extra,
  };
}

function openSockets(): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:');
    } catch {
      return false;
    }
  }).length;
}

describe('DNS client over real sockets', () => {
  test('a datagram with the wrong id, or for another question, is ignored; the real answer is used', async () => {
    const server = await startServer((query, send) => {
      send(answer({ ...query, id: ((query.id ?? 0) + 1) & 0xffff }));
      send(answer({ ...query, questions: [{ name: 'evil.example', type: 'A', class: 'IN' }] }));
      send(Buffer.from('garbage'));
      send(answer(query));
    });
    const result = await queryDns({ name: 'api.svc.test', type: 'A' }, options([server.port]));
    assert.equal(result.transport, 'udp');
    assert.equal(result.response.answers.length, 1);
  });

  test('a truncated UDP answer is asked again over TCP', async () => {
    const many = (query: dnsPacket.DecodedPacket): Buffer =>
      answer(query, {
        answers: Array.from({ length: 50 }, (_, i) => ({
          name: query.questions![0]!.name,
          type: 'A' as const,
          ttl: 5,
          data: `127.0.1.${i + 1}`,
        })),
      });
    const server = await startServer(
      (query, send) => send(answer(query, { flags: dnsPacket.TRUNCATED_RESPONSE, answers: [] })),
      (query, send) => send(many(query)),
    );
    const result = await queryDns({ name: 'big.svc.test', type: 'A' }, options([server.port]));
    assert.equal(result.transport, 'tcp');
    assert.equal(result.response.answers.length, 50);
  });

  test('SERVFAIL from the first server: the second answers', async () => {
    const failing = await startServer((query, send) =>
      send(answer(query, { flags: 2, answers: [] })),
    );
    const good = await startServer((query, send) => send(answer(query)));
    const result = await queryDns(
      { name: 'api.svc.test', type: 'A' },
      options([failing.port, good.port]),
    );
    assert.equal(result.server.port, good.port);
    assert.equal(failing.queries.length, 1);
  });

  test('NXDOMAIN is an answer, not a failure', async () => {
    const server = await startServer((query, send) =>
      send(answer(query, { flags: 3, answers: [] })),
    );
    const result = await queryDns({ name: 'nope.svc.test', type: 'A' }, options([server.port]));
    assert.equal(result.response.rcode, 'NXDOMAIN');
  });

  test('silence: every server, every attempt, then an error naming the timeout', async () => {
    const silent = await startServer(() => {});
    const started = performance.now();
    await assert.rejects(
      queryDns(
        { name: 'api.svc.test', type: 'A' },
        options([silent.port], { timeoutMs: 50, attempts: 3 }),
      ),
      (error: unknown) =>
        error instanceof DnsResolutionError &&
        error.code === 'RESOLUTION_FAILED' &&
        /3 rounds\): UDP A api.svc.test to 127.0.0.1:\d+: no answer within 50 ms/.test(
          error.message,
        ),
    );
    assert.equal(silent.queries.length, 3);
    assert.ok(performance.now() - started >= 140);
  });

  test('only garbage: the error says what was ignored', async () => {
    const server = await startServer((query, send) => {
      send(Buffer.from([1, 2, 3]));
      send(answer({ ...query, id: ((query.id ?? 0) + 7) & 0xffff }));
    });
    await assert.rejects(
      queryDns({ name: 'api.svc.test', type: 'A' }, options([server.port], { timeoutMs: 100 })),
      /ignored 2 unusable answer\(s\): 3 bytes is shorter than a DNS header; id \d+ does not match/,
    );
  });

  test('a closed port fails at once (ECONNREFUSED), not after the timeout', async () => {
    const port = await closedPort();
    const started = performance.now();
    await assert.rejects(
      queryDns({ name: 'api.svc.test', type: 'A' }, options([port], { timeoutMs: 5_000 })),
      /ECONNREFUSED/,
    );
    assert.ok(performance.now() - started < 2_000);
  });

  test('an abort ends the query and closes its socket', async () => {
    const silent = await startServer(() => {});
    const before = openSockets();
    const controller = new AbortController();
    const pending = queryDns(
      { name: 'api.svc.test', type: 'A' },
      options([silent.port], { timeoutMs: 10_000, signal: controller.signal }),
    );
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(openSockets(), before + 1);
    controller.abort();
    await assert.rejects(pending, QueryAbortedError);
    assert.equal(openSockets(), before);
  });
});
