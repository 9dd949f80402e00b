/**
 * The removal hold-down (`removalHoldDownMs`) at the state level: endpoints
 * the resolver removes en masse while connected stay in rotation for a
 * while, and come back as they were if the registry re-adds them. Mocked
 * timers; fake subchannels.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import fc from 'fast-check';
import type { ObservedBalancer } from '../observer';
import { ROUND_ROBIN_POLICY } from '../service-config';
import { isMassRemoval } from './removal-hold-down';
import { PolicyHarness, TimerTracker } from './testing/fake-channel';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';
const C = '10.0.0.3:80';
const D = '10.0.0.4:80';
const ALL = [A, B, C];

function mockTime(t: TestContext): void {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
}

async function tick(t: TestContext, h: PolicyHarness, ms: number): Promise<void> {
  t.mock.timers.tick(ms);
  await h.settle();
}

/** A balancer over `endpoints`, every one connected. */
async function connected(
  config: Record<string, unknown>,
  endpoints: string[] = ALL,
): Promise<PolicyHarness> {
  const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, config, endpoints });
  await h.ready();
  assert.equal(h.stateName, 'READY');
  return h;
}

/** How many connection attempts the balancer's subchannels were asked for, in all. */
function connectAttempts(h: PolicyHarness): number {
  let total = 0;
  for (const subchannel of h.helper.subchannels.values()) total += subchannel.startConnectingCalls;
  return total;
}

/** Whether anything still holds the subchannel of `address` (pick_first refs what it uses). */
function inUse(h: PolicyHarness, address: string): boolean {
  const subchannel = h.subchannel(address);
  return subchannel.refs !== 0 || subchannel.listenerCount !== 0;
}

describe('removal hold-down: every connected endpoint removed at once', () => {
  test('they keep taking calls, and come back as they were when the registry re-adds them', async (t) => {
    mockTime(t);
    const h = await connected({ removalHoldDownMs: 3_000 });
    try {
      const created = h.helper.created.length;
      const attempts = connectAttempts(h);
      h.update({ endpoints: [] });
      await h.settle();
      assert.equal(h.stateName, 'READY', 'no "no endpoints" failure');
      assert.deepEqual(h.pickMany(30).counts, { [A]: 10, [B]: 10, [C]: 10 });
      assert.ok(
        h.warnings.some((w) => /removed 3 of 3 connected endpoints at once/.test(w)),
        h.warnings.join('\n'),
      );
      const held = (h.lb as unknown as ObservedBalancer).snapshot();
      assert.deepEqual(
        held.map((e) => [e.address, e.heldUntil]),
        ALL.map((address) => [address, 1_000_000 + 3_000]),
        'the snapshot says until when each is held',
      );
      await tick(t, h, 150);
      h.update({ endpoints: ALL });
      await h.settle();
      assert.equal(h.stateName, 'READY');
      assert.deepEqual(h.pickMany(30).counts, { [A]: 10, [B]: 10, [C]: 10 });
      assert.equal(h.helper.created.length, created, 'no new subchannel');
      assert.equal(connectAttempts(h), attempts, 'no reconnection');
      assert.deepEqual(
        (h.lb as unknown as ObservedBalancer).snapshot().map((e) => e.heldUntil),
        [0, 0, 0],
        'listed again: no longer held',
      );
      await tick(t, h, 10_000);
      assert.equal(h.stateName, 'READY', 'a re-added endpoint is no longer held');
      assert.deepEqual(h.pickMany(3).counts, { [A]: 1, [B]: 1, [C]: 1 });
    } finally {
      h.destroy();
    }
  });

  test('re-added one at a time: the ones not back yet stay held', async (t) => {
    mockTime(t);
    const h = await connected({ removalHoldDownMs: 3_000 });
    try {
      const created = h.helper.created.length;
      h.update({ endpoints: [] });
      await h.settle();
      await tick(t, h, 70);
      h.update({ endpoints: [A] });
      await h.settle();
      assert.deepEqual(h.pickMany(30).counts, { [A]: 10, [B]: 10, [C]: 10 });
      await tick(t, h, 50);
      h.update({ endpoints: [A, B] });
      await tick(t, h, 40);
      h.update({ endpoints: ALL });
      await h.settle();
      assert.equal(h.helper.created.length, created, 'no new subchannel');
      await tick(t, h, 10_000);
      assert.deepEqual(h.pickMany(30).counts, { [A]: 10, [B]: 10, [C]: 10 });
    } finally {
      h.destroy();
    }
  });

  test('not re-added: they leave when the hold-down ends, and calls fail saying there are none', async (t) => {
    mockTime(t);
    const h = await connected({ removalHoldDownMs: 3_000 });
    try {
      h.update({ endpoints: [] });
      await h.settle();
      await tick(t, h, 2_999);
      assert.equal(h.stateName, 'READY');
      assert.deepEqual(h.pickMany(3).counts, { [A]: 1, [B]: 1, [C]: 1 });
      await tick(t, h, 1);
      assert.equal(h.stateName, 'TRANSIENT_FAILURE');
      assert.match(h.error ?? '', /no endpoints for test:\/\/\/svc/);
      assert.equal(h.pickMany(1).failed.length, 1);
      assert.deepEqual(
        ALL.filter((a) => inUse(h, a)),
        [],
        'their connections are released',
      );
    } finally {
      h.destroy();
    }
  });

  test('a resolver error during the hold-down changes nothing: they stay until it ends', async (t) => {
    mockTime(t);
    const h = await connected({ removalHoldDownMs: 3_000 });
    try {
      h.update({ endpoints: [] });
      await h.settle();
      await tick(t, h, 1_000);
      h.resolverError('etcd unreachable');
      await h.settle();
      assert.deepEqual(h.pickMany(3).counts, { [A]: 1, [B]: 1, [C]: 1 });
      await tick(t, h, 2_000);
      assert.equal(h.stateName, 'TRANSIENT_FAILURE');
    } finally {
      h.destroy();
    }
  });

  test('the default holds them for 2 s', async (t) => {
    mockTime(t);
    const h = await connected({});
    try {
      h.update({ endpoints: [] });
      await tick(t, h, 1_999);
      assert.equal(h.stateName, 'READY');
      await tick(t, h, 1);
      assert.equal(h.stateName, 'TRANSIENT_FAILURE');
    } finally {
      h.destroy();
    }
  });

  test('replaced by a new set: the old ones serve until the new ones connect, and leave at the end', async (t) => {
    mockTime(t);
    const h = await connected({ removalHoldDownMs: 3_000 }, [A, B]);
    try {
      h.update({ endpoints: [C, D] });
      await h.settle();
      assert.deepEqual(h.pickMany(10).counts, { [A]: 5, [B]: 5 }, 'no queueing while C, D connect');
      await h.ready(C, D);
      assert.deepEqual(h.pickMany(40).counts, { [A]: 10, [B]: 10, [C]: 10, [D]: 10 });
      await tick(t, h, 3_000);
      assert.deepEqual(h.pickMany(10).counts, { [C]: 5, [D]: 5 });
      assert.ok(!inUse(h, A) && !inUse(h, B));
    } finally {
      h.destroy();
    }
  });
});

