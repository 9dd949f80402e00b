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

describe('parseEndpointValue with Metadata of an unexpected shape', () => {
  // etcd's Go resolver only reads Addr, so such an entry is still a working endpoint: the address
  // is kept, the bad field is left out, and each bad field is named (for one warning).
  const cases: [string, string, unknown, RegExp[]][] = [
    [
      'a weight that is a word',
      '{"Op":0,"Addr":"10.0.0.1:1","Metadata":{"weight":"high","zone":"a"}}',
      { host: '10.0.0.1', port: 1, zone: 'a' },
      [/Metadata weight "high" is not an integer 0-1000000/],
    ],
    [
      'a negative weight',
      '{"Addr":"10.0.0.1:1","Metadata":{"weight":-1}}',
      { host: '10.0.0.1', port: 1 },
      [/weight -1/],
    ],
    [
      'a fractional weight',
      '{"Addr":"10.0.0.1:1","Metadata":{"weight":1.5}}',
      { host: '10.0.0.1', port: 1 },
      [/weight 1.5/],
    ],
    [
      'a huge weight',
      '{"Addr":"10.0.0.1:1","Metadata":{"weight":1000001}}',
      { host: '10.0.0.1', port: 1 },
      [/weight 1000001/],
    ],
    [
      'a zone that is not a string',
      '{"Addr":"10.0.0.1:1","Metadata":{"zone":3,"weight":2}}',
      { host: '10.0.0.1', port: 1, weight: 2 },
      [/Metadata zone 3 is not a string/],
    ],
    [
      'labels that are not an object',
      '{"Addr":"10.0.0.1:1","Metadata":{"labels":"v2","version":"v1"}}',
      { host: '10.0.0.1', port: 1, labels: { version: 'v1' } },
      [/Metadata labels "v2" is not an object/],
    ],
    [
      'label values that are not strings',
      '{"Addr":"10.0.0.1:1","Metadata":{"labels":{"version":"v2","team":{"a":1},"list":[1],"none":null}}}',
      { host: '10.0.0.1', port: 1, labels: { version: 'v2' } },
      [/Metadata labels\.team is not a string/, /labels\.list/, /labels\.none/],
    ],
    [
      'everything wrong at once',
      '{"Addr":"10.0.0.1:1","Metadata":{"Weight":true,"Zone":["a"],"Labels":[1]}}',
      { host: '10.0.0.1', port: 1 },
      [/Metadata Weight true/, /Metadata Zone \["a"\]/, /Metadata Labels \[1\]/],
    ],
  ];
  for (const [name, value, endpoint, problems] of cases) {
    test(`keeps the address of ${name}, names the field`, () => {
      const parsed = parseEndpointValue(value);
      assert.ok(parsed.ok, JSON.stringify(parsed));
      assert.deepEqual(parsed.endpoint, endpoint);
      assert.equal(parsed.problems?.length, problems.length, JSON.stringify(parsed.problems));
      problems.forEach((problem, i) => assert.match(parsed.problems![i]!, problem));
    });
  }

  test('a well-formed value has no problems', () => {
    const parsed = parseEndpointValue('{"Addr":"10.0.0.1:1","Metadata":{"weight":3}}');
    assert.ok(parsed.ok);
    assert.equal(parsed.problems, undefined);
  });
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
