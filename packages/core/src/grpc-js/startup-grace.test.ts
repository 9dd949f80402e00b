/**
 * The startup grace (`startupGraceMs`) at the state level: a new balancer
 * (or one back from a full outage) holds READY — calls queue — after its
 * first endpoint is ready, until every endpoint has settled or the grace has
 * run out. Mocked timers; fake subchannels.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { ROUND_ROBIN_POLICY } from '../service-config';
import { CS, PolicyHarness, TimerTracker } from './testing/fake-channel';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';
const C = '10.0.0.3:80';
const ALL = [A, B, C];

function mockTime(t: TestContext): void {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
}

function harness(config: Record<string, unknown>, endpoints = ALL): PolicyHarness {
  return PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, config, endpoints });
}

/** Whether the balancer has published READY since update number `from`. */
function publishedReady(h: PolicyHarness, from = 0): boolean {
  return h.helper.updates.slice(from).some((u) => u.state === CS.READY);
}

async function tick(t: TestContext, h: PolicyHarness, ms: number): Promise<void> {
  t.mock.timers.tick(ms);
  await h.settle();
}

describe('startup grace off (the default, or 0)', () => {
  /** The states published over one start: A ready, then B, then C failing. */
  async function start(t: TestContext, config: Record<string, unknown>): Promise<string[]> {
    const h = harness(config);
    try {
      await h.setState('CONNECTING', ALL);
      await h.setState('READY', [A]);
      assert.equal(h.stateName, 'READY', 'READY with the first ready endpoint');
      assert.deepEqual(h.pickMany(10).counts, { [A]: 10 }, 'which takes every call');
      await tick(t, h, 20);
      await h.setState('READY', [B]);
      await h.setState('TRANSIENT_FAILURE', [C], 'connection refused');
      return h.helper.updates.map((u) => CS[u.state]);
    } finally {
      h.destroy();
    }
  }

  test('startupGraceMs 0 publishes exactly what no startupGraceMs does', async (t) => {
    mockTime(t);
    const without = await start(t, {});
    assert.deepEqual(await start(t, { startupGraceMs: 0 }), without);
    assert.deepEqual(await start(t, { startup_grace_ms: 0 }), without);
  });
});

describe('startup grace: 3 endpoints, A ready at 0 ms, B at 20 ms, C at 40 ms', () => {
  test('grace 100: calls queue until every endpoint is ready (40 ms), then spread evenly', async (t) => {
    mockTime(t);
    const h = harness({ startupGraceMs: 100 });
    try {
      await h.setState('CONNECTING', ALL);
      await h.setState('READY', [A]);
      assert.equal(h.stateName, 'CONNECTING');
      assert.equal(h.call().kind, 'queue');
      await tick(t, h, 20);
      await h.setState('READY', [B]);
      assert.equal(h.stateName, 'CONNECTING');
      assert.equal(h.call().kind, 'queue');
      await tick(t, h, 19);
      assert.equal(publishedReady(h), false, 'no READY picker before 40 ms');
      await tick(t, h, 1);
      await h.setState('READY', [C]);
      assert.equal(h.stateName, 'READY');
      assert.deepEqual(h.pickMany(30).counts, { [A]: 10, [B]: 10, [C]: 10 });
    } finally {
      h.destroy();
    }
  });

  test('grace 30: READY at 30 ms over the endpoints ready by then', async (t) => {
    mockTime(t);
    const h = harness({ startupGraceMs: 30 });
    try {
      await h.setState('CONNECTING', ALL);
      await h.setState('READY', [A]);
      await tick(t, h, 20);
      await h.setState('READY', [B]);
      await tick(t, h, 9);
      assert.equal(publishedReady(h), false);
      await tick(t, h, 1);
      assert.equal(h.stateName, 'READY');
      assert.deepEqual(h.pickMany(10).counts, { [A]: 5, [B]: 5 });
      const published = h.helper.updates.length;
      await tick(t, h, 10);
      await h.setState('READY', [C]);
      assert.equal(h.stateName, 'READY');
      assert.ok(
        h.helper.updates.slice(published).every((u) => u.state === CS.READY),
        'C joins a READY channel without holding it back',
      );
      assert.deepEqual(h.pickMany(30).counts, { [A]: 10, [B]: 10, [C]: 10 });
    } finally {
      h.destroy();
    }
  });
});

