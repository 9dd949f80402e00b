import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EndpointStats } from './endpoint-stats';

const NOW = 1_000_000;

function close(actual: number | undefined, expected: number): void {
  assert.ok(
    actual !== undefined && Math.abs(actual - expected) < 1e-9,
    `${actual} is not ${expected}`,
  );
}

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

  test('a lower sample after a long gap (2 time constants) nearly replaces the estimate', () => {
    const stats = new EndpointStats();
    stats.recordLatency(400, NOW, DECAY);
    stats.recordLatency(10, NOW + 2 * DECAY, DECAY);
    // Decayed to 400e^-2 = 54.1, then pulled toward 10 by 1 - e^-2.
    const decayed = 400 * Math.exp(-2);
    close(stats.latencyEwmaMs, decayed * Math.exp(-2) + 10 * (1 - Math.exp(-2)));
    assert.ok(stats.latencyEwmaMs < 20, String(stats.latencyEwmaMs));
  });

  test('a lower sample after a tiny gap barely moves it', () => {
    const stats = new EndpointStats();
    stats.recordLatency(400, NOW, DECAY);
    stats.recordLatency(10, NOW + 1, DECAY);
    assert.ok(stats.latencyEwmaMs < 400, String(stats.latencyEwmaMs));
    assert.ok(stats.latencyEwmaMs > 399.9, String(stats.latencyEwmaMs));
  });

  test('a lower sample one time constant later: from the decayed estimate toward the sample by 1 - e^-1', () => {
    const stats = new EndpointStats();
    stats.recordLatency(100, NOW, DECAY);
    stats.recordLatency(30, NOW + DECAY, DECAY);
    const decayed = 100 * Math.exp(-1); // 36.8, above the sample
    close(stats.latencyEwmaMs, decayed + (30 - decayed) * (1 - Math.exp(-1)));
  });

  test('a sample above the decayed estimate replaces it, even if below the estimate at the last sample', () => {
    const stats = new EndpointStats();
    stats.recordLatency(100, NOW, DECAY);
    stats.recordLatency(50, NOW + DECAY, DECAY); // 100e^-1 = 36.8 < 50
    assert.equal(stats.latencyEwmaMs, 50);
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

describe('EndpointStats.latencyAt (decay on read)', () => {
  const DECAY = 10_000;

  test('undefined before the first sample', () => {
    assert.equal(new EndpointStats().latencyAt(NOW), undefined);
  });

  test('the sample itself right after it', () => {
    const stats = new EndpointStats();
    stats.recordLatency(40, NOW, DECAY);
    assert.equal(stats.latencyAt(NOW), 40);
  });

  test('decays toward 0 as e^(-elapsed/τ) while no sample comes', () => {
    const stats = new EndpointStats();
    stats.recordLatency(1_000, NOW, DECAY);
    close(stats.latencyAt(NOW + DECAY), 1_000 * Math.exp(-1));
    close(stats.latencyAt(NOW + 2 * DECAY), 1_000 * Math.exp(-2));
    close(stats.latencyAt(NOW + 2.99 * DECAY), 1_000 * Math.exp(-2.99));
  });

  test('reading does not change it: two reads at the same time agree, the stored estimate stays', () => {
    const stats = new EndpointStats();
    stats.recordLatency(100, NOW, DECAY);
    const first = stats.latencyAt(NOW + 5_000);
    assert.equal(stats.latencyAt(NOW + 5_000), first);
    assert.equal(stats.latencyEwmaMs, 100);
  });

  test('forgotten 3 time constants after the last sample; the next sample starts afresh', () => {
    const stats = new EndpointStats();
    stats.recordLatency(1_000, NOW, DECAY);
    assert.equal(stats.latencyAt(NOW + 3 * DECAY), undefined);
    stats.recordLatency(2, NOW + 3 * DECAY, DECAY);
    assert.equal(stats.latencyEwmaMs, 2);
    assert.equal(stats.latencyAt(NOW + 3 * DECAY), 2);
  });

  test('uses the time constant the samples came with', () => {
    const stats = new EndpointStats();
    stats.recordLatency(100, NOW, 1_000);
    close(stats.latencyAt(NOW + 1_000), 100 * Math.exp(-1));
    assert.equal(stats.latencyAt(NOW + 3_000), undefined);
  });

  test('a clock going backwards reads as no time passed', () => {
    const stats = new EndpointStats();
    stats.recordLatency(100, NOW, DECAY);
    assert.equal(stats.latencyAt(NOW - 5_000), 100);
  });

  test('an endpoint that served one slow call looks cheaper than a fresh 1 ms one within 30 s', () => {
    const slow = new EndpointStats();
    slow.recordLatency(1_000, NOW, DECAY);
    const fast = new EndpointStats();
    fast.recordLatency(1, NOW + 29_999, DECAY);
    // Not yet: 1000e^-2.9999 = 49.8 ms.
    assert.ok(slow.latencyAt(NOW + 29_999)! > fast.latencyAt(NOW + 29_999)!);
    // Forgotten at 30 s: no estimate, which least request treats as the cheapest.
    assert.equal(slow.latencyAt(NOW + 30_000), undefined);
  });
});
