import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ROUND_ROBIN_POLICY } from '../service-config';
import { PolicyHarness } from './testing/fake-channel';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';
const C = '10.0.0.3:80';

describe('grpc-lb.round_robin', () => {
  test('ignores resolver weights: equal shares', async () => {
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [{ address: A, weight: 1 }, { address: B, weight: 9 }, C],
    });
    await h.ready();
    assert.deepEqual(h.pickMany(300).counts, { [A]: 100, [B]: 100, [C]: 100 });
    h.destroy();
  });

  test('strict rotation: every window of n picks visits each endpoint once', async () => {
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: [A, B, C] });
    await h.ready();
    const { order } = h.pickMany(30);
    for (let i = 0; i + 3 <= order.length; i++) {
      assert.equal(new Set(order.slice(i, i + 3)).size, 3, `window at ${i}: ${order.join(' ')}`);
    }
    h.destroy();
  });

  test('a new picker continues the rotation where the previous one stopped', async () => {
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: [A, B, C] });
    await h.ready();
    const first = h.pickMany(1).order[0]!;
    h.update({ endpoints: [A, B, C] }); // same endpoints: a new picker
    await h.settle();
    const next = h.pickMany(2).order;
    assert.equal(new Set([first, ...next]).size, 3);
    h.destroy();
  });
});
