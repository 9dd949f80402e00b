import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { EndpointHealth } from '../observer';
import {
  decodeHealthResponse,
  encodeHealthRequest,
  HEALTH_ANSWER_WAIT_MS,
  HealthWatcher,
  setHealthClientFactory,
} from './health-watcher';
import { createRuntime } from './runtime';
import {
  FakeHealthServers,
  FakeSubchannel,
  settle,
  Status,
  type FakeHealthServer,
  type ServingStatusName,
} from './testing/fake-channel';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

describe('encodeHealthRequest (HealthCheckRequest { string service = 1; })', () => {
  test('the empty service name is the empty message (proto3 default omitted)', () => {
    assert.equal(encodeHealthRequest('').length, 0);
  });

  test('"svc" is field 1, length 3, the bytes', () => {
    assert.deepEqual(encodeHealthRequest('svc'), hex('0a 03 73 76 63'));
  });

  test('the length is in UTF-8 bytes, not characters', () => {
    assert.deepEqual(encodeHealthRequest('é'), hex('0a 02 c3 a9'));
  });

  test('127 bytes: a one-byte length', () => {
    const name = 'a'.repeat(127);
    const encoded = encodeHealthRequest(name);
    assert.deepEqual(encoded.subarray(0, 2), hex('0a 7f'));
    assert.equal(encoded.subarray(2).toString(), name);
    assert.equal(encoded.length, 129);
  });

  test('128 bytes: the length takes two varint bytes', () => {
    const encoded = encodeHealthRequest('b'.repeat(128));
    assert.deepEqual(encoded.subarray(0, 3), hex('0a 80 01'));
    assert.equal(encoded.length, 131);
  });

  test('a 200-byte service name gets the 2-byte varint length c8 01', () => {
    const name = 'x'.repeat(200);
    const encoded = encodeHealthRequest(name);
    assert.deepEqual(encoded.subarray(0, 3), hex('0a c8 01'));
    assert.equal(encoded.subarray(3).toString(), name);
    assert.equal(encoded.length, 203);
  });

  test('20000 bytes: a 3-byte varint length', () => {
    const encoded = encodeHealthRequest('y'.repeat(20_000));
    // 20000 = 0b1_0011100_0100000 → a0 9c 01
    assert.deepEqual(encoded.subarray(0, 4), hex('0a a0 9c 01'));
    assert.equal(encoded.length, 20_004);
  });
});

