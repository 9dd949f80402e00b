import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatEndpointValue, metadataOf, parseEndpointValue } from './endpoint-value';

describe('parseEndpointValue', () => {
  const good: [string, string, unknown][] = [
    [
      'etcd naming, no metadata',
      '{"Op":0,"Addr":"10.0.0.1:8080","Metadata":null}',
      { host: '10.0.0.1', port: 8080 },
    ],
    [
      'etcd naming without Op or Metadata',
      '{"Addr":"10.0.0.1:8080"}',
      { host: '10.0.0.1', port: 8080 },
    ],
    [
      'field names in any case (Go encoding/json)',
      '{"op":0,"addr":"10.0.0.1:8080"}',
      { host: '10.0.0.1', port: 8080 },
    ],
    [
      'labels, weight and zone',
      '{"Op":0,"Addr":"10.0.0.1:8080","Metadata":{"weight":3,"labels":{"version":"v2","canary":true},"zone":"a"}}',
      {
        host: '10.0.0.1',
        port: 8080,
        weight: 3,
        zone: 'a',
        labels: { version: 'v2', canary: 'true' },
      },
    ],
    [
      'a flat map of labels',
      '{"Op":0,"Addr":"10.0.0.1:8080","Metadata":{"version":"v1","shard":7,"nested":{"x":1},"list":[1],"nil":null}}',
      { host: '10.0.0.1', port: 8080, labels: { version: 'v1', shard: '7' } },
    ],
    [
      'a Go struct (capitalised fields), weight as a string',
      '{"Op":0,"Addr":"host-a.svc:8080","Metadata":{"Weight":"5","Zone":"z1","Version":"v3"}}',
      { host: 'host-a.svc', port: 8080, weight: 5, zone: 'z1', labels: { Version: 'v3' } },
    ],
    [
      'nested labels win over flat ones',
      '{"Addr":"10.0.0.1:1","Metadata":{"version":"flat","labels":{"version":"nested"}}}',
      { host: '10.0.0.1', port: 1, labels: { version: 'nested' } },
    ],
    [
      'metadata that is not an object is ignored',
      '{"Addr":"10.0.0.1:1","Metadata":"v2"}',
      { host: '10.0.0.1', port: 1 },
    ],
    [
      'weight 0',
      '{"Addr":"10.0.0.1:1","Metadata":{"weight":0}}',
      { host: '10.0.0.1', port: 1, weight: 0 },
    ],
    [
      'a __proto__ label is dropped',
      '{"Addr":"10.0.0.1:1","Metadata":{"__proto__":"x","a":"b"}}',
      { host: '10.0.0.1', port: 1, labels: { a: 'b' } },
    ],
    ['IPv6', '{"Addr":"[::1]:50051"}', { host: '::1', port: 50051 }],
    ['plain host:port (go-zero)', '10.0.0.2:9000', { host: '10.0.0.2', port: 9000 }],
    ['plain with whitespace', '  10.0.0.2:9000\n', { host: '10.0.0.2', port: 9000 }],
    ['a JSON string', '"10.0.0.2:9000"', { host: '10.0.0.2', port: 9000 }],
  ];
  for (const [name, value, endpoint] of good) {
    test(`reads ${name}`, () => {
      const parsed = parseEndpointValue(value);
      assert.ok(parsed.ok, JSON.stringify(parsed));
      assert.deepEqual(parsed.endpoint, endpoint);
    });
  }

  const bad: [string, string, RegExp][] = [
    ['an empty value', '', /empty/],
    ['invalid JSON', '{"Op":0,', /not valid JSON/],
    ['a JSON array', '[1]', /no port/],
    ['a JSON number', '42', /no port/],
    ['no Addr', '{"Op":0}', /no "Addr"/],
    ['Addr without a port', '{"Addr":"10.0.0.1"}', /Addr: address "10.0.0.1" has no port/],
    ['a port out of range', '{"Addr":"10.0.0.1:70000"}', /invalid port/],
    ['a scheme in Addr', '{"Addr":"dns:///x:1"}', /Addr/],
    ['Op 1 (Delete)', '{"Op":1,"Addr":"10.0.0.1:1"}', /Op 1 is not 0/],
    ['a negative weight', '{"Addr":"10.0.0.1:1","Metadata":{"weight":-1}}', /weight -1/],
    ['a fractional weight', '{"Addr":"10.0.0.1:1","Metadata":{"weight":1.5}}', /weight 1.5/],
    ['a huge weight', '{"Addr":"10.0.0.1:1","Metadata":{"weight":1000001}}', /weight 1000001/],
    ['a zone that is not a string', '{"Addr":"10.0.0.1:1","Metadata":{"zone":3}}', /zone 3/],
    ['plain garbage', 'not an address', /not etcd naming JSON and not host:port/],
  ];
  for (const [name, value, problem] of bad) {
    test(`skips ${name}`, () => {
      const parsed = parseEndpointValue(value);
      assert.equal(parsed.ok, false);
      assert.match((parsed as { problem: string }).problem, problem);
    });
  }
});

test('formatEndpointValue writes what Go writes, and reads back', () => {
  assert.equal(
    formatEndpointValue('10.0.0.1', 8080),
    '{"Op":0,"Addr":"10.0.0.1:8080","Metadata":null}',
  );
  const value = formatEndpointValue('::1', 5, metadataOf({ labels: { version: 'v2' }, weight: 2 }));
  assert.equal(
    value,
    '{"Op":0,"Addr":"[::1]:5","Metadata":{"labels":{"version":"v2"},"weight":2}}',
  );
  assert.deepEqual(parseEndpointValue(value), {
    ok: true,
    endpoint: { host: '::1', port: 5, weight: 2, labels: { version: 'v2' } },
  });
  assert.equal(metadataOf({ labels: {}, zone: '' }), null);
});