describe('startup grace: what counts as settled', () => {
  test('an endpoint in TRANSIENT_FAILURE is settled: READY as soon as the others are ready', async (t) => {
    mockTime(t);
    const h = harness({ startupGraceMs: 100 });
    try {
      await h.setState('CONNECTING', ALL);
      await h.setState('READY', [A]);
      await h.setState('TRANSIENT_FAILURE', [B], 'connection refused');
      assert.equal(h.stateName, 'CONNECTING', 'C still connecting');
      await tick(t, h, 10);
      await h.setState('READY', [C]);
      assert.equal(h.stateName, 'READY');
      assert.deepEqual(h.pickMany(10).counts, { [A]: 5, [C]: 5 });
    } finally {
      h.destroy();
    }
  });

  test('the others all failing: READY at once with the one ready endpoint', async (t) => {
    mockTime(t);
    const h = harness({ startupGraceMs: 100 });
    try {
      await h.setState('CONNECTING', ALL);
      await h.setState('TRANSIENT_FAILURE', [B, C], 'connection refused');
      await h.setState('READY', [A]);
      assert.equal(h.stateName, 'READY');
    } finally {
      h.destroy();
    }
  });

  test('an endpoint awaiting its first health answer is not settled; NOT_SERVING is', async (t) => {
    mockTime(t);
    const h = harness({ startupGraceMs: 100, healthCheck: { serviceName: 's' } });
    try {
      await h.ready();
      await h.setHealth(A, 'SERVING');
      assert.equal(h.stateName, 'CONNECTING');
      await h.setHealth(B, 'SERVING');
      assert.equal(h.stateName, 'CONNECTING');
      await h.setHealth(C, 'NOT_SERVING');
      assert.equal(h.stateName, 'READY');
      assert.deepEqual(h.pickMany(10).counts, { [A]: 5, [B]: 5 });
    } finally {
      h.destroy();
    }
  });
});

