import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { aggregateStatus, endpointsFromHealth, healthQuery, nextIndex } from './health-entries';

function entry(service: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    Node: { Node: 'node-1', Address: '10.0.0.1' },
    Service: { ID: 'hello-1', Service: 'hello', Port: 50051, ...service },
    Checks: [{ Status: 'passing' }],
    ...extra,
  };
}

describe('endpointsFromHealth', () => {
  test('Service.Address, else Node.Address; Service.Port', () => {
    const { endpoints, warnings } = endpointsFromHealth([
      entry({ Address: '10.0.0.7' }),
      entry({ ID: 'hello-2', Address: '' }),
      entry({ ID: 'hello-3', Address: '2001:db8::1', Port: 7 }),
    ]);
    assert.deepEqual(
      endpoints.map((e) => [e.host, e.port]),
      [
        ['10.0.0.7', 50051],
        ['10.0.0.1', 50051],
        ['2001:db8::1', 7],
      ],
    );
    assert.deepEqual(warnings, []);
  });

  test('weight: Weights.Passing for passing instances, Weights.Warning for warning or critical ones', () => {
    const weights = { Passing: 3, Warning: 1 };
    const { endpoints } = endpointsFromHealth([
      entry({ Weights: weights }),
      entry(
        { ID: 'w', Weights: weights },
        { Checks: [{ Status: 'passing' }, { Status: 'warning' }] },
      ),
      entry({ ID: 'c', Weights: weights }, { Checks: [{ Status: 'critical' }] }),
      entry({ ID: 'none' }),
    ]);
    assert.deepEqual(
      endpoints.map((e) => e.weight),
      [3, 1, 1, undefined],
    );
  });

  test('labels: Service.Meta as is, tags as tag:<name>=true, the service ID and node; zone from meta', () => {
    const { endpoints } = endpointsFromHealth([
      entry({ Meta: { version: 'v2', zone: 'zone-b' }, Tags: ['grpc', 'canary'] }),
    ]);
    assert.deepEqual(endpoints[0], {
      host: '10.0.0.1',
      port: 50051,
      labels: {
        version: 'v2',
        zone: 'zone-b',
        'tag:grpc': 'true',
        'tag:canary': 'true',
        'consul.id': 'hello-1',
        'consul.node': 'node-1',
      },
      zone: 'zone-b',
    });
  });

  test('bad entries are skipped with a warning each; the good ones are kept', () => {
    const result = endpointsFromHealth([
      entry({ Address: '10.0.0.2' }),
      entry({ ID: 'no-port', Port: undefined }),
      entry({ ID: 'port-0', Port: 0 }),
      entry({ ID: 'port-text', Port: '50051' }),
      entry({ ID: 'no-address', Address: '' }, { Node: null }),
      { Node: { Address: '10.0.0.3' } },
      null,
      'garbage',
    ]);
    assert.deepEqual(
      result.endpoints.map((e) => e.host),
      ['10.0.0.2'],
    );
    assert.equal(result.skipped, 7);
    assert.equal(result.warnings.length, 7);
    assert.match(
      result.warnings[0]!,
      /no-port \(10\.0\.0\.1\): port missing is not 1-65535; skipped/,
    );
    assert.match(result.warnings[3]!, /no-address: neither Service.Address nor Node.Address/);
    assert.match(result.warnings[4]!, /entry #5: no Service object/);
  });

  test('a bad weight or meta value is ignored with a warning; the entry is kept', () => {
    const result = endpointsFromHealth([
      entry({ Weights: { Passing: -1, Warning: 1 }, Meta: { ok: 'yes', n: 5 } }),
      entry({ ID: 'meta-list', Meta: ['x'], Tags: 'not-a-list' }),
    ]);
    assert.equal(result.endpoints.length, 2);
    assert.equal(result.endpoints[0]!.weight, undefined);
    assert.equal(result.endpoints[0]!.labels?.['ok'], 'yes');
    assert.equal(result.endpoints[0]!.labels?.['n'], undefined);
    assert.equal(result.warnings.length, 3);
    assert.match(result.warnings[0]!, /Weights.Passing -1 is not an integer/);
  });
});

test('aggregateStatus: critical (or maintenance) beats warning beats passing', () => {
  assert.equal(aggregateStatus([{ Status: 'passing' }]), 'passing');
  assert.equal(aggregateStatus([{ Status: 'passing' }, { Status: 'warning' }]), 'warning');
  assert.equal(aggregateStatus([{ Status: 'warning' }, { Status: 'critical' }]), 'critical');
  assert.equal(aggregateStatus([{ Status: 'maintenance' }]), 'critical');
  assert.equal(aggregateStatus(null), 'passing');
});

describe('nextIndex (Consul blocking-query rules)', () => {
  test('follows a growing or equal index', () => {
    assert.equal(nextIndex(0, '17'), 17);
    assert.equal(nextIndex(17, '17'), 17);
    assert.equal(nextIndex(17, '40'), 40);
    assert.equal(nextIndex(0, ['12']), 12);
  });
  test('an index that goes backwards resets to 0', () => {
    assert.equal(nextIndex(40, '39'), 0);
    assert.equal(nextIndex(40, '1'), 0);
  });
  test('an index below 1, missing or not a number resets to 0', () => {
    for (const header of ['0', undefined, '', 'abc', '-3', '1.5', '99999999999999999999']) {
      assert.equal(nextIndex(5, header), 0, String(header));
    }
  });
});

describe('healthQuery', () => {
  const target = {
    passingOnly: true,
    tags: [] as string[],
    dc: undefined,
    near: undefined,
    filter: undefined,
    stale: false,
    consistent: false,
  };
  test('never sends an index below 1 (nor a wait without one)', () => {
    assert.equal(healthQuery(target, 0, '5m'), 'passing=true');
    assert.equal(healthQuery(target, -4, '5m'), 'passing=true');
    assert.equal(healthQuery(target, 1, '5m'), 'passing=true&index=1&wait=5m');
  });
  test('passing only unless healthy=false; tags, dc, near, filter, stale, consistent', () => {
    assert.equal(
      healthQuery(
        {
          passingOnly: false,
          tags: ['a', 'b c'],
          dc: 'dc2',
          near: '_agent',
          filter: 'Service.Meta.v == "2"',
          stale: true,
          consistent: false,
        },
        9,
        '30s',
      ),
      'tag=a&tag=b+c&dc=dc2&near=_agent&filter=Service.Meta.v+%3D%3D+%222%22&stale=&index=9&wait=30s',
    );
    assert.equal(healthQuery({ ...target, consistent: true }, 0, '5m'), 'passing=true&consistent=');
  });
});
