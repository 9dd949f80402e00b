/**
 * Zone-aware routing's decision (zone-aware.ts): the config's fields, Envoy's
 * cases by example, its invariants over generated fleets, and the reading of
 * Kubernetes hints.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { normalizeEndpoint } from './endpoint';
import { ConfigError, EndpointError } from './errors';
import {
  hintedForZone,
  parseZoneAware,
  UNKNOWN_ZONE,
  zoneShares,
  type ZoneSharesInput,
} from './zone-aware';

const map = (record: Record<string, number>) => new Map(Object.entries(record));

function shares(input: {
  local: string;
  up: Record<string, number>;
  clients: Record<string, number>;
  min?: number;
}) {
  return zoneShares({
    localZone: input.local,
    inRotation: map(input.up),
    clients: map(input.clients),
    minClusterSize: input.min ?? 6,
  });
}

function close(actual: ReadonlyMap<string, number>, expected: Record<string, number>): void {
  assert.deepEqual([...actual.keys()].sort(), Object.keys(expected).sort());
  for (const [zone, share] of Object.entries(expected)) {
    assert.ok(
      Math.abs(actual.get(zone)! - share) < 1e-9,
      `${zone}: ${actual.get(zone)} expected ${share}`,
    );
  }
}

describe('parseZoneAware', () => {
  test('defaults: Envoy min_cluster_size 6, routing_enabled 100, hints honoured, zone from env', () => {
    const config = parseZoneAware({}, 'zoneAware');
    assert.equal(config.localZone, undefined);
    assert.equal(config.minClusterSize, 6);
    assert.equal(config.routingEnabledPercent, 100);
    assert.equal(config.clientShares, undefined);
    assert.equal(config.kubernetesHints, true);
  });

  test('every field, camelCase and snake_case', () => {
    const config = parseZoneAware(
      {
        local_zone: 'a',
        min_cluster_size: 0,
        routingEnabled: 50,
        clientShares: { a: 3, b: 1, c: 0 },
        kubernetes_hints: false,
      },
      'zoneAware',
    );
    assert.equal(config.localZone, 'a');
    assert.equal(config.minClusterSize, 0);
    assert.equal(config.routingEnabledPercent, 50);
    assert.deepEqual(
      [...config.clientShares!],
      [
        ['a', 3],
        ['b', 1],
      ],
    );
    assert.equal(config.kubernetesHints, false);
  });

  const bad: readonly [string, unknown, string][] = [
    ['not an object', 'yes', 'zoneAware'],
    ['unknown field', { zone: 'a' }, 'zoneAware.zone'],
    ['empty zone', { localZone: '' }, 'zoneAware.localZone'],
    ['zone not a string', { localZone: 3 }, 'zoneAware.localZone'],
    ['negative min', { minClusterSize: -1 }, 'zoneAware.minClusterSize'],
    ['fractional min', { minClusterSize: 1.5 }, 'zoneAware.minClusterSize'],
    ['percent above 100', { routingEnabled: 101 }, 'zoneAware.routingEnabled'],
    ['shares not an object', { clientShares: [1] }, 'zoneAware.clientShares'],
    ['negative share', { clientShares: { a: -1 } }, 'zoneAware.clientShares.a'],
    ['share not a number', { clientShares: { a: '1' } }, 'zoneAware.clientShares.a'],
    ['all shares 0', { clientShares: { a: 0 } }, 'zoneAware.clientShares'],
    ['hints not a boolean', { kubernetesHints: 'yes' }, 'zoneAware.kubernetesHints'],
  ];
  for (const [name, json, field] of bad) {
    test(`rejects ${name}, naming ${field}`, () => {
      assert.throws(
        () => parseZoneAware(json, 'zoneAware'),
        (e: unknown) => e instanceof ConfigError && e.message.includes(field),
      );
    });
  }
});

describe('zoneShares (Envoy zone-aware routing)', () => {
  test('local zone holds at least its clients’ share: everything local', () => {
    const r = shares({ local: 'a', up: { a: 4, b: 4, c: 4 }, clients: { a: 4, b: 4, c: 4 } });
    assert.equal(r.mode, 'local');
    close(r.shares, { a: 1 });
  });

  test('Envoy’s documented example: local 40/40/20 clients, upstream 25/50/25', () => {
    // Local keeps 25/40 of its calls; the residual capacity is b: 10, c: 5.
    const r = shares({
      local: 'a',
      up: { a: 25, b: 50, c: 25 },
      clients: { a: 40, b: 40, c: 20 },
    });
    assert.equal(r.mode, 'spill');
    close(r.shares, { a: 0.625, b: 0.375 * (10 / 15), c: 0.375 * (5 / 15) });
  });

  test('a local endpoint out of rotation: local 2 of 3, spill the rest to the zones with spare', () => {
    // Listed 3/3/3 (clients assumed alike); in rotation 2/3/3 of 8.
    const r = shares({ local: 'a', up: { a: 2, b: 3, c: 3 }, clients: { a: 3, b: 3, c: 3 } });
    assert.equal(r.mode, 'spill');
    const local = 2 / 8 / (1 / 3);
    close(r.shares, { a: local, b: (1 - local) / 2, c: (1 - local) / 2 });
  });

  test('off below minClusterSize, with no local endpoint, with no local client', () => {
    assert.equal(shares({ local: 'a', up: { a: 2, b: 3 }, clients: { a: 1 } }).mode, 'all');
    const noLocal = shares({ local: 'a', up: { b: 3, c: 3 }, clients: { a: 1, b: 1 } });
    assert.equal(noLocal.mode, 'all');
    close(noLocal.shares, { b: 0.5, c: 0.5 });
    assert.equal(shares({ local: 'a', up: { a: 3, b: 3 }, clients: { b: 1 } }).mode, 'all');
    assert.equal(
      shares({ local: 'a', up: { a: 1, b: 1 }, clients: { a: 1, b: 1 }, min: 2 }).mode,
      'local',
    );
  });

  test('endpoints without a zone are a zone of their own, all spare capacity', () => {
    const r = shares({
      local: 'a',
      up: { a: 2, b: 4, [UNKNOWN_ZONE]: 2 },
      clients: { a: 1, b: 1 },
    });
    assert.equal(r.mode, 'spill');
    // up a .25 b .5 unknown .25; clients a .5 b .5: local .5, residual only the unknown zone.
    close(r.shares, { a: 0.5, [UNKNOWN_ZONE]: 0.5 });
  });
});

/** A fleet: zones with endpoints in rotation, and the clients' spread over the same zones. */
const fleet = fc
  .array(fc.tuple(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 200 })), {
    minLength: 1,
    maxLength: 6,
  })
  .filter((zones) => zones.some(([, clients]) => clients > 0))
  .map((zones) => ({
    up: new Map(zones.map(([up], i) => [`z${i}`, up])),
    clients: new Map(zones.map(([, c], i) => [`z${i}`, c] as const).filter(([, c]) => c > 0)),
  }));

