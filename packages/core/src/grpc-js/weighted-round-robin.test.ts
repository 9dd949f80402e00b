import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WEIGHTED_ROUND_ROBIN_POLICY } from '../weighted-round-robin-config';
import { PolicyHarness } from './testing/fake-channel';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';
const C = '10.0.0.3:80';

describe('grpc-lb.weighted_round_robin', () => {
  test('30/60/10 is exact over every 10 picks', async () => {
    const h = PolicyHarness.create({
      policy: WEIGHTED_ROUND_ROBIN_POLICY,
      endpoints: [
        { address: A, weight: 30 },
        { address: B, weight: 60 },
        { address: C, weight: 10 },
      ],
    });
    await h.ready();
    for (let round = 0; round < 5; round++) {
      assert.deepEqual(h.pickMany(10).counts, { [A]: 3, [B]: 6, [C]: 1 });
    }
    h.destroy();
  });

  test('weight 0: known and connected, no calls', async () => {
    const h = PolicyHarness.create({
      policy: WEIGHTED_ROUND_ROBIN_POLICY,
      endpoints: [{ address: A, weight: 0 }, B],
    });
    await h.ready();
    assert.deepEqual(h.pickMany(10).counts, { [B]: 10 });
    h.destroy();
  });

  test('only weight-0 endpoints ready: calls fail saying so', async () => {
    const h = PolicyHarness.create({
      policy: WEIGHTED_ROUND_ROBIN_POLICY,
      endpoints: [{ address: A, weight: 0 }, B],
    });
    await h.ready(A);
    const outcome = h.call();
    assert.equal(outcome.kind, 'fail');
    if (outcome.kind === 'fail') assert.match(outcome.details, /weight above 0/);
    h.destroy();
  });

  test('a new weight from the resolver applies without reconnecting', async () => {
    const h = PolicyHarness.create({
      policy: WEIGHTED_ROUND_ROBIN_POLICY,
      endpoints: [
        { address: A, weight: 1 },
        { address: B, weight: 1 },
      ],
    });
    await h.ready();
    const created = h.helper.created.length;
    h.update({
      endpoints: [
        { address: A, weight: 1 },
        { address: B, weight: 3 },
      ],
    });
    await h.settle();
    assert.equal(h.helper.created.length, created);
    assert.deepEqual(h.pickMany(8).counts, { [A]: 2, [B]: 6 });
    h.destroy();
  });
});
