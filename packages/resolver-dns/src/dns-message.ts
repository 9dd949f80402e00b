/**
 * DNS messages: queries encoded with dns-packet, responses checked before anything in them is
 * believed. A response must answer our id and our exact question; its records must fit the
 * message with the lengths their types require (dns-packet alone decodes an A record of any
 * length as 4 bytes and goes on reading at the wrong offset).
 */
import { isIPv4, isIPv6 } from 'node:net';
import * as dnsPacket from 'dns-packet';

export type QueryType = 'A' | 'AAAA' | 'SRV';

export interface DnsQuestion {
  /** Without a trailing dot. */
  readonly name: string;
  readonly type: QueryType;
}

export interface ExpectedResponse {
  readonly id: number;
  readonly question: DnsQuestion;
}

export type DnsRecord = dnsPacket.Answer;

export interface DnsResponse {
  /** `NOERROR`, `NXDOMAIN`, `SERVFAIL`, `REFUSED`, … */
  readonly rcode: string;
  /** The TC bit: the answer did not fit; ask again over TCP. */
  readonly truncated: boolean;
  readonly answers: readonly DnsRecord[];
  readonly authorities: readonly DnsRecord[];
  readonly additionals: readonly DnsRecord[];
}

/** A message that is not an acceptable answer to our query (the reason says why). */
export class InvalidResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidResponseError';
  }
}

const HEADER_BYTES = 12;
const TYPE_A = 1;
const TYPE_CNAME = 5;
const TYPE_AAAA = 28;
const TYPE_SRV = 33;
const CLASS_IN = 1;
const MAX_TTL = 0x7fffffff;

export function encodeQuery(id: number, question: DnsQuestion): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: question.type, name: question.name, class: 'IN' }],
  });
}

export function sameName(a: string, b: string): boolean {
  // Most often the very same string: no copies (an answer may hold thousands of records).
  if (a === b) return true;
  return a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();
}

/** Offset just past the name at `offset` (a pointer ends it); throws on a name that overruns. */
function skipName(buf: Buffer, offset: number, end: number): number {
  let at = offset;
  for (let labels = 0; labels < 128; labels++) {
    if (at >= end) throw new InvalidResponseError(`a name at byte ${offset} runs past its end`);
    const len = buf[at]!;
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) {
      if (at + 2 > end)
        throw new InvalidResponseError(`a name at byte ${offset} runs past its end`);
      return at + 2;
    }
    if ((len & 0xc0) !== 0)
      throw new InvalidResponseError(`a name at byte ${offset} has a bad label`);
    at += 1 + len;
  }
  throw new InvalidResponseError(`a name at byte ${offset} has too many labels`);
}

/** Walks every question and record, checking each fits the message and has a sane length. */
function checkStructure(buf: Buffer): void {
  const counts = [4, 6, 8, 10].map((at) => buf.readUInt16BE(at));
  let offset = HEADER_BYTES;
  for (let i = 0; i < counts[0]!; i++) {
    offset = skipName(buf, offset, buf.length) + 4;
    if (offset > buf.length) throw new InvalidResponseError('the question runs past the message');
  }
  const records = counts[1]! + counts[2]! + counts[3]!;
  for (let i = 0; i < records; i++) {
    const start = offset;
    offset = skipName(buf, offset, buf.length);
    if (offset + 10 > buf.length) {
      throw new InvalidResponseError(
        `record ${i + 1} of ${records} runs past the message (${buf.length} bytes)`,
      );
    }
    const type = buf.readUInt16BE(offset);
    const klass = buf.readUInt16BE(offset + 2);
    const rdlength = buf.readUInt16BE(offset + 8);
    const rdata = offset + 10;
    offset = rdata + rdlength;
    if (offset > buf.length) {
      throw new InvalidResponseError(`record ${i + 1} (at byte ${start}) runs past the message`);
    }
    if (klass !== CLASS_IN) continue;
    if (type === TYPE_A && rdlength !== 4) {
      throw new InvalidResponseError(`an A record has ${rdlength} bytes of data, expected 4`);
    }
    if (type === TYPE_AAAA && rdlength !== 16) {
      throw new InvalidResponseError(`an AAAA record has ${rdlength} bytes of data, expected 16`);
    }
    if (type === TYPE_SRV && (rdlength < 7 || skipName(buf, rdata + 6, offset) !== offset)) {
      throw new InvalidResponseError('an SRV record has a malformed target');
    }
    if (type === TYPE_CNAME && skipName(buf, rdata, offset) !== offset) {
      throw new InvalidResponseError('a CNAME record has a malformed target');
    }
  }
}

