/**
 * A DNS server (UDP and TCP on one port of 127.0.0.1) that tells the truth or lies on command, for
 * chaos tests of the DNS resolver. The truth: A records for `addresses` (any name), no AAAA
 * records. The lies, each with a bogus address (10.66.0.x: nothing answers there) wherever an
 * address could slip through:
 *
 * - `wrong-id`: a well-formed answer under another id;
 * - `wrong-question`: a well-formed answer to another name;
 * - `truncated-tcp-hangs`: UDP answers "truncated", and the TCP side accepts and never answers;
 * - `ten-thousand`: a message that claims 10,000 A records (as many as fit a datagram follow);
 * - `compression-loop`: the answer's name is a compression pointer to itself;
 * - `servfail`: RCODE 2;
 * - `silent`: no answer at all (the client times out).
 *
 *   const dns = await startLyingDns(['127.0.0.2']);
 *   dns.lie = 'servfail';   // every query from now on
 *   dns.truth(['127.0.0.3']); // tell the truth again, with another set
 *   dns.close();
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';

export const LIES = [
  'wrong-id',
  'wrong-question',
  'truncated-tcp-hangs',
  'ten-thousand',
  'compression-loop',
  'servfail',
  'silent',
] as const;

export type Lie = (typeof LIES)[number];

export interface LyingDns {
  readonly host: string;
  readonly port: number;
  /** The current lie, or `undefined`: the truth. */
  lie: Lie | undefined;
  /** Queries received so far (UDP datagrams and TCP messages). */
  readonly queries: { udp: number; tcp: number };
  /** Tells the truth from now on, with these addresses. */
  truth(addresses: readonly string[]): void;
  close(): Promise<void>;
}

const BOGUS = '10.66.0.1';
const SERVFAIL = 2;

interface Question {
  readonly name: string;
  readonly type: string;
}

function decodeQuery(message: Buffer): { id: number; question: Question } | undefined {
  try {
    const query = dnsPacket.decode(message);
    const question = query.questions?.[0];
    if (!question || query.id === undefined) return undefined;
    return { id: query.id, question: { name: question.name, type: question.type } };
  } catch {
    return undefined;
  }
}

function encodeAnswer(
  id: number,
  question: Question,
  addresses: readonly string[],
  options: { flags?: number; name?: string } = {},
): Buffer {
  const questions = [{ name: options.name ?? question.name, type: question.type, class: 'IN' }];
  const answers =
    question.type === 'A'
      ? addresses.map((data) => ({
          name: options.name ?? question.name,
          type: 'A' as const,
          ttl: 1,
          data,
        }))
      : [];
  return dnsPacket.encode({
    type: 'response',
    id,
    flags: (options.flags ?? 0) | dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: questions as dnsPacket.Question[],
    answers,
  });
}

/** An answer whose only record's owner name is a compression pointer to itself. */
function compressionLoop(id: number, question: Question): Buffer {
  const head = dnsPacket.encode({
    type: 'response',
    id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [{ name: question.name, type: question.type as 'A', class: 'IN' }],
  });
  head.writeUInt16BE(1, 6); // ANCOUNT
  const offset = head.length;
  const record = Buffer.alloc(2 + 10 + 4);
  record.writeUInt16BE(0xc000 | offset, 0); // the name points at itself
  record.writeUInt16BE(question.type === 'AAAA' ? 28 : 1, 2);
  record.writeUInt16BE(1, 4); // IN
  record.writeUInt32BE(1, 6); // TTL
  record.writeUInt16BE(4, 10);
  Buffer.from([10, 66, 0, 1]).copy(record, 12);
  return Buffer.concat([head, record]);
}

const tenThousandByName = new Map<string, Buffer>();

