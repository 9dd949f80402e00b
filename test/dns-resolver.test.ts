/**
 * @grpc-lb/resolver-dns against a real DNS server (bind9, changed live with nsupdate), through
 * the resolver contract: what each answer turns into, and when the resolver looks again.
 */
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import * as dnsPacket from 'dns-packet';
import {
  parseTargetUri,
  type EndpointResolver,
  type Resolution,
  type ResolutionSink,
} from '@grpc-lb/core';
import {
  createDnsResolverFactory,
  dnsLbResolverFactory,
  DnsResolutionError,
  type DnsResolverFactory,
} from '@grpc-lb/resolver-dns';
import { waitFor } from './harness';
import { printBind9LogsOnFailure, requireBind9, startBind9, type Bind9 } from './support/bind9';

const RECORDS = [
  'api 1 IN A 127.0.0.2',
  'api 1 IN A 127.0.0.3',
  'both 1 IN A 127.0.0.2',
  'both 1 IN AAAA ::1',
  'alias 1 IN CNAME api',
  'hello.ns 1 IN A 127.0.0.5',
  '_grpc._tcp.srv 1 IN SRV 0 10 5001 a.svc.test.',
  '_grpc._tcp.srv 1 IN SRV 0 30 5002 b.svc.test.',
  '_grpc._tcp.srv 1 IN SRV 1 50 5003 c.svc.test.',
  '_grpc._tcp.srv 1 IN SRV 0 5 5004 nowhere.svc.test.',
  'a 1 IN A 127.0.0.2',
  'b 1 IN A 127.0.0.3',
  'c 1 IN A 127.0.0.4',
  '_grpc._tcp.fallback 1 IN SRV 0 10 6001 dead.svc.test.',
  '_grpc._tcp.fallback 1 IN SRV 0 10 6002 sinkhole.svc.test.',
  '_grpc._tcp.fallback 1 IN SRV 1 10 6003 c.svc.test.',
  '_grpc._tcp.fallback 1 IN SRV 2 10 6004 a.svc.test.',
  'sinkhole 1 IN A 0.0.0.0',
  'sinkhole 1 IN AAAA ::',
  'mixed 1 IN A 0.0.0.0',
  'mixed 1 IN A 127.0.0.2',
  'mixed 1 IN A 224.0.0.1',
  'mixed 1 IN A 255.255.255.255',
  'mixed 1 IN AAAA ::1',
  'mixed 1 IN AAAA ff02::1',
  'mixed 1 IN AAAA fe80::1',
  'short 0 IN A 127.0.0.2',
  'mid 2 IN A 127.0.0.2',
  'long 3600 IN A 127.0.0.2',
  ...Array.from({ length: 60 }, (_, i) => `big 1 IN A 127.0.1.${i + 1}`),
];

let shared: Promise<Bind9> | undefined;
after(async () => {
  if (shared) await (await shared).dispose();
});

/** The file's bind9, started on first use; undefined when the test was skipped (no bind9). */
async function bind9(t: TestContext): Promise<Bind9 | undefined> {
  if (!requireBind9(t)) return undefined;
  shared ??= startBind9({ records: RECORDS });
  return shared;
}

type Event =
  | { at: number; kind: 'update'; resolution: Resolution }
  | { at: number; kind: 'error'; error: Error }
  | { at: number; kind: 'warn'; message: string };

class Sink implements ResolutionSink {
  readonly events: Event[] = [];
  update(resolution: Resolution): void {
    this.events.push({ at: performance.now(), kind: 'update', resolution });
  }
  error(error: Error): void {
    this.events.push({ at: performance.now(), kind: 'error', error });
  }
  warn(message: string): void {
    this.events.push({ at: performance.now(), kind: 'warn', message });
  }
  updates(since = 0): Extract<Event, { kind: 'update' }>[] {
    return this.events.filter(
      (e): e is Extract<Event, { kind: 'update' }> => e.kind === 'update' && e.at >= since,
    );
  }
  errors(since = 0): Extract<Event, { kind: 'error' }>[] {
    return this.events.filter(
      (e): e is Extract<Event, { kind: 'error' }> => e.kind === 'error' && e.at >= since,
    );
  }
  /** The first update at or after `since` whose endpoints satisfy `accept`. */
  async nextUpdate(
    accept: (hosts: string[]) => boolean,
    what: string,
    since = 0,
    timeoutMs = 10_000,
  ): Promise<Extract<Event, { kind: 'update' }>> {
    return waitFor(() => this.updates(since).find((e) => accept(hostsOf(e.resolution))), {
      timeoutMs,
      message: what,
    });
  }
}