function input(f: { up: Map<string, number>; clients: Map<string, number> }, local: string) {
  return { localZone: local, inRotation: f.up, clients: f.clients, minClusterSize: 0 };
}

describe('zoneShares properties', () => {
  test('the shares sum to 1, are above 0, and go only to zones with endpoints in rotation', () => {
    fc.assert(
      fc.property(fleet, fc.nat(5), (f, at) => {
        const zones = [...f.up.keys()];
        const r = zoneShares(input(f, zones[at % zones.length]!));
        const total = [...r.shares.values()].reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(total - 1) < 1e-9, `sum ${total}`);
        for (const [zone, share] of r.shares) {
          assert.ok(share > 0 && (f.up.get(zone) ?? 0) > 0, `${zone}: ${share}`);
        }
      }),
    );
  });

  test('the local zone keeps min(1, its endpoint share / its client share)', () => {
    fc.assert(
      fc.property(fleet, fc.nat(5), (f, at) => {
        const zones = [...f.clients.keys()];
        const local = zones[at % zones.length]!;
        const r = zoneShares(input(f, local));
        const up = f.up.get(local)! / [...f.up.values()].reduce((a, b) => a + b, 0);
        const cl = f.clients.get(local)! / [...f.clients.values()].reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(r.shares.get(local)! - Math.min(1, up / cl)) < 1e-9);
      }),
    );
  });

  test('every client zone doing it: each zone gets exactly its share of the endpoints (even load per endpoint, no zone starved or flooded)', () => {
    fc.assert(
      fc.property(fleet, (f) => {
        const upTotal = [...f.up.values()].reduce((a, b) => a + b, 0);
        const clTotal = [...f.clients.values()].reduce((a, b) => a + b, 0);
        const load = new Map<string, number>();
        for (const [zone, clients] of f.clients) {
          for (const [to, share] of zoneShares(input(f, zone)).shares) {
            load.set(to, (load.get(to) ?? 0) + (clients / clTotal) * share);
          }
        }
        for (const [zone, up] of f.up) {
          const got = load.get(zone) ?? 0;
          assert.ok(
            Math.abs(got - up / upTotal) < 1e-9,
            `${zone}: load ${got}, capacity ${up / upTotal}`,
          );
        }
      }),
    );
  });

  test('with the clients spread like the endpoints, everything stays local', () => {
    fc.assert(
      fc.property(fleet, fc.nat(5), (f, at) => {
        const zones = [...f.up.keys()];
        const r = zoneShares({ ...input(f, zones[at % zones.length]!), clients: f.up });
        assert.equal(r.mode, 'local');
      }),
    );
  });

  test('below minClusterSize it is always off', () => {
    fc.assert(
      fc.property(fleet, fc.integer({ min: 1, max: 50 }), (f, extra) => {
        const total = [...f.up.values()].reduce((a, b) => a + b, 0);
        const i: ZoneSharesInput = { ...input(f, 'z0'), minClusterSize: total + extra };
        assert.equal(zoneShares(i).mode, 'all');
      }),
    );
  });
});

