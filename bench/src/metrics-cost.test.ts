import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  aggregateMetricsCost,
  formatMetricsCost,
  metricsCostWanted,
  pairedRatios,
  spreadOf,
} from './metrics-cost';

const run = (rps: number, cpuUsPerCall = 100, errors = 0) => ({ rps, cpuUsPerCall, errors });

describe('metrics cost', () => {
  it('pairs the rounds: ratios per round, a round without a denominator left out', () => {
    assert.deepEqual(
      pairedRatios([
        [99, 100],
        [50, 0],
        [110, 100],
      ]),
      [0.99, 1.1],
    );
  });

  it('gives the median and the spread of finite values, null for none', () => {
    assert.deepEqual(spreadOf([1.02, 0.97, NaN, 0.99]), { median: 0.99, min: 0.97, max: 1.02 });
    assert.equal(spreadOf([]), null);
    assert.equal(spreadOf([Infinity]), null);
  });

  it('reports the median per-round ratio ON/OFF as the cost, against the 2 % goal', () => {
    const report = aggregateMetricsCost([
      { round: 1, on: run(985, 105), off: run(1000, 100) },
      { round: 2, on: run(1990, 104), off: run(2000, 100) },
      { round: 3, on: run(1485, 110, 2), off: run(1500, 100, 1) },
    ]);
    assert.equal(report.rpsRatio?.median, 0.99);
    assert.equal(report.rpsRatio?.min, 0.985);
    assert.equal(report.rpsRatio?.max, 0.995);
    assert.ok(Math.abs((report.costPercent ?? NaN) - 1) < 1e-9);
    assert.equal(report.met, true);
    assert.equal(report.cpuRatio?.median, 1.05);
    assert.equal(report.onRps, 1485);
    assert.equal(report.offRps, 1500);
    assert.equal(report.failedCalls, 3);
    assert.equal(report.conclusive, true);
    assert.match(formatMetricsCost(report), /cost 1\.0 % of throughput, goal < 2 %: met;/);
  });

  it('calls rounds that spread wider than the goal inconclusive', () => {
    const report = aggregateMetricsCost([
      { round: 1, on: run(1010), off: run(1000) },
      { round: 2, on: run(960), off: run(1000) },
      { round: 3, on: run(985), off: run(1000) },
    ]);
    assert.equal(report.met, true);
    assert.equal(report.conclusive, false);
    assert.match(formatMetricsCost(report), /met \(inconclusive: the rounds spread wider/);
  });

  it('calls fewer than 3 rounds inconclusive: one round has no spread to judge by', () => {
    const one = aggregateMetricsCost([{ round: 1, on: run(740), off: run(1000) }]);
    assert.equal(one.met, false);
    assert.equal(one.conclusive, false);
    assert.match(formatMetricsCost(one), /missed \(inconclusive: fewer than 3 rounds\)/);
    const two = aggregateMetricsCost([
      { round: 1, on: run(995), off: run(1000) },
      { round: 2, on: run(994), off: run(1000) },
    ]);
    assert.equal(two.conclusive, false);
  });

  it('says missed above the goal and not measured without rounds', () => {
    assert.equal(aggregateMetricsCost([{ round: 1, on: run(95), off: run(100) }]).met, false);
    const empty = aggregateMetricsCost([]);
    assert.equal(empty.met, null);
    assert.equal(empty.costPercent, null);
    assert.match(formatMetricsCost(empty), /not measured/);
  });

  it('runs when every group runs or when named', () => {
    assert.equal(metricsCostWanted(null), true);
    assert.equal(metricsCostWanted(['metrics-cost']), true);
    assert.equal(metricsCostWanted(['direct']), false);
  });
});
