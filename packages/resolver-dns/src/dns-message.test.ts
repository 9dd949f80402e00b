import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import {
  addressAnswer,
  decodeResponse,
  encodeQuery,
  InvalidResponseError,
  negativeTtl,
  srvAnswer,
  type ExpectedResponse,
} from './dns-message';

const expected: ExpectedResponse = { id: 4242, question: { name: 'api.svc.test', type: 'A' } };

function response(overrides: Partial<dnsPacket.Packet> = {}): Buffer {
  return dnsPacket.encode({
    type: 'response',
    id: 4242,
    flags: dnsPacket.AUTHORITATIVE_ANSWER,
    questions: [{ name: 'api.svc.test', type: 'A', class: 'IN' }],
    answers: [
      { name: 'api.svc.test', type: 'A', ttl: 30, data: '127.0.0.2' },
      { name: 'api.svc.test', type: 'A', ttl: 10, data: '127.0.0.3' },
    ],
    ...overrides,
  });
}

function rejects(buf: Buffer, reason: RegExp, want: ExpectedResponse = expected): void {
  assert.throws(
    () => decodeResponse(buf, want),
    (error: unknown) => error instanceof InvalidResponseError && reason.test(error.message),
    `expected rejection matching ${reason}`,
  );
}

describe('DNS responses are checked before they are believed', () => {
  test('a query encodes one question with recursion desired and no EDNS', () => {
    const decoded = dnsPacket.decode(encodeQuery(7, { name: '_grpc._tcp.api', type: 'SRV' }));
    assert.equal(decoded.id, 7);
    assert.equal(decoded.flag_rd, true);
    assert.deepEqual(decoded.questions, [{ name: '_grpc._tcp.api', type: 'SRV', class: 'IN' }]);
    assert.equal(decoded.additionals?.length, 0);
  });

  test('a good answer gives its addresses and the smallest TTL', () => {
    const answer = addressAnswer(decodeResponse(response(), expected), 'api.svc.test', 'A');
    assert.deepEqual(
      answer.records.map((r) => r.address),
      ['127.0.0.2', '127.0.0.3'],
    );
    assert.equal(answer.ttl, 10);
  });

  test('the question name is compared case-insensitively', () => {
    const buf = response({ questions: [{ name: 'API.Svc.Test', type: 'A', class: 'IN' }] });
    assert.equal(decodeResponse(buf, expected).rcode, 'NOERROR');
  });

  test('wrong id', () =>
    rejects(response({ id: 4243 }), /id 4243 does not match the query's 4242/));

  test('a query instead of a response', () => {
    rejects(response({ type: 'query' }), /a query, not a response/);
  });

  test('an answer to another question: name, type', () => {
    rejects(
      response({ questions: [{ name: 'evil.svc.test', type: 'A', class: 'IN' }] }),
      /answers "evil.svc.test" A IN, but the question was "api.svc.test" A IN/,
    );
    rejects(
      response({ questions: [{ name: 'api.svc.test', type: 'AAAA', class: 'IN' }] }),
      /answers "api.svc.test" AAAA/,
    );
    rejects(response({ questions: [] }), /0 questions, expected 1/);
  });

  test('garbage: too short, random bytes, a header promising records that are not there', () => {
    rejects(Buffer.from('hello'), /5 bytes is shorter than a DNS header/);
    const header = response().subarray(0, 12);
    rejects(header, /runs past/);
    const random = Buffer.alloc(300);
    for (let i = 0; i < random.length; i++) random[i] = (i * 7919 + 13) % 256;
    random.writeUInt16BE(4242, 0);
    random.writeUInt16BE(0x8000, 2);
    random.writeUInt16BE(1, 4);
    assert.throws(() => decodeResponse(random, expected), InvalidResponseError);
  });

  test('a record cut short, and an A record whose data is not 4 bytes', () => {
    const good = response();
    rejects(good.subarray(0, good.length - 2), /runs past the message/);
    // The last A record: make its RDLENGTH 5 and append a byte, a well-formed message otherwise.
    const stretched = Buffer.concat([good, Buffer.from([9])]);
    stretched.writeUInt16BE(5, good.length - 6);
    rejects(stretched, /an A record has 5 bytes of data, expected 4/);
  });

  test('a compression pointer that points forward is refused', () => {
    const question = response({ answers: [] });
    question.writeUInt16BE(1, 6); // ANCOUNT 1
    const record = Buffer.from([0xc0, 0, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 0, 0, 2]);
    record.writeUInt16BE(0xc000 | (question.length + 2), 0); // a pointer past itself
    rejects(Buffer.concat([question, record]), /cannot be decoded: .*bad pointer/);
  });

  test('the TC bit is reported so the client retries over TCP', () => {
    const buf = response({ flags: dnsPacket.TRUNCATED_RESPONSE });
    assert.equal(decodeResponse(buf, expected).truncated, true);
  });

  test('CNAME chains are followed to the records of the final name', () => {
    const buf = response({
      questions: [{ name: 'alias.svc.test', type: 'A', class: 'IN' }],
      answers: [
        { name: 'alias.svc.test', type: 'CNAME', ttl: 5, data: 'middle.svc.test' },
        { name: 'middle.svc.test', type: 'CNAME', ttl: 60, data: 'api.svc.test' },
        { name: 'api.svc.test', type: 'A', ttl: 30, data: '127.0.0.2' },
        { name: 'other.svc.test', type: 'A', ttl: 30, data: '127.0.0.99' },
      ],
    });
    const answer = addressAnswer(
      decodeResponse(buf, { id: 4242, question: { name: 'alias.svc.test', type: 'A' } }),
      'alias.svc.test',
      'A',
    );
    assert.deepEqual(
      answer.records.map((r) => r.address),
      ['127.0.0.2'],
    );
    assert.equal(answer.canonicalName, 'api.svc.test');
    assert.equal(answer.ttl, 5);
  });

  test('a CNAME whose target is not answered is reported as an unresolved alias', () => {
    const buf = response({
      answers: [{ name: 'api.svc.test', type: 'CNAME', ttl: 5, data: 'elsewhere.example' }],
    });
    const answer = addressAnswer(decodeResponse(buf, expected), 'api.svc.test', 'A');
    assert.equal(answer.records.length, 0);
    assert.equal(answer.unresolvedAlias, true);
    assert.equal(answer.canonicalName, 'elsewhere.example');
  });

  test('records for other names are not believed', () => {
    const buf = response({
      answers: [{ name: 'victim.example', type: 'A', ttl: 30, data: '10.6.6.6' }],
    });
    assert.equal(
      addressAnswer(decodeResponse(buf, expected), 'api.svc.test', 'A').records.length,
      0,
    );
  });

  test('a TTL with the top bit set counts as 0 (RFC 2181)', () => {
    const buf = response({
      answers: [{ name: 'api.svc.test', type: 'A', ttl: 0x80000000, data: '127.0.0.2' }],
    });
    assert.equal(addressAnswer(decodeResponse(buf, expected), 'api.svc.test', 'A').ttl, 0);
  });

  test('NXDOMAIN carries the negative TTL of the SOA: min(SOA TTL, SOA minimum)', () => {
    const buf = response({
      flags: 3,
      answers: [],
      authorities: [
        {
          name: 'svc.test',
          type: 'SOA',
          ttl: 60,
          data: {
            mname: 'ns.svc.test',
            rname: 'admin.svc.test',
            serial: 1,
            refresh: 60,
            retry: 60,
            expire: 600,
            minimum: 7,
          },
        },
      ],
    });
    const decoded = decodeResponse(buf, expected);
    assert.equal(decoded.rcode, 'NXDOMAIN');
    assert.equal(negativeTtl(decoded), 7);
  });

  test('SRV records give priority, weight, port and target', () => {
    const buf = dnsPacket.encode({
      type: 'response',
      id: 1,
      questions: [{ name: '_grpc._tcp.api', type: 'SRV', class: 'IN' }],
      answers: [
        {
          name: '_grpc._tcp.api',
          type: 'SRV',
          ttl: 9,
          data: { priority: 1, weight: 30, port: 5002, target: 'b.api' },
        },
      ],
    });
    const answer = srvAnswer(
      decodeResponse(buf, { id: 1, question: { name: '_grpc._tcp.api', type: 'SRV' } }),
      '_grpc._tcp.api',
    );
    assert.deepEqual(answer.records, [
      { priority: 1, weight: 30, port: 5002, target: 'b.api', ttl: 9 },
    ]);
  });
});
