import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { register } from '@grpc-lb/core';
import {
  type FleetCase,
  type FleetCounts,
  type FleetReport,
  type ZoneAwareVariant,
  fleetCases,
  fleetReading,
  fleetRow,
  fleetTableCells,
  formatFleetTable,
  loadByZone,
  policyJson,
  ratiosToMean,
  ZONES_50_30_20,
  zoneOf,
} from './fleet';
import { simulateFleetCase } from './fleet-sim';

register({ grpc, logger: { warn: (message) => assert.fail(`unexpected warning: ${message}`) } });

const CLIENTS_70_20_10 = [
  { zone: 'zone-a', percent: 70 },
  { zone: 'zone-b', percent: 20 },
  { zone: 'zone-c', percent: 10 },
];

const small = (
  subsetting: 'none' | 'random' | 'deterministic',
  subsetSize: number,
  simulatedClients = 40,
  zoneAware: ZoneAwareVariant = 'off',
  clientZones?: typeof CLIENTS_70_20_10,
): FleetCase => ({
  fleet: { name: '40 × 20', clients: 40, backends: 20, zones: ZONES_50_30_20, clientZones },
  variant: { subsetting, subsetSize, zoneAware },
  simulatedClients,
  repeats: 1,
});

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

describe('fleet: pure parts', () => {
  test('zones of 50/30/20 % over 10 items', () => {
    const zones = Array.from({ length: 10 }, (_, i) => zoneOf(i, 10, ZONES_50_30_20));
    assert.deepEqual(zones, [
      ...Array<string>(5).fill('zone-a'),
      ...Array<string>(3).fill('zone-b'),
      ...Array<string>(2).fill('zone-c'),
    ]);
  });

  test('each variant configures grpc-lb.round_robin, without the removal hold-down', () => {
    const fleet = small('none', 0).fleet;
    assert.deepEqual(
      policyJson({ subsetting: 'none', subsetSize: 0, zoneAware: 'off' }, 3, fleet),
      {
        'grpc-lb.round_robin': { removalHoldDownMs: 0 },
      },
    );
    assert.deepEqual(
      policyJson({ subsetting: 'deterministic', subsetSize: 30, zoneAware: 'off' }, 3, fleet),
      {
        'grpc-lb.round_robin': {
          removalHoldDownMs: 0,
          subsetting: { subsetSize: 30, mode: 'deterministic', clientId: 3 },
        },
      },
    );
  });

  test("zone-aware variants give the client's own zone, and clientShares the clients' spread", () => {
    const fleet = small('none', 0, 40, 'off', CLIENTS_70_20_10).fleet;
    // Client 30 of 40 at 70/20/10 is in zone-b (28 ≤ 30 < 36).
    assert.deepEqual(
      policyJson({ subsetting: 'random', subsetSize: 5, zoneAware: 'on' }, 30, fleet),
      {
        'grpc-lb.round_robin': {
          removalHoldDownMs: 0,
          subsetting: { subsetSize: 5 },
          zoneAware: { localZone: 'zone-b' },
        },
      },
    );
    assert.deepEqual(
      policyJson({ subsetting: 'none', subsetSize: 0, zoneAware: 'clientShares' }, 0, fleet),
      {
        'grpc-lb.round_robin': {
          removalHoldDownMs: 0,
          zoneAware: {
            localZone: 'zone-a',
            clientShares: { 'zone-a': 70, 'zone-b': 20, 'zone-c': 10 },
          },
        },
      },
    );
  });

  test('load by zone: the mean calls per backend of each zone against the mean of all', () => {
    // 10 backends at 50/30/20: a = 0-4, b = 5-7, c = 8-9.
    const calls = [14, 14, 14, 14, 14, 6, 8, 6, 5, 5];
    const byZone = loadByZone(calls, 10, ZONES_50_30_20);
    assert.deepEqual(
      byZone.map((z) => z.zone),
      ['zone-a', 'zone-b', 'zone-c'],
    );
    assert.deepEqual(
      byZone.map((z) => Math.round(z.overMean * 1e9) / 1e9),
      [1.4, 2 / 3, 0.5].map((v) => Math.round(v * 1e9) / 1e9),
    );
  });

  test('ratios to the mean: max, nearest-rank p99, min', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    const r = ratiosToMean(values);
    assert.equal(r.max, 100 / 50.5);
    assert.equal(r.p99, 99 / 50.5);
    assert.equal(r.min, 1 / 50.5);
  });

  test('the quick cases: 1,000 × 1,000 three ways, two of them zone-aware too, the SRE book example; full adds the rest', () => {
    const names = (quick: boolean) =>
      fleetCases(quick).map(
        (c) =>
          `${c.fleet.name} ${c.variant.subsetting} ${c.variant.subsetSize} ${c.variant.zoneAware}`,
      );
    assert.deepEqual(names(true), [
      '1,000 × 1,000 none 0 off',
      '1,000 × 1,000 random 30 off',
      '1,000 × 1,000 deterministic 30 off',
      '1,000 × 1,000 none 0 on',
      '1,000 × 1,000 random 30 on',
      '300 × 300 random 90 off',
      '300 × 300 deterministic 90 off',
    ]);
    const full = names(false);
    for (const subsetting of ['none 0', 'random 30', 'deterministic 30']) {
      for (const zoneAware of ['off', 'on']) {
        assert.ok(
          full.includes(`1,000 × 1,000 ${subsetting} ${zoneAware}`),
          `${subsetting} ${zoneAware}`,
        );
      }
    }
    const skewed = fleetCases(false).filter((c) => c.fleet.clientZones !== undefined);
    assert.deepEqual(
      skewed.map((c) => c.variant.zoneAware),
      ['off', 'on', 'clientShares'],
    );
    assert.equal(full.length, 13);
  });

  test('a row over repeats gives medians and ranges; the table has one line per row', () => {
    const run = (spread: number): FleetCounts => ({
      connections: [10 - spread, 10, 10 + spread],
      // The 20 backends of `small`, 10/6/4 per zone.
      calls: Array<number>(20).fill(100),
      crossZoneCalls: 60,
      totalCalls: 300,
      connectionsWithCalls: 15,
      add: { opened: 1, closed: 1, clientsChanged: 1 },
      remove: { opened: 2, closed: 2, clientsChanged: 2 },
    });
    const c: FleetCase = { ...small('random', 5), repeats: 3 };
    const row = fleetRow(c, [run(1), run(3), run(2)], 12);
    assert.deepEqual(row.connMin, { median: 8, min: 7, max: 9 });
    assert.deepEqual(row.connMax, { median: 12, min: 11, max: 13 });
    assert.ok(Math.abs(row.crossZoneShare - 0.2) < 1e-12);
    assert.equal(row.connectionsWithCallsShare, 0.5);
    const report: FleetReport = {
      callsPerClient: 1000,
      rows: [row],
      sreBook: { minOverMean: 0.63, maxOverMean: 1.21 },
    };
    const cells = fleetTableCells(report);
    assert.equal(cells.length, 2);
    assert.equal(cells[1]![1], 'random 5');
    assert.equal(cells[1]![2], 'off');
    assert.match(cells[1]![3]!, /^8 \(7–9\) \/ 10\.0 \/ 12 \(11–13\)$/);
    const byZone = cells[0]!.indexOf('load by zone a / b / c');
    assert.ok(byZone > 0);
    assert.equal(cells[1]![byZone], '1.00 / 1.00 / 1.00');
    assert.equal(formatFleetTable(report).split('\n').length, 2);
    assert.equal(fleetReading(report), '');
  });

  test('the reading compares each zone-aware row with the same subsetting without it', () => {
    const counts = (calls: number[], crossZoneCalls: number): FleetCounts => ({
      connections: Array<number>(20).fill(10),
      calls,
      crossZoneCalls,
      totalCalls: 40_000,
      connectionsWithCalls: 200,
      add: { opened: 1, closed: 1, clientsChanged: 1 },
      remove: { opened: 1, closed: 1, clientsChanged: 1 },
    });
    const off = small('random', 5);
    const on = small('random', 5, 40, 'on');
    const report: FleetReport = {
      callsPerClient: 1000,
      rows: [
        fleetRow(off, [counts([...Array<number>(19).fill(1900), 3900], 24_800)], 1),
        fleetRow(on, [counts([...Array<number>(19).fill(1800), 5800], 0)], 1),
      ],
      sreBook: { minOverMean: 0.63, maxOverMean: 1.21 },
    };
    assert.equal(
      fleetReading(report),
      '40 × 20, random 5: zone-aware routing takes cross-zone calls from 62.0 % to 0.0 % and the ' +
        "busiest backend's load from 1.95 to 2.90 × the mean (only the subset's members in the " +
        "client's zone take calls).",
    );
  });

  test('the reading names the local overload and the spill of a fleet whose clients are not spread like its backends', () => {
    const base = small('none', 0, 10, 'on', CLIENTS_70_20_10);
    const counts = (calls: number[], crossZoneCalls: number): FleetCounts => ({
      connections: Array<number>(20).fill(40),
      calls,
      crossZoneCalls,
      totalCalls: 40_000,
      connectionsWithCalls: 800,
      add: { opened: 40, closed: 0, clientsChanged: 40 },
      remove: { opened: 0, closed: 40, clientsChanged: 40 },
    });
    // 10/6/4 backends; 28/8/4 clients of 1,000 calls each.
    const local = [
      ...Array<number>(10).fill(2800),
      ...Array<number>(6).fill(8000 / 6),
      ...Array<number>(4).fill(1000),
    ];
    const even = Array<number>(20).fill(2000);
    const report: FleetReport = {
      callsPerClient: 1000,
      rows: [
        fleetRow(base, [counts(local, 0)], 1),
        fleetRow(
          { ...base, variant: { ...base.variant, zoneAware: 'clientShares' } },
          [counts(even, 8000)],
          1,
        ),
      ],
      sreBook: { minOverMean: 0.63, maxOverMean: 1.21 },
    };
    assert.equal(fleetTableCells(report)[2]![2], 'on, clientShares 70/20/10');
    assert.equal(
      fleetReading(report),
      'Clients 70/20/10 over backends 50/30/20, zone-aware: assumed spread like the backends, every ' +
        "call stays local (0.0 % cross-zone) and the first zone's backends take 1.40 × the mean load; " +
        'told the spread (clientShares), 20.0 % spill and the busiest backend takes 1.00 × the mean.',
    );
  });
});

