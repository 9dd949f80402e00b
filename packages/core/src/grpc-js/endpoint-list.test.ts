import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { normalizeEndpoint, sameEndpointSet, type NormalizedEndpoint } from '../endpoint';
import { errorMessage } from '../errors';
import { EndpointLists, type EndpointList } from './endpoint-list';

/** What the adapter made of a list before endpoints were reused: every one validated afresh. */
function fromScratch(raw: readonly unknown[]): {
  endpoints: NormalizedEndpoint[];
  warnings: string[];
} {
  const endpoints: NormalizedEndpoint[] = [];
  const warnings: string[] = [];
  const seen = new Set<string>();
  for (const item of raw) {
    let endpoint: NormalizedEndpoint;
    try {
      endpoint = normalizeEndpoint(item);
    } catch (error) {
      warnings.push(`skipped an endpoint: ${errorMessage(error)}`);
      continue;
    }
    if (seen.has(endpoint.key)) {
      warnings.push(`endpoint ${endpoint.key} listed twice; using the first`);
      continue;
    }
    seen.add(endpoint.key);
    endpoints.push(endpoint);
  }
  return { endpoints, warnings };
}

function read(
  lists: EndpointLists,
  raw: readonly unknown[],
): { list: EndpointList; warnings: string[] } {
  const warnings: string[] = [];
  const list = lists.read(raw, (message) => warnings.push(message));
  return { list, warnings };
}

/** The endpoints as plain values (what the balancer reads of each). */
function values(list: EndpointList): unknown[] {
  return list.endpoints.map((e) => {
    assert.deepEqual(e.addresses, [{ host: e.grpcLb.host, port: e.grpcLb.port }]);
    return { ...e.grpcLb };
  });
}

const host = fc.constantFrom(
  '10.0.0.1',
  '10.0.0.2',
  'fd00::1',
  '[fd00::1]',
  'api.internal',
  'bad host',
);
const rawEndpoint = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.record(
      {
        host,
        port: fc.constantFrom(1, 2, 0, '1'),
        weight: fc.constantFrom(0, 1, 2, -1),
        zone: fc.constantFrom('a', 'b', 7),
        labels: fc.oneof(
          fc.dictionary(fc.constantFrom('v', 'tier', '__proto__'), fc.constantFrom('1', '2')),
          fc.constant(null),
          fc.constant({ v: 1 }),
        ),
        forZones: fc.oneof(
          fc.array(fc.constantFrom('a', 'b'), { maxLength: 2 }),
          fc.constant(['']),
          fc.constant('a'),
        ),
      },
      { requiredKeys: ['host', 'port'] },
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom(null, 'x', 3) },
);