describe('removal hold-down: what ends it early', () => {
  test('a connection that fails during the hold-down leaves at once, without reconnecting', async (t) => {
    mockTime(t);
    const h = await connected({ removalHoldDownMs: 3_000 });
    try {
      h.update({ endpoints: [] });
      await h.settle();
      const attempts = h.subchannel(B).startConnectingCalls;
      await h.setState('TRANSIENT_FAILURE', [B], 'connection reset');
      assert.deepEqual(h.pickMany(20).counts, { [A]: 10, [C]: 10 });
      assert.ok(!inUse(h, B), 'its connection is released');
      assert.equal(h.subchannel(B).startConnectingCalls, attempts, 'no reconnection');
    } finally {
      h.destroy();
    }
  });

  test('a server that goes away (GOAWAY: the connection goes IDLE) leaves at once, without reconnecting', async (t) => {
    mockTime(t);
    const h = await connected({ removalHoldDownMs: 3_000 });
    try {
      h.update({ endpoints: [] });
      await h.settle();
      const attempts = h.subchannel(C).startConnectingCalls;
      await h.setState('IDLE', [C]);
      assert.deepEqual(h.pickMany(20).counts, { [A]: 10, [B]: 10 });
      assert.ok(!inUse(h, C));
      assert.equal(h.subchannel(C).startConnectingCalls, attempts, 'no reconnection');
      await h.setState('IDLE', [A, B]);
      assert.equal(h.stateName, 'TRANSIENT_FAILURE');
      assert.match(h.error ?? '', /no endpoints for test:\/\/\/svc/);
    } finally {
      h.destroy();
    }
  });

  test('a held endpoint whose health check fails leaves at once', async (t) => {
    mockTime(t);
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { removalHoldDownMs: 3_000, healthCheck: { serviceName: '' } },
      endpoints: ALL,
    });
    try {
      await h.ready();
      for (const a of ALL) await h.setHealth(a, 'SERVING');
      assert.deepEqual(h.pickMany(3).counts, { [A]: 1, [B]: 1, [C]: 1 });
      h.update({ endpoints: [] });
      await h.settle();
      assert.deepEqual(h.pickMany(3).counts, { [A]: 1, [B]: 1, [C]: 1 });
      await h.setHealth(A, 'NOT_SERVING');
      assert.deepEqual(h.pickMany(20).counts, { [B]: 10, [C]: 10 });
      assert.ok(!inUse(h, A));
    } finally {
      h.destroy();
    }
  });

  test('removalHoldDownMs set to 0 while endpoints are held lets them go', async (t) => {
    mockTime(t);
    const h = await connected({ removalHoldDownMs: 3_000 });
    try {
      h.update({ endpoints: [] });
      await h.settle();
      assert.equal(h.stateName, 'READY');
      h.update({ config: { removalHoldDownMs: 0 } });
      await h.settle();
      assert.equal(h.stateName, 'TRANSIENT_FAILURE');
    } finally {
      h.destroy();
    }
  });
});

