import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EndpointStats } from './endpoint-stats';

const NOW = 1_000_000;

describe('EndpointStats.recordLatency (peak EWMA)', () => {
  const DECAY = 10_000;

  test('is 0 until the first sample, which sets it', () => {
    const stats = new EndpointStats();
    assert.equal(stats.latencyEwmaMs, 0);
    stats.recordLatency(40, NOW, DECAY);
    assert.equal(stats.latencyEwmaMs, 40);
  });

  test('a higher sample takes over at once', () => {
    const stats = new EndpointStats();
    stats.recordLatency(40, NOW, DECAY);
    stats.recordLatency(400, NOW + 1, DECAY);
    assert.equal(stats.latencyEwmaMs, 400);
  });

  test('a lower sample after a long gap nearly replaces the average', () => {
    const stats = new EndpointStats();
    stats.recordLatency(400, NOW, DECAY);
    stats.recordLatency(10, NOW + 20 * DECAY, DECAY);
    assert.ok(stats.latencyEwmaMs > 10, String(stats.latencyEwmaMs));
    assert.ok(stats.latencyEwmaMs < 10.001, String(stats.latencyEwmaMs));
  });

  test('a lower sample after a tiny gap barely moves it', () => {
    const stats = new EndpointStats();
    stats.recordLatency(400, NOW, DECAY);
    stats.recordLatency(10, NOW + 1, DECAY);
    assert.ok(stats.latencyEwmaMs < 400, String(stats.latencyEwmaMs));
    assert.ok(stats.latencyEwmaMs > 399.9, String(stats.latencyEwmaMs));
  });

  test('after one decay period, e^-1 of the old average is kept', () => {
    const stats = new EndpointStats();
    stats.recordLatency(100, NOW, DECAY);
    stats.recordLatency(50, NOW + DECAY, DECAY);
    const expected = 100 * Math.exp(-1) + 50 * (1 - Math.exp(-1));
    assert.ok(Math.abs(stats.latencyEwmaMs - expected) < 1e-9, String(stats.latencyEwmaMs));
  });

  test('the gap is measured from the previous sample, not the first', () => {
    const stats = new EndpointStats();
    stats.recordLatency(100, NOW, DECAY);
    stats.recordLatency(100, NOW + 20 * DECAY, DECAY);
    stats.recordLatency(50, NOW + 20 * DECAY + 1, DECAY);
    assert.ok(stats.latencyEwmaMs > 99.9, String(stats.latencyEwmaMs));
  });

  test('a clock going backwards is treated as no time passing', () => {
    const stats = new EndpointStats();
    stats.recordLatency(100, NOW, DECAY);
    stats.recordLatency(50, NOW - DECAY, DECAY);
    assert.equal(stats.latencyEwmaMs, 100);
  });
});
