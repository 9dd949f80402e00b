import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { analyzeShares, maxShareErrorPp } from './shares';

describe('analyzeShares', () => {
  const set = ['a:1', 'b:1', 'c:1'];

  test('gives max/min and the busiest share of an even spread', () => {
    const shares = analyzeShares({ 'a:1': 100, 'b:1': 101, 'c:1': 100 }, set);
    assert.equal(shares.maxMinShare, 1.01);
    assert.equal(shares.calls, 301);
    assert.equal(shares.idleBackends, 0);
    assert.equal(shares.backends, 3);
  });

  test('counts a backend of the set that got nothing as idle and makes max/min null', () => {
    const shares = analyzeShares({ 'b:1': 500 }, set);
    assert.equal(shares.maxMinShare, null);
    assert.equal(shares.idleBackends, 2);
    assert.equal(shares.busiestShare, 1);
  });

  test('includes a backend outside the expected set', () => {
    assert.equal(analyzeShares({ 'x:1': 3 }, ['a:1']).backends, 2);
  });
});

describe('maxShareErrorPp', () => {
  test('is the largest distance from the configured share in percentage points', () => {
    const error = maxShareErrorPp({ a: 310, b: 590, c: 100 }, { a: 0.3, b: 0.6, c: 0.1 });
    assert.ok(Math.abs(error - 1) < 1e-9);
  });

  test('counts a configured backend that got nothing', () => {
    assert.ok(Math.abs(maxShareErrorPp({ a: 100 }, { a: 0.9, b: 0.1 }) - 10) < 1e-9);
  });
});