describe('removal hold-down: what is not held', () => {
  test('one endpoint removed of three goes at once', async (t) => {
    mockTime(t);
    const h = await connected({ removalHoldDownMs: 3_000 });
    try {
      h.update({ endpoints: [A, B] });
      await h.settle();
      assert.deepEqual(h.pickMany(20).counts, { [A]: 10, [B]: 10 });
      assert.ok(!inUse(h, C));
      assert.deepEqual(h.warnings, []);
    } finally {
      h.destroy();
    }
  });

  test('one endpoint removed of two goes at once', async (t) => {
    mockTime(t);
    const h = await connected({ removalHoldDownMs: 3_000 }, [A, B]);
    try {
      h.update({ endpoints: [A] });
      await h.settle();
      assert.deepEqual(h.pickMany(10).counts, { [A]: 10 });
      assert.ok(!inUse(h, B));
    } finally {
      h.destroy();
    }
  });

  test('endpoints that are not connected are not held', async (t) => {
    mockTime(t);
    const h = await connected({ removalHoldDownMs: 3_000 }, [A, B, C, D]);
    try {
      await h.setState('TRANSIENT_FAILURE', [C, D], 'connection refused');
      h.update({ endpoints: [A, B] });
      await h.settle();
      assert.ok(!inUse(h, C) && !inUse(h, D), 'C and D were not connected: gone at once');
    } finally {
      h.destroy();
    }
  });

  test('two of four connected endpoints removed at once are held (half)', async (t) => {
    mockTime(t);
    const h = await connected({ removalHoldDownMs: 3_000 }, [A, B, C, D]);
    try {
      h.update({ endpoints: [A, B] });
      await h.settle();
      assert.deepEqual(h.pickMany(40).counts, { [A]: 10, [B]: 10, [C]: 10, [D]: 10 });
      await tick(t, h, 3_000);
      assert.deepEqual(h.pickMany(20).counts, { [A]: 10, [B]: 10 });
    } finally {
      h.destroy();
    }
  });

  test('removalHoldDownMs 0 turns it off: every removal goes at once', async (t) => {
    mockTime(t);
    for (const config of [{ removalHoldDownMs: 0 }, { removal_hold_down_ms: 0 }]) {
      const h = await connected(config);
      try {
        h.update({ endpoints: [] });
        await h.settle();
        assert.equal(h.stateName, 'TRANSIENT_FAILURE');
        assert.match(h.error ?? '', /no endpoints for test:\/\/\/svc/);
        assert.deepEqual(
          ALL.filter((a) => inUse(h, a)),
          [],
        );
      } finally {
        h.destroy();
      }
    }
  });
});

describe('removal hold-down: timers', () => {
  test('its timer is unref()ed and destroy() leaves none', async () => {
    const timers = TimerTracker.install();
    try {
      const h = await connected({ removalHoldDownMs: 3_000 });
      h.update({ endpoints: [] });
      await h.settle();
      assert.ok(timers.pending().length > 0, 'the hold-down timer is pending');
      assert.deepEqual(timers.refed(), []);
      h.destroy();
      await h.settle();
      assert.deepEqual(
        timers.pending().map((p) => p.caller),
        [],
      );
      assert.deepEqual(h.leakedSubchannels(), []);
    } finally {
      timers.uninstall();
    }
  });
});

describe('isMassRemoval', () => {
  test('every connected endpoint removed is a mass removal; one of two or more never is', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), (ready) => {
        assert.equal(isMassRemoval(ready, ready), true);
        if (ready >= 2) assert.equal(isMassRemoval(1, ready), false);
        assert.equal(isMassRemoval(0, ready), false);
      }),
    );
  });

  test('removing more never turns a mass removal into a normal one', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 0, max: 10_000 }),
        (ready, removed) => {
          const r = Math.min(removed, ready);
          if (isMassRemoval(r, ready) && r < ready) assert.equal(isMassRemoval(r + 1, ready), true);
        },
      ),
    );
  });

  test('at least half, and at least two', () => {
    assert.equal(isMassRemoval(2, 4), true);
    assert.equal(isMassRemoval(2, 5), false);
    assert.equal(isMassRemoval(3, 5), true);
    assert.equal(isMassRemoval(1, 1), true);
    assert.equal(isMassRemoval(1, 2), false);
  });
});