function hostsOf(resolution: Resolution): string[] {
  return resolution.endpoints
    .map((e) => `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`)
    .sort();
}

function open(
  target: string,
  factory: DnsResolverFactory = dnsLbResolverFactory,
  channelOptions: Record<string, unknown> = {},
): { sink: Sink; resolver: EndpointResolver; [Symbol.dispose](): void } {
  const parsed = factory.parseTarget(parseTargetUri(target), target);
  const resolver = factory.create(parsed, { target, channelOptions });
  const sink = new Sink();
  resolver.start(sink);
  return { sink, resolver, [Symbol.dispose]: () => resolver.stop() };
}

/** A UDP responder that answers every query with garbage, a wrong id and a wrong question. */
async function malformedResponder(): Promise<{ port: number; queries: number; close(): void }> {
  const socket = dgram.createSocket('udp4');
  const state = { port: 0, queries: 0, close: () => socket.close() };
  socket.on('message', (message, rinfo) => {
    state.queries++;
    const reply = (buf: Buffer): void => socket.send(buf, rinfo.port, rinfo.address);
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return;
    }
    const good = (overrides: Partial<dnsPacket.Packet>): Buffer =>
      dnsPacket.encode({
        type: 'response',
        id: query.id ?? 0,
        questions: query.questions ?? [],
        answers: [{ name: query.questions![0]!.name, type: 'A', ttl: 1, data: '10.6.6.6' }],
        ...overrides,
      });
    reply(Buffer.from('\u0000\u0001not dns at all, just bytes'));
    reply(good({ id: ((query.id ?? 0) + 1) & 0xffff }));
    reply(good({ questions: [{ name: 'evil.example', type: 'A', class: 'IN' }] }));
    const cut = good({});
    reply(cut.subarray(0, cut.length - 3));
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  state.port = socket.address().port;
  return state;
}

/**
 * A forwarder in front of bind9 that answers every query of `failing` type with SERVFAIL and
 * relays the others to bind9 unchanged.
 */
async function failingTypeForwarder(
  upstreamPort: number,
  failing: string,
): Promise<{ port: number; failed: number; close(): void }> {
  const socket = dgram.createSocket('udp4');
  const state = { port: 0, failed: 0, close: () => socket.close() };
  socket.on('message', (message, rinfo) => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return;
    }
    if (query.questions?.[0]?.type === failing) {
      state.failed++;
      const reply = dnsPacket.encode({
        type: 'response',
        id: query.id ?? 0,
        flags: 2, // RCODE SERVFAIL
        questions: query.questions,
      });
      socket.send(reply, rinfo.port, rinfo.address);
      return;
    }
    const upstream = dgram.createSocket('udp4');
    const timer = setTimeout(() => upstream.close(), 2_000);
    upstream.on('message', (answer) => {
      clearTimeout(timer);
      upstream.close();
      socket.send(answer, rinfo.port, rinfo.address);
    });
    upstream.send(message, upstreamPort, '127.0.0.1');
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  state.port = socket.address().port;
  return state;
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

function tempResolvConf(text: string): { path: string; write(text: string): void; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'grpc-lb-resolv-'));
  const path = join(dir, 'resolv.conf');
  writeFileSync(path, text);
  return {
    path,
    write: (next) => writeFileSync(path, next),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

describe('DNS resolver against bind9', () => {
  test('A and AAAA together in one set; family narrows it; a CNAME is followed', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    await printBind9LogsOnFailure(dns, async () => {
      for (const [target, expected] of [
        [`dns+lb://${dns.address}/both.svc.test:50051`, ['127.0.0.2:50051', '[::1]:50051']],
        [`dns+lb://${dns.address}/both.svc.test:50051?family=ipv4`, ['127.0.0.2:50051']],
        [`dns+lb://[::1]:${dns.port}/both.svc.test:50051?family=ipv6`, ['[::1]:50051']],
        [`dns+lb://${dns.address}/alias.svc.test:7`, ['127.0.0.2:7', '127.0.0.3:7']],
      ] as const) {
        using r = open(target);
        const update = await r.sink.nextUpdate(() => true, `an answer for ${target}`);
        assert.deepEqual(hostsOf(update.resolution), [...expected].sort(), target);
      }
    });
  });

  test('a new A record is seen within the interval, a removed one is dropped', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    await printBind9LogsOnFailure(dns, async () => {
      await dns.update('add scale.svc.test. 1 A 127.0.0.2');
      using r = open(`dns+lb://${dns.address}/scale.svc.test:1?interval=300ms&min_interval=100ms`);
      await r.sink.nextUpdate((h) => h.length === 1, 'the first answer');
      const added = performance.now();
      await dns.update('add scale.svc.test. 1 A 127.0.0.3');
      const seen = await r.sink.nextUpdate((h) => h.length === 2, 'the new record', added);
      assert.ok(seen.at - added < 300 + 700, `seen after ${Math.round(seen.at - added)} ms`);
      const removed = performance.now();
      await dns.update('delete scale.svc.test. A 127.0.0.2');
      const gone = await r.sink.nextUpdate(
        (h) => h.length === 1 && h[0] === '127.0.0.3:1',
        'the removal',
        removed,
      );
      assert.ok(gone.at - removed < 300 + 700, `dropped after ${Math.round(gone.at - removed)} ms`);
    });
  });

  test('NXDOMAIN is an empty set (not an error), and records that appear are found', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    await printBind9LogsOnFailure(dns, async () => {
      using r = open(`dns+lb://${dns.address}/later.svc.test:1?interval=200ms&min_interval=100ms`);
      const empty = await r.sink.nextUpdate((h) => h.length === 0, 'an empty set');
      assert.match(empty.resolution.note ?? '', /later.svc.test: NXDOMAIN via 127.0.0.1:\d+/);
      assert.equal(r.sink.errors().length, 0);
      await dns.update('add later.svc.test. 1 A 127.0.0.9');
      await r.sink.nextUpdate((h) => h[0] === '127.0.0.9:1', 'the record that appeared');
    });
  });

  test('SRV: ports and weights from the lowest-priority records; a target without address is skipped', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    await printBind9LogsOnFailure(dns, async () => {
      for (const target of [
        `dns+lb://${dns.address}/_grpc._tcp.srv.svc.test`,
        `dns+lb://${dns.address}/srv.svc.test?srv=grpc&family=ipv4`,
      ]) {
        using r = open(target);
        const update = await r.sink.nextUpdate(() => true, `SRV answer for ${target}`);
        assert.deepEqual(
          [...update.resolution.endpoints]
            .map((e) => ({ host: e.host, port: e.port, weight: e.weight }))
            .sort((a, b) => a.port - b.port),
          [
            { host: '127.0.0.2', port: 5001, weight: 10 },
            { host: '127.0.0.3', port: 5002, weight: 30 },
          ],
          target,
        );
        assert.match(
          update.resolution.note ?? '',
          /from DNS SRV _grpc._tcp.srv.svc.test \(3 records, priority 0\)/,
        );
        const warning = r.sink.events.find((e) => e.kind === 'warn');
        assert.match(
          warning?.kind === 'warn' ? warning.message : '',
          /target\(s\) nowhere.svc.test have no A(\/AAAA)? records; skipped/,
        );
      }
    });
  });

  test('SRV: no target of the best priority resolves (no address, only 0.0.0.0): the next priority is used (RFC 2782)', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    await printBind9LogsOnFailure(dns, async () => {
      using r = open(`dns+lb://${dns.address}/_grpc._tcp.fallback.svc.test`);
      const update = await r.sink.nextUpdate(() => true, 'the SRV answer');
      assert.deepEqual(hostsOf(update.resolution), ['127.0.0.4:6003']);
      assert.match(update.resolution.note ?? '', /\(1 record, priority 1\)/);
      const warnings = r.sink.events.flatMap((e) => (e.kind === 'warn' ? [e.message] : []));
      const fallback = warnings.find((w) => w.includes('no target of priority 0 resolved'));
      assert.ok(fallback, JSON.stringify(warnings));
      assert.match(fallback, /; using priority 1$/);
      assert.match(fallback, /dead.svc.test \(no A\/AAAA records\)/);
      assert.match(
        fallback,
        /sinkhole.svc.test \(only unusable addresses: 0.0.0.0 \(unspecified\), :: \(unspecified\)\)/,
      );
    });
  });

  test('family=any: AAAA answered SERVFAIL while A answered: the A records are used, with one warning', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    const forwarder = await failingTypeForwarder(dns.port, 'AAAA');
    try {
      await printBind9LogsOnFailure(dns, async () => {
        using r = open(
          `dns+lb://127.0.0.1:${forwarder.port}/both.svc.test:1?interval=200ms&min_interval=100ms&attempts=1`,
        );
        await waitFor(() => r.sink.updates().length >= 3, {
          timeoutMs: 10_000,
          message: '3 answers through the forwarder',
        });
        for (const update of r.sink.updates()) {
          assert.deepEqual(hostsOf(update.resolution), ['127.0.0.2:1']);
        }
        assert.equal(r.sink.errors().length, 0);
        const warnings = r.sink.events.filter((e) => e.kind === 'warn');
        assert.equal(warnings.length, 1, JSON.stringify(warnings));
        assert.match(
          warnings[0]?.kind === 'warn' ? warnings[0].message : '',
          /DNS AAAA both.svc.test failed; using the A records alone: .*SERVFAIL/,
        );
        assert.ok(forwarder.failed >= 3);
      });
    } finally {
      forwarder.close();
    }
  });

  test('unusable answers (0.0.0.0, ::, broadcast, multicast, link-local) never become endpoints; each is warned about once', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    await printBind9LogsOnFailure(dns, async () => {
      using r = open(`dns+lb://${dns.address}/mixed.svc.test:1?interval=200ms&min_interval=100ms`);
      await waitFor(() => r.sink.updates().length >= 3, {
        timeoutMs: 10_000,
        message: '3 answers for mixed.svc.test',
      });
      // What the resolver hands the channel is all it will ever connect to.
      for (const update of r.sink.updates()) {
        assert.deepEqual(hostsOf(update.resolution), ['127.0.0.2:1', '[::1]:1']);
      }
      const warnings = r.sink.events.flatMap((e) => (e.kind === 'warn' ? [e.message] : []));
      assert.deepEqual(
        warnings.map((w) => /unusable address (\S+) \((.*)\)$/.exec(w)?.slice(1).join(' ')).sort(),
        [
          '0.0.0.0 unspecified',
          '224.0.0.1 multicast',
          '255.255.255.255 broadcast',
          'fe80::1 link-local, no interface',
          'ff02::1 multicast',
        ],
        'one warning per skipped address, not one per lookup',
      );

      // A name answering only unusable addresses: an error, never an endpoint.
      using only = open(`dns+lb://${dns.address}/sinkhole.svc.test:1`);
      const error = await waitFor(() => only.sink.errors()[0], {
        timeoutMs: 10_000,
        message: 'an error for sinkhole.svc.test',
      });
      assert.match(
        error.error.message,
        /DNS A\/AAAA sinkhole.svc.test answered only unusable addresses: 0.0.0.0 \(unspecified\), :: \(unspecified\)/,
      );
      assert.equal(only.sink.updates().length, 0);
    });
  });

  test('a name whose records turn into 0.0.0.0 keeps its last good set (errors, no update)', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    await printBind9LogsOnFailure(dns, async () => {
      await dns.update('add turns.svc.test. 1 A 127.0.0.2');
      using r = open(`dns+lb://${dns.address}/turns.svc.test:1?interval=200ms&min_interval=100ms`);
      await r.sink.nextUpdate((h) => h.length === 1, 'the first answer');
      const turned = performance.now();
      await dns.update('delete turns.svc.test. A', 'add turns.svc.test. 1 A 0.0.0.0');
      await waitFor(() => r.sink.errors(turned).length >= 3, {
        timeoutMs: 10_000,
        message: '3 errors once the record is 0.0.0.0',
      });
      const after = r.sink.updates(turned).map((e) => hostsOf(e.resolution));
      assert.ok(
        after.every((h) => h.length === 1 && h[0] === '127.0.0.2:1'),
        `only the last good set, never 0.0.0.0 or an empty set: ${JSON.stringify(after)}`,
      );
      assert.match(r.sink.errors(turned).at(-1)!.error.message, /only unusable addresses: 0.0.0.0/);
    });
  });

  test('a deleted name is held down: the set is kept (errors) for 5 s of negative answers, then emptied', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    await printBind9LogsOnFailure(dns, async () => {
      await dns.update('add leaving.svc.test. 1 A 127.0.0.7');
      using r = open(
        `dns+lb://${dns.address}/leaving.svc.test:1?interval=300ms&min_interval=100ms`,
      );
      await r.sink.nextUpdate((h) => h.length === 1, 'the first answer');
      const deleted = performance.now();
      await dns.update('delete leaving.svc.test. A');
      const empty = await r.sink.nextUpdate(
        (h) => h.length === 0,
        'the empty set',
        deleted,
        15_000,
      );
      const held = r.sink.errors(deleted).filter((e) => e.at < empty.at);
      assert.ok(held.length >= 2, `errors while held down: ${held.length}`);
      assert.match(
        held[0]!.error.message,
        /leaving.svc.test: NXDOMAIN via .*; the last endpoints are kept until the name has been missing for 2 answers and 5s \(1 so far/,
      );
      const heldFor = empty.at - held[0]!.at;
      assert.ok(
        heldFor >= 4_900 && heldFor < 5_000 + 2_000,
        `emptied ${Math.round(heldFor)} ms after the first NXDOMAIN`,
      );
      assert.ok(
        r.sink
          .updates(deleted)
          .filter((e) => e.at < empty.at)
          .every((e) => e.resolution.endpoints.length === 1),
        'nothing but the last set before that',
      );
    });
  });

  test('an answer over 512 bytes (60 A records) arrives over TCP', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    await printBind9LogsOnFailure(dns, async () => {
      using r = open(`dns+lb://${dns.address}/big.svc.test:1?family=ipv4`);
      const update = await r.sink.nextUpdate(() => true, 'the big answer');
      assert.equal(update.resolution.endpoints.length, 60);
      assert.match(update.resolution.note ?? '', /over TCP/);
    });
  });

  test('ttl=true: the next lookup follows the TTL, clamped to min_interval and max_interval', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    await printBind9LogsOnFailure(dns, async () => {
      const cases = [
        ['short', 300, 'TTL 0 → the floor, 300 ms'],
        ['mid', 2_000, 'TTL 2 s'],
        ['long', 1_000, 'TTL 1 h → the ceiling, 1 s'],
      ] as const;
      const resolvers = cases.map(([name]) =>
        open(
          `dns+lb://${dns.address}/${name}.svc.test:1?ttl=true&interval=30s&min_interval=300ms&max_interval=1s`.replace(
            'max_interval=1s',
            name === 'mid' ? 'max_interval=10s' : 'max_interval=1s',
          ),
        ),
      );
      try {
        for (const [i, [, expected, what]] of cases.entries()) {
          const sink = resolvers[i]!.sink;
          await waitFor(() => sink.updates().length >= 2, { timeoutMs: 10_000, message: what });
          const [first, second] = sink.updates();
          const gap = second!.at - first!.at;
          // The floor must stay well under the ceiling's 1 s; the others allow for a loaded machine.
          const slack = expected === 300 ? 600 : 1_500;
          assert.ok(
            gap >= expected - 100 && gap <= expected + slack,
            `${what}: ${Math.round(gap)} ms`,
          );
        }
      } finally {
        for (const r of resolvers) r.resolver.stop();
      }
    });
  });

  test('bind9 stopped: errors and never an empty set; bind9 back: answers again', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    await printBind9LogsOnFailure(dns, async () => {
      using r = open(
        `dns+lb://${dns.address}/api.svc.test:1?interval=200ms&min_interval=100ms&timeout=200ms&attempts=1`,
      );
      await r.sink.nextUpdate((h) => h.length === 2, 'the first answer');
      let stopped = performance.now();
      try {
        await dns.stop();
        // An answer sent just before named exited may still arrive: count from its exit.
        stopped = performance.now();
        await waitFor(() => r.sink.errors(stopped).length >= 2, {
          timeoutMs: 10_000,
          message: 'errors while bind9 is down',
        });
        const error = r.sink.errors(stopped)[0]!.error;
        assert.ok(error instanceof DnsResolutionError, String(error));
        assert.match(
          error.message,
          /DNS A(AAA)? query for api.svc.test failed: .*(ECONNREFUSED|no answer)/,
        );
      } finally {
        await dns.start();
      }
      const restarted = performance.now();
      const outage = r.sink.updates(stopped).filter((e) => e.at < restarted);
      assert.ok(
        outage.every((e) => hostsOf(e.resolution).length === 2),
        `while DNS was down, never anything but the last good set: ${JSON.stringify(outage)}`,
      );
      await r.sink.nextUpdate((h) => h.length === 2, 'an answer after the restart', restarted);
    });
  });

  test('a malformed responder (garbage, wrong id, wrong question, cut records) never crashes and never empties the set', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    const bad = await malformedResponder();
    const conf = tempResolvConf(`nameserver ${dns.address}\n`);
    try {
      await printBind9LogsOnFailure(dns, async () => {
        // Alone: each query times out with the reasons every datagram was ignored.
        {
          using r = open(`dns+lb://127.0.0.1:${bad.port}/api.svc.test:1?timeout=200ms&attempts=1`);
          const event = await waitFor(() => r.sink.errors()[0], {
            timeoutMs: 10_000,
            message: 'an error from the malformed responder',
          });
          assert.match(
            event.error.message,
            /ignored 4 unusable answer\(s\): .*shorter|does not match|question was/,
          );
          assert.equal(r.sink.updates().length, 0);
        }
        // Before a good server in resolv.conf: its junk is ignored and the good answer is used.
        {
          const factory = createDnsResolverFactory({
            scheme: 'dns+junkfirst',
            resolvConfPath: conf.path,
            hostsPath: false,
          });
          conf.write(
            `nameserver 127.0.0.1:${bad.port}\nnameserver ${dns.address}\noptions timeout:1 attempts:1\n`,
          );
          using r = open('dns+junkfirst:///api.svc.test.:1', factory);
          const update = await r.sink.nextUpdate((h) => h.length === 2, 'the good server’s answer');
          assert.match(update.resolution.note ?? '', new RegExp(`via ${dns.address}`));
        }
        // After good answers, the nameserver turns bad: only errors, the set is never emptied.
        {
          conf.write(`nameserver ${dns.address}\n`);
          const factory = createDnsResolverFactory({
            scheme: 'dns+turnsbad',
            resolvConfPath: conf.path,
            hostsPath: false,
            intervalMs: 200,
            minIntervalMs: 100,
            timeoutMs: 150,
            attempts: 1,
          });
          using r = open('dns+turnsbad:///api.svc.test.:1', factory);
          await r.sink.nextUpdate((h) => h.length === 2, 'the first answer');
          const turned = performance.now();
          conf.write(`nameserver 127.0.0.1:${bad.port}\n`);
          await waitFor(() => r.sink.errors(turned).length >= 3, {
            timeoutMs: 10_000,
            message: '3 errors from the bad nameserver',
          });
          const emptied = r.sink.updates(turned).filter((e) => e.resolution.endpoints.length === 0);
          assert.deepEqual(emptied, []);
          assert.ok(bad.queries >= 3);
        }
      });
    } finally {
      bad.close();
      conf.remove();
    }
  });

  test('search domains and ndots from an injected resolv.conf: hello.ns finds hello.ns.svc.test', async (t) => {
    const dns = await bind9(t);
    if (!dns) return;
    const conf = tempResolvConf(
      `search ns.svc.test svc.test\nnameserver ${dns.address}\noptions ndots:5\n`,
    );
    try {
      await printBind9LogsOnFailure(dns, async () => {
        const factory = createDnsResolverFactory({
          scheme: 'dns+search',
          resolvConfPath: conf.path,
          hostsPath: false,
        });
        const cases: [string, string[], RegExp][] = [
          [
            'dns+search:///hello.ns:50051',
            ['127.0.0.5:50051'],
            /DNS A\/AAAA hello.ns.svc.test via/,
          ],
          ['dns+search:///api:1', ['127.0.0.2:1', '127.0.0.3:1'], /DNS A\/AAAA api.svc.test via/],
          [
            'dns+search:///_grpc._tcp.srv?family=ipv4',
            ['127.0.0.2:5001', '127.0.0.3:5002'],
            /SRV _grpc._tcp.srv.svc.test/,
          ],
          ['dns+search:///hello.ns.:50051', [], /hello.ns: NXDOMAIN/],
        ];
        for (const [target, expected, note] of cases) {
          using r = open(target, factory);
          const update = await r.sink.nextUpdate(() => true, `an answer for ${target}`);
          assert.deepEqual(hostsOf(update.resolution), expected, target);
          assert.match(update.resolution.note ?? '', note, target);
        }
      });
    } finally {
      conf.remove();
    }
  });

  test('stop() with a query in flight leaves no socket open and nothing reaches the sink', async (t) => {
    if (!requireBind9(t)) return;
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    try {
      const before = openSockets();
      const r = open(`dns+lb://127.0.0.1:${silent.address().port}/api.svc.test:1?timeout=10s`);
      await waitFor(() => openSockets() > before, {
        timeoutMs: 5_000,
        message: 'the query socket',
      });
      r.resolver.stop();
      assert.equal(openSockets(), before);
      assert.equal(r.sink.events.length, 0);
    } finally {
      silent.close();
    }
  });
});