describe('decodeHealthResponse (HealthCheckResponse { ServingStatus status = 1; })', () => {
  test('SERVING, NOT_SERVING, SERVICE_UNKNOWN', () => {
    assert.equal(decodeHealthResponse(hex('08 01')), 1);
    assert.equal(decodeHealthResponse(hex('08 02')), 2);
    assert.equal(decodeHealthResponse(hex('08 03')), 3);
  });

  test('the empty message is UNKNOWN (0)', () => {
    assert.equal(decodeHealthResponse(Buffer.alloc(0)), 0);
  });

  test('the last occurrence of the field wins', () => {
    assert.equal(decodeHealthResponse(hex('08 01 08 02')), 2);
  });

  const unknown: [string, string][] = [
    ['a varint field', '10 96 01'],
    ['a length-delimited field', '1a 03 61 62 63'],
    ['an empty length-delimited field', '1a 00'],
    ['a fixed32 field', '25 01 02 03 04'],
    ['a fixed64 field', '29 01 02 03 04 05 06 07 08'],
    ['a field number above 15 (two-byte tag)', '80 01 05'],
    ['field 17, whose two-byte tag 88 01 ends in the bits of field 1', '88 01 05'],
    ['a length-delimited field 1 (wrong wire type for status)', '0a 01 02'],
  ];
  for (const [name, bytes] of unknown) {
    test(`skips ${name} before the status`, () => {
      assert.equal(decodeHealthResponse(hex(`${bytes} 08 01`)), 1);
    });
    test(`skips ${name} after the status`, () => {
      assert.equal(decodeHealthResponse(hex(`08 02 ${bytes}`)), 2);
    });
  }

  test('skips every kind of unknown field around the status', () => {
    assert.equal(
      decodeHealthResponse(
        hex('10 96 01  1a 03 61 62 63  08 02  25 01 02 03 04  29 01 02 03 04 05 06 07 08'),
      ),
      2,
    );
  });

  test('a ten-byte varint is still a varint', () => {
    assert.equal(decodeHealthResponse(hex('10 ff ff ff ff ff ff ff ff ff 01 08 01')), 1);
  });

  const broken: [string, string, RegExp][] = [
    ['a tag alone', '08', /truncated varint/],
    ['a status varint cut short', '08 81', /truncated varint/],
    ['a tag varint cut short', '80', /truncated varint/],
    ['a length-delimited field longer than the buffer', '1a 05 61 62', /truncated field/],
    ['a length-delimited field without its length', '1a', /truncated varint/],
    ['a fixed32 field cut short', '08 01 25 00 00', /truncated field/],
    ['a fixed64 field cut short', '08 01 29 00 00 00 00 00 00 00', /truncated field/],
    ['a varint of eleven bytes', '10 ff ff ff ff ff ff ff ff ff ff 01', /varint too long/],
    ['a start-group wire type', '0b 08 01 0c', /unsupported wire type 3/],
    ['wire type 7', '0f', /unsupported wire type 7/],
  ];
  for (const [name, bytes, error] of broken) {
    test(`throws on ${name}`, () => {
      assert.throws(() => decodeHealthResponse(hex(bytes)), error);
    });
  }

  // A skip computed from the position before the length varint was read
  // would stop one byte short and parse the field's last byte as a tag.
  test('the content of a skipped length-delimited field is not parsed as fields', () => {
    // field 3 = [08]; status = 1 (SERVING); field 3 = 8 zero bytes
    assert.equal(decodeHealthResponse(hex('1a 01 08  08 01  1a 08 0000000000000000')), 1);
  });

  test('decoding the request encoder’s output finds no status (different message)', () => {
    assert.equal(decodeHealthResponse(encodeHealthRequest('svc')), 0);
  });
});

