import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { normalizeEndpoint, sameEndpointSet, type NormalizedEndpoint } from './endpoint';

const arbitraryEndpoint = fc.record({
  host: fc.constantFrom('10.0.0.1', '10.0.0.2', 'fd00::1', 'api.internal'),
  port: fc.integer({ min: 1, max: 3 }),
  weight: fc.integer({ min: 0, max: 3 }),
  zone: fc.option(fc.constantFrom('a', 'b'), { nil: undefined }),
  labels: fc.option(fc.dictionary(fc.constantFrom('v', 'tier'), fc.constantFrom('1', '2')), {
    nil: undefined,
  }),
});

/** A set as the adapter makes one: normalized, one endpoint per key. */
const arbitrarySet = fc
  .array(arbitraryEndpoint, { maxLength: 12 })
  .map((raw) => [...new Map(raw.map((r) => normalizeEndpoint(r)).map((e) => [e.key, e])).values()]);

function copy(endpoint: NormalizedEndpoint): NormalizedEndpoint {
  return normalizeEndpoint({ ...endpoint, labels: { ...endpoint.labels } });
}

test('sameEndpointSet: the same endpoints in any order, as new objects, are the same set', () => {
  fc.assert(
    fc.property(arbitrarySet, fc.func(fc.integer()), (set, order) => {
      const shuffled = set
        .map((e, i) => [order(i), copy(e)] as const)
        .sort((x, y) => x[0] - y[0])
        .map(([, e]) => e);
      assert.equal(sameEndpointSet(set, shuffled), true);
    }),
  );
});

test('sameEndpointSet: a different weight, zone, label, or endpoint is a different set', () => {
  fc.assert(
    fc.property(
      arbitrarySet.filter((set) => set.length > 0),
      fc.nat(),
      fc.constantFrom('weight', 'zone', 'label', 'key', 'dropped'),
      (set, at, change) => {
        const i = at % set.length;
        const e = set[i]!;
        const changed =
          change === 'weight'
            ? normalizeEndpoint({ ...e, weight: e.weight + 1 })
            : change === 'zone'
              ? normalizeEndpoint({ ...e, zone: `${e.zone ?? ''}x` })
              : change === 'label'
                ? normalizeEndpoint({ ...e, labels: { ...e.labels, extra: 'x' } })
                : normalizeEndpoint({ ...e, port: 4 });
        const other =
          change === 'dropped'
            ? set.filter((_, j) => j !== i)
            : set.map((x, j) => (j === i ? changed : x));
        assert.equal(sameEndpointSet(set, other), false);
        assert.equal(sameEndpointSet(other, set), false);
      },
    ),
  );
});

test('sameEndpointSet: a zone hint given, dropped or changed is a different set', () => {
  const plain = normalizeEndpoint({ host: '10.0.0.1', port: 80, zone: 'a' });
  const hinted = normalizeEndpoint({ host: '10.0.0.1', port: 80, zone: 'a', forZones: ['a'] });
  const moved = normalizeEndpoint({ host: '10.0.0.1', port: 80, zone: 'a', forZones: ['b'] });
  const again = normalizeEndpoint({ host: '10.0.0.1', port: 80, zone: 'a', forZones: ['a'] });
  assert.equal(sameEndpointSet([plain], [hinted]), false);
  assert.equal(sameEndpointSet([hinted], [plain]), false);
  assert.equal(sameEndpointSet([hinted], [moved]), false);
  assert.equal(sameEndpointSet([hinted], [again]), true);
});

test('normalizeEndpoint: IPv6 keys in brackets, IPv4 and names without', () => {
  assert.equal(normalizeEndpoint({ host: 'fd00::1', port: 80 }).key, '[fd00::1]:80');
  assert.equal(normalizeEndpoint({ host: '[fd00::1]', port: 80 }).key, '[fd00::1]:80');
  assert.equal(normalizeEndpoint({ host: '10.0.0.1', port: 80 }).key, '10.0.0.1:80');
  assert.equal(normalizeEndpoint({ host: 'api.internal', port: 80 }).key, 'api.internal:80');
});