describe('fleet: the simulation (real balancers, stand-in connections)', () => {
  test('no subsetting: every client connects to every backend; one backend added opens one connection per client', async () => {
    const counts = await simulateFleetCase(small('none', 0, 8));
    assert.deepEqual(new Set(counts.connections), new Set([40]));
    assert.deepEqual(counts.add, { opened: 40, closed: 0, clientsChanged: 40 });
    assert.deepEqual(counts.remove, { opened: 0, closed: 40, clientsChanged: 40 });
    assert.equal(sum(counts.calls), 40 * 1000);
    assert.equal(counts.connectionsWithCalls, 40 * 20);
  });

  test('random subsetting: each client holds subsetSize connections; one backend added or removed moves at most one per client', async () => {
    const counts = await simulateFleetCase(small('random', 5));
    assert.equal(sum(counts.connections), 40 * 5);
    for (const churn of [counts.add, counts.remove]) {
      assert.ok(churn.opened <= churn.clientsChanged && churn.closed <= churn.clientsChanged);
    }
    assert.equal(sum(counts.calls), 40 * 1000);
    assert.ok(counts.crossZoneCalls > 0 && counts.crossZoneCalls < counts.totalCalls);
  });

  test('zone-aware, clients spread like backends: no call leaves its zone and every backend gets the same load', async () => {
    const counts = await simulateFleetCase(small('none', 0, 10, 'on'));
    assert.equal(counts.crossZoneCalls, 0);
    assert.ok(Math.abs(sum(counts.calls) - 40 * 1000) < 1e-6);
    // Only the local connections carry calls: 20 × 10 + 12 × 6 + 8 × 4 of 40 × 20.
    assert.equal(counts.connectionsWithCalls, 304);
    const load = ratiosToMean(counts.calls);
    assert.ok(load.max < 1.01 && load.min > 0.99, `load ${load.min}-${load.max}`);
  });

  test('zone-aware, clients 70/20/10 over backends 50/30/20: without clientShares zone a takes 1.4 × the mean; with them it spills 2/7 and the load is even', async () => {
    const local = await simulateFleetCase(small('none', 0, 10, 'on', CLIENTS_70_20_10));
    assert.equal(local.crossZoneCalls, 0);
    const byZone = loadByZone(local.calls, 20, ZONES_50_30_20).map((z) => z.overMean);
    assert.ok(Math.abs(byZone[0]! - 1.4) < 0.01, `zone a ${byZone[0]}`);
    const spilled = await simulateFleetCase(small('none', 0, 10, 'clientShares', CLIENTS_70_20_10));
    // Zone a's clients (70 %) keep 5/7 of their calls: 70 % × 2/7 = 20 % cross zones.
    assert.ok(Math.abs(spilled.crossZoneCalls / spilled.totalCalls - 0.2) < 0.005);
    const load = ratiosToMean(spilled.calls);
    assert.ok(load.max < 1.02 && load.min > 0.98, `load ${load.min}-${load.max}`);
  });

  test("zone-aware with random subsetting: calls go only to the members of the client's own zone", async () => {
    // A subset of 17 of 20 leaves out 3: every client keeps a member of its zone (the smallest has 4).
    const counts = await simulateFleetCase(small('random', 17, 40, 'on'));
    assert.equal(sum(counts.connections), 40 * 17);
    assert.equal(counts.crossZoneCalls, 0);
  });

  test('deterministic subsetting: 40 clients in 10 rounds of 4 slices of 5 → exactly 10 connections per backend', async () => {
    const counts = await simulateFleetCase(small('deterministic', 5));
    assert.deepEqual(new Set(counts.connections), new Set([10]));
    const load = ratiosToMean(counts.calls);
    assert.equal(load.max, 1);
  });
});
