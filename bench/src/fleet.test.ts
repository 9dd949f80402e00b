import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { register } from '@grpc-lb/core';
import {
  type FleetCase,
  type FleetCounts,
  type FleetReport,
  fleetCases,
  fleetReading,
  fleetRow,
  fleetTableCells,
  formatFleetTable,
  policyJson,
  ratiosToMean,
  ZONES_50_30_20,
  zoneOf,
} from './fleet';
import { simulateFleetCase } from './fleet-sim';

register({ grpc, logger: { warn: (message) => assert.fail(`unexpected warning: ${message}`) } });

const small = (
  subsetting: 'none' | 'random' | 'deterministic',
  subsetSize: number,
  simulatedClients = 40,
): FleetCase => ({
  fleet: { name: '40 × 20', clients: 40, backends: 20, zones: ZONES_50_30_20 },
  variant: { subsetting, subsetSize },
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
    assert.deepEqual(policyJson({ subsetting: 'none', subsetSize: 0 }, 3), {
      'grpc-lb.round_robin': { removalHoldDownMs: 0 },
    });
    assert.deepEqual(policyJson({ subsetting: 'deterministic', subsetSize: 30 }, 3), {
      'grpc-lb.round_robin': {
        removalHoldDownMs: 0,
        subsetting: { subsetSize: 30, mode: 'deterministic', clientId: 3 },
      },
    });
  });

  test('ratios to the mean: max, nearest-rank p99, min', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    const r = ratiosToMean(values);
    assert.equal(r.max, 100 / 50.5);
    assert.equal(r.p99, 99 / 50.5);
    assert.equal(r.min, 1 / 50.5);
  });

  test('the quick cases are the 1,000 × 1,000 fleet three ways and the SRE book example; full adds subset 25', () => {
    const names = (quick: boolean) =>
      fleetCases(quick).map(
        (c) => `${c.fleet.name} ${c.variant.subsetting} ${c.variant.subsetSize}`,
      );
    assert.deepEqual(names(true), [
      '1,000 × 1,000 none 0',
      '1,000 × 1,000 random 30',
      '1,000 × 1,000 deterministic 30',
      '300 × 300 random 90',
      '300 × 300 deterministic 90',
    ]);
    assert.equal(names(false).length, 7);
  });

  test('a row over repeats gives medians and ranges; the table has one line per row', () => {
    const run = (spread: number): FleetCounts => ({
      connections: [10 - spread, 10, 10 + spread],
      calls: [100, 100, 100],
      crossZoneCalls: 60,
      totalCalls: 300,
      add: { opened: 1, closed: 1, clientsChanged: 1 },
      remove: { opened: 2, closed: 2, clientsChanged: 2 },
    });
    const c: FleetCase = { ...small('random', 5), repeats: 3 };
    const row = fleetRow(c, [run(1), run(3), run(2)], 12);
    assert.deepEqual(row.connMin, { median: 8, min: 7, max: 9 });
    assert.deepEqual(row.connMax, { median: 12, min: 11, max: 13 });
    assert.ok(Math.abs(row.crossZoneShare - 0.2) < 1e-12);
    const report: FleetReport = {
      callsPerClient: 1000,
      rows: [row],
      sreBook: { minOverMean: 0.63, maxOverMean: 1.21 },
    };
    const cells = fleetTableCells(report);
    assert.equal(cells.length, 2);
    assert.equal(cells[1]![1], 'random 5');
    assert.match(cells[1]![2]!, /^8 \(7–9\) \/ 10\.0 \/ 12 \(11–13\)$/);
    assert.equal(formatFleetTable(report).split('\n').length, 2);
    assert.equal(fleetReading(report), '');
  });
});

describe('fleet: the simulation (real balancers, stand-in connections)', () => {
  test('no subsetting: every client connects to every backend; one backend added opens one connection per client', async () => {
    const counts = await simulateFleetCase(small('none', 0, 8));
    assert.deepEqual(new Set(counts.connections), new Set([40]));
    assert.deepEqual(counts.add, { opened: 40, closed: 0, clientsChanged: 40 });
    assert.deepEqual(counts.remove, { opened: 0, closed: 40, clientsChanged: 40 });
    assert.equal(sum(counts.calls), 40 * 1000);
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

  test('deterministic subsetting: 40 clients in 10 rounds of 4 slices of 5 → exactly 10 connections per backend', async () => {
    const counts = await simulateFleetCase(small('deterministic', 5));
    assert.deepEqual(new Set(counts.connections), new Set([10]));
    const load = ratiosToMean(counts.calls);
    assert.equal(load.max, 1);
  });
});