/** Decodes `buf` as the answer to `expected`, or throws `InvalidResponseError` saying why not. */
export function decodeResponse(buf: Buffer, expected: ExpectedResponse): DnsResponse {
  if (buf.length < HEADER_BYTES) {
    throw new InvalidResponseError(`${buf.length} bytes is shorter than a DNS header`);
  }
  const id = buf.readUInt16BE(0);
  if (id !== expected.id) {
    throw new InvalidResponseError(`id ${id} does not match the query's ${expected.id}`);
  }
  const flags = buf.readUInt16BE(2);
  if ((flags & 0x8000) === 0) throw new InvalidResponseError('a query, not a response');
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== 0) throw new InvalidResponseError(`opcode ${opcode}, expected 0 (QUERY)`);
  const questions = buf.readUInt16BE(4);
  if (questions !== 1) throw new InvalidResponseError(`${questions} questions, expected 1`);
  checkStructure(buf);
  let decoded: dnsPacket.DecodedPacket;
  try {
    decoded = dnsPacket.decode(buf);
  } catch (error) {
    throw new InvalidResponseError(
      `cannot be decoded: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const question = decoded.questions?.[0];
  const asked = expected.question;
  if (
    !question ||
    !sameName(question.name, asked.name) ||
    question.type !== asked.type ||
    question.class !== 'IN'
  ) {
    throw new InvalidResponseError(
      `answers "${question?.name ?? '?'}" ${question?.type ?? '?'} ${question?.class ?? '?'}, but the question was "${asked.name}" ${asked.type} IN`,
    );
  }
  return {
    rcode: (decoded as { rcode?: string }).rcode ?? 'NOERROR',
    truncated: decoded.flag_tc,
    answers: decoded.answers ?? [],
    authorities: decoded.authorities ?? [],
    additionals: decoded.additionals ?? [],
  };
}

/** RFC 2181 §8: a TTL with the top bit set counts as 0. */
export function recordTtl(record: DnsRecord): number {
  const ttl = 'ttl' in record ? record.ttl : undefined;
  return typeof ttl === 'number' && ttl >= 0 && ttl <= MAX_TTL ? ttl : 0;
}

function dataOf(record: DnsRecord): unknown {
  return 'data' in record ? record.data : undefined;
}

function isIn(record: DnsRecord): boolean {
  return !('class' in record) || record.class === undefined || record.class === 'IN';
}

export interface FollowedAnswer<T> {
  /** The records of the asked type, owned by `canonicalName`. */
  readonly records: readonly T[];
  /** The name the CNAME chain (if any) led to. */
  readonly canonicalName: string;
  /** True when the chain stopped at a name with no records of the type in this message. */
  readonly unresolvedAlias: boolean;
  /** The smallest TTL over the chain and the records, in seconds; undefined when there are none. */
  readonly ttl: number | undefined;
}

export interface AddressRecord {
  readonly address: string;
  readonly ttl: number;
}

export interface SrvRecord {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
  readonly ttl: number;
}

const MAX_CNAME_HOPS = 8;

/** Follows CNAMEs from `name` through `records` and collects what the final name owns. */
function follow(
  records: readonly DnsRecord[],
  name: string,
  type: QueryType,
): { owned: DnsRecord[]; canonicalName: string; chainTtl: number | undefined } {
  let current = name;
  let chainTtl: number | undefined;
  for (let hop = 0; hop <= MAX_CNAME_HOPS; hop++) {
    const owned = records.filter((r) => r.type === type && isIn(r) && sameName(r.name, current));
    if (owned.length > 0) return { owned, canonicalName: current, chainTtl };
    const alias = records.find((r) => r.type === 'CNAME' && isIn(r) && sameName(r.name, current));
    const aliasTarget = alias ? dataOf(alias) : undefined;
    if (!alias || typeof aliasTarget !== 'string') break;
    chainTtl = Math.min(chainTtl ?? Infinity, recordTtl(alias));
    current = aliasTarget;
  }
  return { owned: [], canonicalName: current, chainTtl };
}

function minTtl(values: readonly number[], start: number | undefined): number | undefined {
  let ttl = start;
  for (const value of values) ttl = Math.min(ttl ?? Infinity, value);
  return ttl;
}

/** The A or AAAA records answering `name` (through CNAMEs), with addresses checked. */
export function addressAnswer(
  response: DnsResponse,
  name: string,
  type: 'A' | 'AAAA',
  section: 'answers' | 'additionals' = 'answers',
): FollowedAnswer<AddressRecord> {
  const { owned, canonicalName, chainTtl } = follow(response[section], name, type);
  const valid = type === 'A' ? isIPv4 : isIPv6;
  const records: AddressRecord[] = [];
  // A set, not a scan of `records`: an answer may hold thousands of addresses.
  const seen = new Set<string>();
  for (const record of owned) {
    const address = dataOf(record);
    if (typeof address !== 'string' || !valid(address)) {
      throw new InvalidResponseError(`${type} record for ${name} holds ${JSON.stringify(address)}`);
    }
    if (!seen.has(address)) {
      seen.add(address);
      records.push({ address, ttl: recordTtl(record) });
    }
  }
  return {
    records,
    canonicalName,
    unresolvedAlias: records.length === 0 && !sameName(canonicalName, name),
    ttl: minTtl(
      records.map((r) => r.ttl),
      chainTtl,
    ),
  };
}

/** The SRV records answering `name` (through CNAMEs). */
export function srvAnswer(response: DnsResponse, name: string): FollowedAnswer<SrvRecord> {
  const { owned, canonicalName, chainTtl } = follow(response.answers, name, 'SRV');
  const records: SrvRecord[] = [];
  for (const record of owned) {
    const data = dataOf(record) as dnsPacket.SrvData;
    records.push({
      priority: data.priority ?? 0,
      weight: data.weight ?? 0,
      port: data.port,
      target: data.target,
      ttl: recordTtl(record),
    });
  }
  return {
    records,
    canonicalName,
    unresolvedAlias: records.length === 0 && !sameName(canonicalName, name),
    ttl: minTtl(
      records.map((r) => r.ttl),
      chainTtl,
    ),
  };
}

/** RFC 2308: how long a negative answer may be believed, from the SOA in the authority section. */
export function negativeTtl(response: DnsResponse): number | undefined {
  const soa = response.authorities.find((r) => r.type === 'SOA');
  if (!soa) return undefined;
  const minimum = (dataOf(soa) as dnsPacket.SoaData | undefined)?.minimum;
  return Math.min(recordTtl(soa), typeof minimum === 'number' ? minimum : Infinity);
}