describe('startup grace after a full outage', () => {
  test('every endpoint down, then one back: the grace applies again', async (t) => {
    mockTime(t);
    const h = harness({ startupGraceMs: 100 });
    try {
      await h.ready();
      assert.equal(h.stateName, 'READY');
      await h.setState('TRANSIENT_FAILURE', ALL, 'connection reset');
      assert.equal(h.stateName, 'TRANSIENT_FAILURE');
      await h.setState('CONNECTING', ALL);
      const from = h.helper.updates.length;
      await h.setState('READY', [A]);
      assert.equal(h.stateName, 'CONNECTING');
      await tick(t, h, 50);
      await h.setState('READY', [B]);
      assert.equal(publishedReady(h, from), false);
      await tick(t, h, 50);
      assert.equal(h.stateName, 'READY', 'the grace ran out at 100 ms');
      assert.deepEqual(h.pickMany(10).counts, { [A]: 5, [B]: 5 });
    } finally {
      h.destroy();
    }
  });

  test('endpoints waiting out their reconnect backoff are settled: READY as soon as one is back', async (t) => {
    mockTime(t);
    const h = harness({ startupGraceMs: 100 });
    try {
      await h.ready();
      await h.setState('TRANSIENT_FAILURE', ALL, 'connection reset');
      await h.setState('CONNECTING', [A]);
      await h.setState('READY', [A]);
      assert.equal(h.stateName, 'READY');
    } finally {
      h.destroy();
    }
  });

  test('a reconnect attempt failing during the grace settles that endpoint', async (t) => {
    mockTime(t);
    const h = harness({ startupGraceMs: 100 });
    try {
      await h.ready();
      await h.setState('TRANSIENT_FAILURE', ALL, 'connection reset');
      await h.setState('CONNECTING', ALL);
      await h.setState('READY', [A]);
      assert.equal(h.stateName, 'CONNECTING');
      await h.setState('TRANSIENT_FAILURE', [B, C], 'connection refused');
      assert.equal(h.stateName, 'READY');
      assert.deepEqual(h.pickMany(4).counts, { [A]: 4 });
    } finally {
      h.destroy();
    }
  });

  test('the resolver giving no endpoints, then endpoints again: the grace applies again', async (t) => {
    mockTime(t);
    const h = harness({ startupGraceMs: 100, removalHoldDownMs: 0 });
    try {
      await h.ready();
      h.update({ endpoints: [] });
      assert.equal(h.stateName, 'TRANSIENT_FAILURE');
      h.update({ endpoints: ALL });
      await h.setState('CONNECTING', ALL);
      await h.setState('READY', [A]);
      assert.equal(h.stateName, 'CONNECTING');
    } finally {
      h.destroy();
    }
  });

  test('not after a partial outage: one endpoint down and back never holds a READY channel', async (t) => {
    mockTime(t);
    const h = harness({ startupGraceMs: 100 });
    try {
      await h.ready();
      const from = h.helper.updates.length;
      await h.setState('TRANSIENT_FAILURE', [A], 'connection reset');
      await h.setState('CONNECTING', [A]);
      await h.setState('READY', [A]);
      assert.ok(h.helper.updates.slice(from).every((u) => u.state === CS.READY));
    } finally {
      h.destroy();
    }
  });
});

describe('startup grace and config changes', () => {
  test('switched off while holding: READY at once', async (t) => {
    mockTime(t);
    const h = harness({ startupGraceMs: 100 });
    try {
      await h.setState('CONNECTING', ALL);
      await h.setState('READY', [A]);
      assert.equal(h.stateName, 'CONNECTING');
      h.update({ config: { startupGraceMs: 0 } });
      await h.settle();
      assert.equal(h.stateName, 'READY');
    } finally {
      h.destroy();
    }
  });

  test('shortened while holding: timed from the same first ready endpoint', async (t) => {
    mockTime(t);
    const h = harness({ startupGraceMs: 100 });
    try {
      await h.setState('CONNECTING', ALL);
      await h.setState('READY', [A]);
      await tick(t, h, 20);
      h.update({ config: { startupGraceMs: 50 } });
      await h.settle();
      assert.equal(h.stateName, 'CONNECTING');
      await tick(t, h, 29);
      assert.equal(h.stateName, 'CONNECTING');
      await tick(t, h, 1);
      assert.equal(h.stateName, 'READY');
    } finally {
      h.destroy();
    }
  });

  test('switched on while READY: nothing is held back', async (t) => {
    mockTime(t);
    const h = harness({});
    try {
      await h.setState('CONNECTING', ALL);
      await h.setState('READY', [A]);
      h.update({ config: { startupGraceMs: 100 } });
      await h.settle();
      assert.equal(h.stateName, 'READY');
    } finally {
      h.destroy();
    }
  });
});

describe('startup grace timer', () => {
  test('one unref’d timer while holding; destroy clears it', async () => {
    const timers = TimerTracker.install();
    try {
      const h = harness({ startupGraceMs: 10_000 });
      await h.setState('CONNECTING', ALL);
      await h.setState('READY', [A]);
      await h.setState('READY', [B]);
      assert.equal(h.stateName, 'CONNECTING');
      const pending = timers.pending().filter((timer) => timer.kind === 'timeout');
      assert.equal(pending.length, 1, pending.map((timer) => timer.caller).join('\n'));
      assert.deepEqual(timers.refed(), []);
      h.destroy();
      assert.deepEqual(timers.pending(), []);
    } finally {
      timers.uninstall();
    }
  });
});