test('EndpointLists: every list reads as if validated from scratch, and same() is sameEndpointSet', () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(rawEndpoint, { maxLength: 10 }), { minLength: 1, maxLength: 8 }),
      (raws) => {
        const lists = new EndpointLists();
        const seen: { list: EndpointList; normalized: NormalizedEndpoint[] }[] = [];
        for (const raw of raws) {
          // A resolver sends new objects each time; structuredClone stands in for that.
          const { list, warnings } = read(lists, structuredClone(raw));
          const expected = fromScratch(raw);
          assert.deepEqual(
            values(list),
            expected.endpoints.map((e) => ({ ...e })),
          );
          assert.deepEqual(warnings, expected.warnings);
          for (const before of seen) {
            assert.equal(
              lists.same(before.list, list),
              sameEndpointSet(before.normalized, expected.endpoints),
            );
            assert.equal(
              lists.same(list, before.list),
              sameEndpointSet(expected.endpoints, before.normalized),
            );
          }
          seen.push({ list, normalized: expected.endpoints });
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('EndpointLists: an unchanged endpoint keeps its objects; a changed one with the same key is new', () => {
  const lists = new EndpointLists();
  const base = {
    host: '10.0.0.1',
    port: 80,
    weight: 2,
    zone: 'a',
    labels: { v: '1' },
    forZones: ['a'],
  };
  const first = read(lists, [base, { host: '10.0.0.2', port: 80 }]).list;
  const again = read(lists, [
    { ...base, labels: { v: '1' } },
    { host: '10.0.0.2', port: 80 },
  ]).list;
  assert.equal(again.endpoints[0], first.endpoints[0]);
  assert.equal(again.endpoints[1], first.endpoints[1]);
  assert.equal(again.sameAsLast, true);
  assert.equal(lists.same(first, again), true);
  const changes: [string, Record<string, unknown>][] = [
    ['weight', { weight: 3 }],
    ['weight dropped (1)', { weight: undefined }],
    ['zone', { zone: 'b' }],
    ['zone dropped', { zone: undefined }],
    ['a label value', { labels: { v: '2' } }],
    ['a label added', { labels: { v: '1', tier: 'x' } }],
    ['labels dropped', { labels: undefined }],
    ['forZones', { forZones: ['b'] }],
    ['forZones dropped', { forZones: undefined }],
  ];
  let previous = again;
  for (const [what, change] of changes) {
    const changed = { ...base, ...change };
    const { list } = read(lists, [changed, { host: '10.0.0.2', port: 80 }]);
    assert.notEqual(list.endpoints[0], previous.endpoints[0], what);
    assert.equal(list.endpoints[1], previous.endpoints[1], what);
    assert.deepEqual({ ...list.endpoints[0]!.grpcLb }, { ...normalizeEndpoint(changed) }, what);
    assert.equal(list.sameAsLast, false, what);
    assert.equal(lists.same(previous, list), false, what);
    // And back: a change again, compared with the list before it.
    const back = read(lists, [base, { host: '10.0.0.2', port: 80 }]).list;
    assert.equal(lists.same(list, back), false, what);
    assert.equal(lists.same(first, back), true, what);
    previous = back;
  }
});

test('EndpointLists: a key removed and listed again is listed, as the same set as before its removal', () => {
  const lists = new EndpointLists();
  const a = { host: '10.0.0.1', port: 80 };
  const b = { host: '10.0.0.2', port: 80, weight: 5 };
  const both = read(lists, [a, b]).list;
  const onlyA = read(lists, [{ ...a }]).list;
  assert.deepEqual(values(onlyA), [{ ...normalizeEndpoint(a) }]);
  assert.equal(lists.same(both, onlyA), false);
  const again = read(lists, [{ ...a }, { ...b }]).list;
  assert.equal(again.sameAsLast, false);
  assert.deepEqual(values(again), values(both));
  assert.equal(lists.same(onlyA, again), false);
  assert.equal(lists.same(both, again), true);
  // Re-added with another weight: a different endpoint.
  const reweighted = read(lists, [{ ...a }]).list;
  const other = read(lists, [{ ...a }, { ...b, weight: 6 }]).list;
  assert.equal(lists.same(reweighted, other), false);
  assert.equal(lists.same(both, other), false);
  assert.equal(other.endpoints[1]!.grpcLb.weight, 6);
});

test('EndpointLists: one host on several ports, and the same key written two ways', () => {
  const lists = new EndpointLists();
  const raw = [
    { host: '127.0.0.1', port: 1 },
    { host: '127.0.0.1', port: 2, weight: 2 },
    { host: '::1', port: 3 },
    { host: '[::1]', port: 3, weight: 9 },
  ];
  for (let i = 0; i < 3; i++) {
    const { list, warnings } = read(lists, structuredClone(raw));
    assert.deepEqual(
      list.endpoints.map((e) => [e.grpcLb.key, e.grpcLb.weight]),
      [
        ['127.0.0.1:1', 1],
        ['127.0.0.1:2', 2],
        ['[::1]:3', 1],
      ],
    );
    assert.deepEqual(warnings, ['endpoint [::1]:3 listed twice; using the first']);
    if (i > 0) assert.equal(list.sameAsLast, true);
  }
});

test('EndpointLists: a getter that throws skips that endpoint with a warning, even when known', () => {
  const lists = new EndpointLists();
  read(lists, [{ host: '10.0.0.1', port: 80, labels: { v: '1' } }]);
  const hostile = {
    host: '10.0.0.1',
    port: 80,
    get labels(): Record<string, string> {
      throw new Error('no labels today');
    },
  };
  const { list, warnings } = read(lists, [hostile, { host: '10.0.0.2', port: 80 }]);
  assert.deepEqual(
    list.endpoints.map((e) => e.grpcLb.key),
    ['10.0.0.2:80'],
  );
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /skipped an endpoint: no labels today/);
});

test('EndpointLists: endpoints no longer listed are forgotten, and validated again if they return', () => {
  const lists = new EndpointLists();
  const many = Array.from({ length: 200 }, (_, i) => ({
    host: `10.0.${i >> 8}.${i & 255}`,
    port: 80,
  }));
  const first = read(lists, many).list;
  // Listed again after a list small enough that they were forgotten: new objects, same values.
  read(lists, [{ host: '10.9.9.9', port: 80 }]);
  const back = read(lists, structuredClone(many)).list;
  assert.notEqual(back.endpoints[0], first.endpoints[0]);
  assert.deepEqual(values(back), values(first));
  assert.equal(lists.same(first, back), true);
});