describe('hintedForZone (kube-proxy’s reading of hints.forZones)', () => {
  const e = (name: string, forZones?: string[]) => ({ name, forZones });
  test('every endpoint hinted: those for the zone', () => {
    const listed = [e('1', ['a']), e('2', ['b']), e('3', ['a', 'b'])];
    assert.deepEqual(
      hintedForZone(listed, listed, 'a')?.map((x) => x.name),
      ['1', '3'],
    );
  });
  test('one endpoint without hints (or empty): hints ignored', () => {
    assert.equal(hintedForZone([e('1', ['a']), e('2')], [e('1', ['a'])], 'a'), undefined);
    assert.equal(hintedForZone([e('1', ['a']), e('2', [])], [e('1', ['a'])], 'a'), undefined);
  });
  test('no endpoint hinted for this zone, or none left: undefined (every endpoint)', () => {
    const listed = [e('1', ['a']), e('2', ['b'])];
    assert.equal(hintedForZone(listed, listed, 'c'), undefined);
    assert.equal(hintedForZone(listed, [listed[1]!], 'a'), undefined);
  });
});

describe('forZones on an endpoint', () => {
  test('kept (frozen) and absent when not given', () => {
    const e = normalizeEndpoint({ host: '10.0.0.1', port: 80, zone: 'a', forZones: ['a', 'b'] });
    assert.deepEqual(e.forZones, ['a', 'b']);
    assert.ok(Object.isFrozen(e.forZones));
    assert.equal('forZones' in normalizeEndpoint({ host: '10.0.0.1', port: 80 }), false);
  });
  test('not an array of zone names: an EndpointError naming the endpoint', () => {
    for (const forZones of ['a', [1], [''], {}]) {
      assert.throws(
        () => normalizeEndpoint({ host: '10.0.0.1', port: 80, forZones }),
        (e: unknown) =>
          e instanceof EndpointError && e.message.includes('10.0.0.1:80 has forZones'),
      );
    }
  });
});