describe('HealthWatcher over a fake health server', () => {
  interface Watched {
    watcher: HealthWatcher;
    subchannel: FakeSubchannel;
    server: FakeHealthServer;
    changes: EndpointHealth[];
  }

  function watch(serviceName = 'svc', checkIntervalMs = 5_000): Watched {
    const rt = createRuntime(grpc, { warn: () => {} });
    const servers = new FakeHealthServers();
    setHealthClientFactory(rt, servers.factory);
    const subchannel = new FakeSubchannel('10.0.0.1:80', {});
    const changes: EndpointHealth[] = [];
    const box: { watcher?: HealthWatcher } = {};
    const watcher = new HealthWatcher(
      rt,
      subchannel,
      serviceName,
      checkIntervalMs,
      () => changes.push(box.watcher!.current),
      'test',
    );
    box.watcher = watcher;
    return { watcher, subchannel, server: servers.server('10.0.0.1:80'), changes };
  }

  const answered: [ServingStatusName, EndpointHealth, string][] = [
    ['SERVING', 'serving', 'SERVING'],
    ['NOT_SERVING', 'not_serving', 'NOT_SERVING'],
    ['SERVICE_UNKNOWN', 'not_serving', 'SERVICE_UNKNOWN'],
    ['UNKNOWN', 'not_serving', 'UNKNOWN'],
  ];
  for (const [status, health, detail] of answered) {
    test(`Watch answering ${status} means ${health}`, async () => {
      const w = watch();
      w.server.setStatus(status);
      w.subchannel.setState('READY');
      await settle();
      assert.equal(w.watcher.current, health);
      assert.equal(w.watcher.detail, detail);
      w.watcher.destroy();
    });
  }

  test('Check answering NOT_FOUND (unknown service) means not_serving', async () => {
    const w = watch();
    w.server.watchUnimplemented = true;
    w.server.setStatus('SERVING', 'another-service');
    w.subchannel.setState('READY');
    await settle();
    assert.equal(w.watcher.current, 'not_serving');
    assert.equal(w.watcher.detail, 'NOT_FOUND');
    w.watcher.destroy();
  });

  test('no answer: unknown, and overdue once the answer wait has passed', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const w = watch();
    w.subchannel.setState('READY');
    await settle();
    assert.equal(w.watcher.current, 'unknown');
    assert.equal(w.watcher.overdue, false);
    t.mock.timers.tick(HEALTH_ANSWER_WAIT_MS - 1);
    assert.equal(w.watcher.overdue, false);
    t.mock.timers.tick(1);
    assert.equal(w.watcher.overdue, true);
    assert.equal(w.watcher.detail, `no answer within ${HEALTH_ANSWER_WAIT_MS / 1000} s`);
    assert.deepEqual(w.changes, ['unknown']);
    w.server.setStatus('SERVING');
    await settle();
    assert.equal(w.watcher.current, 'serving');
    assert.equal(w.watcher.overdue, false);
    w.watcher.destroy();
  });

  test('a stream that keeps failing before any answer is overdue, and the error is named', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const w = watch();
    w.subchannel.setState('READY');
    await settle();
    w.server.failWatches(Status.UNAVAILABLE, 'connection reset');
    await settle();
    t.mock.timers.tick(HEALTH_ANSWER_WAIT_MS);
    assert.equal(w.watcher.overdue, true);
    assert.equal(
      w.watcher.detail,
      `no answer within ${HEALTH_ANSWER_WAIT_MS / 1000} s (Health/Watch failed: UNAVAILABLE: connection reset)`,
    );
    w.watcher.destroy();
  });

  test('a new connection waits again for its first answer', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const w = watch();
    w.subchannel.setState('READY');
    await settle();
    t.mock.timers.tick(HEALTH_ANSWER_WAIT_MS);
    assert.equal(w.watcher.overdue, true);
    w.subchannel.setState('IDLE');
    assert.equal(w.watcher.overdue, false, 'not connected: not waiting');
    w.subchannel.setState('READY');
    await settle();
    assert.equal(w.watcher.overdue, false);
    t.mock.timers.tick(HEALTH_ANSWER_WAIT_MS);
    assert.equal(w.watcher.overdue, true);
    w.watcher.destroy();
  });

  test('a new service name reopens the watch on the same connection; the old answer no longer counts', async () => {
    const w = watch('a');
    w.server.setStatus('SERVING', 'a');
    w.subchannel.setState('READY');
    await settle();
    assert.equal(w.watcher.current, 'serving');
    w.watcher.reconfigure('b', 5_000);
    assert.equal(w.watcher.current, 'unknown');
    await settle();
    assert.deepEqual(
      w.server.openWatches().map((c) => c.service),
      ['b'],
    );
    assert.equal(w.watcher.current, 'not_serving');
    assert.equal(w.watcher.detail, 'SERVICE_UNKNOWN');
    w.server.setStatus('SERVING', 'b');
    await settle();
    assert.equal(w.watcher.current, 'serving');
    assert.equal(w.subchannel.startConnectingCalls, 0, 'no reconnect');
    w.watcher.destroy();
  });

  test('a new check interval applies to the polling of Check', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const w = watch('svc', 10_000);
    w.server.watchUnimplemented = true;
    w.server.setStatus('SERVING');
    w.subchannel.setState('READY');
    await settle();
    assert.equal(w.server.checks.length, 1);
    w.watcher.reconfigure('svc', 1_000);
    assert.equal(w.watcher.current, 'serving', 'same service: the answer stands');
    for (let i = 0; i < 3; i++) {
      t.mock.timers.tick(1_000);
      await settle();
    }
    assert.equal(w.server.checks.length, 4);
    w.watcher.destroy();
  });

  test('destroy cancels the stream and removes its listener', async () => {
    const w = watch();
    w.subchannel.setState('READY');
    await settle();
    w.watcher.destroy();
    assert.equal(w.subchannel.listenerCount, 0);
    assert.deepEqual(w.server.openWatches(), []);
  });
});