/** Claims 10,000 A records and carries as many as fit a 64 KiB datagram (built once per name). */
function tenThousand(id: number, question: Question): Buffer {
  let built = tenThousandByName.get(question.name);
  if (!built) {
    built = buildTenThousand(question);
    tenThousandByName.set(question.name, built);
  }
  const message = Buffer.from(built);
  message.writeUInt16BE(id, 0);
  return message;
}

function buildTenThousand(question: Question): Buffer {
  const fitting = Math.floor(
    (65_000 - 12 - question.name.length - 6) / (question.name.length + 2 + 14),
  );
  const addresses = Array.from(
    { length: fitting },
    (_, i) => `10.66.${Math.floor(i / 250)}.${(i % 250) + 1}`,
  );
  const message = encodeAnswer(0, { name: question.name, type: 'A' }, addresses);
  message.writeUInt16BE(10_000, 6);
  return message;
}

export async function startLyingDns(initial: readonly string[]): Promise<LyingDns> {
  let addresses = [...initial];
  const queries = { udp: 0, tcp: 0 };
  const held = new Set<net.Socket>();
  const state: { lie: Lie | undefined } = { lie: undefined };

  const udpAnswer = (id: number, question: Question): Buffer | undefined => {
    switch (state.lie) {
      case undefined:
        return encodeAnswer(id, question, addresses);
      case 'wrong-id':
        return encodeAnswer((id + 1) & 0xffff, question, [BOGUS]);
      case 'wrong-question':
        return encodeAnswer(id, question, [BOGUS], { name: `liar.${question.name}` });
      case 'truncated-tcp-hangs':
        return encodeAnswer(id, question, [], { flags: dnsPacket.TRUNCATED_RESPONSE });
      case 'ten-thousand':
        return tenThousand(id, question);
      case 'compression-loop':
        return compressionLoop(id, question);
      case 'servfail':
        return encodeAnswer(id, question, [], { flags: SERVFAIL });
      case 'silent':
        return undefined;
    }
  };

  const tcp = net.createServer((socket) => {
    held.add(socket);
    socket.on('close', () => held.delete(socket));
    socket.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const length = buffered.readUInt16BE(0);
        const message = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        queries.tcp++;
        if (state.lie === 'truncated-tcp-hangs') continue; // accepted, never answered
        const query = decodeQuery(message);
        if (!query) continue;
        const answer = udpAnswer(query.id, query.question);
        if (!answer) continue;
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(answer.length);
        socket.write(Buffer.concat([prefix, answer]));
      }
    });
  });
  const host = '127.0.0.1';
  let udp: dgram.Socket | undefined;
  let port = 0;
  for (let attempt = 0; attempt < 10 && !udp; attempt++) {
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(0, host, () => resolve());
    });
    port = (tcp.address() as net.AddressInfo).port;
    const socket = dgram.createSocket('udp4');
    const bound = await new Promise<boolean>((resolve) => {
      socket.once('error', () => resolve(false));
      socket.bind(port, host, () => resolve(true));
    });
    if (bound) udp = socket;
    else await new Promise((resolve) => tcp.close(resolve));
  }
  if (!udp) throw new Error('no port free for both UDP and TCP on 127.0.0.1');
  const udpSocket = udp;
  udpSocket.on('message', (message, remote) => {
    queries.udp++;
    const query = decodeQuery(message);
    if (!query) return;
    const answer = udpAnswer(query.id, query.question);
    if (answer) udpSocket.send(answer, remote.port, remote.address);
  });

  return {
    host,
    port,
    queries,
    get lie() {
      return state.lie;
    },
    set lie(lie: Lie | undefined) {
      state.lie = lie;
      if (lie !== 'truncated-tcp-hangs') for (const socket of held) socket.destroy();
    },
    truth(next) {
      addresses = [...next];
      state.lie = undefined;
      for (const socket of held) socket.destroy();
    },
    async close() {
      for (const socket of held) socket.destroy();
      udpSocket.close();
      await new Promise((resolve) => tcp.close(resolve));
    },
  };
}
