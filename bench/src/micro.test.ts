import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runMicro } from './micro';

const POLICIES = [
  'grpc-lb.round_robin',
  'grpc-lb.weighted_round_robin',
  'grpc-lb.traffic_split',
  'round_robin',
];
const SIZES = [10, 1000, 10000];

function assertPositive(name: string, value: unknown): void {
  assert.equal(typeof value, 'number', `${name} is a number`);
  assert.ok(Number.isFinite(value) && (value as number) > 0, `${name} = ${String(value)}`);
}

function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

// Timing is not asserted: machines are noisy and the numbers are read by humans. runMicro
// itself rejects when a pick is not COMPLETE with one of its subchannels, when a picker's
// distribution is wrong, or when a destroyed balancer still holds a subchannel.
test('quick micro benchmark measures every policy at every size and leaves no timer', async () => {
  const timersBefore = timers();
  const lines: string[] = [];
  const results = await runMicro({ quick: true, log: (line) => lines.push(line) });

  const expected = POLICIES.flatMap((policy) => SIZES.map((size) => `${policy}@${size}`));
  assert.deepEqual(Object.keys(results.pickNs).sort(), [...expected].sort());
  for (const [key, ns] of Object.entries(results.pickNs)) assertPositive(`pickNs["${key}"]`, ns);
  assertPositive('update10kMs', results.update10kMs);
  assertPositive('updateDiff10kMs', results.updateDiff10kMs);
  assertPositive('applied10kMs.first', results.applied10kMs?.first);
  assertPositive('applied10kMs.diff', results.applied10kMs?.diff);
  assertPositive('updateWeights10kMs', results.updateWeights10kMs);
  assertPositive('metricsCallNs.on', results.metricsCallNs?.on);
  assertPositive('metricsCallNs.off', results.metricsCallNs?.off);
  // Without --expose-gc (as here) a heap delta can be anything a concurrent collection makes it.
  if (typeof global.gc === 'function') assertPositive('bytesPerEndpoint', results.bytesPerEndpoint);
  else assert.ok(Number.isFinite(results.bytesPerEndpoint), 'bytesPerEndpoint is a number');

  const hash = results.consistentHash;
  assert.ok(hash, 'consistent hashing is measured');
  for (const [label, share] of Object.entries(hash.movedShareOnRemove)) {
    // One of N removed: about 1/N of the hash space changes endpoint.
    const n = Number(label.split('@')[1]);
    assert.ok(share > 0.5 / n && share < 2 / n, `${label}: moved ${share}`);
  }
  for (const [label, ratio] of Object.entries(hash.loadMaxOverMean))
    assert.ok(ratio >= 1 && ratio < 2, `${label}: max/mean ${ratio}`);
  assert.deepEqual(Object.keys(hash.pickNs10k).sort(), ['maglev', 'ring_hash', 'round_robin']);
  for (const [key, ns] of Object.entries(hash.pickNs10k)) assertPositive(`pickNs10k["${key}"]`, ns);

  assert.ok(results.notes.length > 0, 'notes say what was measured');
  for (const note of results.notes) assert.ok(typeof note === 'string' && note.length > 0);
  for (const field of [
    'pickNs',
    'update10kMs',
    'updateDiff10kMs',
    'applied10kMs',
    'updateWeights10kMs',
    'metricsCallNs',
    'consistentHash',
  ]) {
    assert.ok(
      results.notes.some((note) => note.startsWith(`${field}:`)),
      `a note explains ${field}`,
    );
  }
  const gcNote = results.notes.find((note) => note.startsWith('bytesPerEndpoint:'));
  assert.ok(gcNote, 'a note explains bytesPerEndpoint');
  if (typeof global.gc !== 'function') assert.match(gcNote, /WITHOUT a forced GC/);
  assert.ok(lines.length > 0, 'progress is logged');

  assert.equal(timers(), timersBefore, 'no timer keeps the process alive');
});
