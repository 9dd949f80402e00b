/**
 * Connection pacing at the state level: a balancer given thousands of new
 * endpoints starts at most `DEFAULT_MAX_CONNECTING` connection attempts at a
 * time (first attempts, reconnections after a failure, reconnections from
 * IDLE), the rest in resolver order as earlier ones settle; endpoints removed
 * before their turn never connect; destroy leaves no timer. Fake
 * subchannels: a connection attempt is a `startConnecting()` call, and the
 * test decides how it ends.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { ROUND_ROBIN_POLICY } from '../service-config';
import { DEFAULT_MAX_CONNECTING, SLOT_TIMEOUT_MS } from './connection-pacer';
import type { EndpointBalancer } from './endpoint-balancer';
import { CS, PolicyHarness, TimerTracker, type FakeSubchannel } from './testing/fake-channel';

const LIMIT = DEFAULT_MAX_CONNECTING;

function addresses(count: number, from = 0): string[] {
  return Array.from({ length: count }, (_, i) => {
    const n = from + i;
    return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}:80`;
  });
}

function pacerOf(h: PolicyHarness): EndpointBalancer<unknown>['pacer'] {
  return (h.lb as EndpointBalancer<unknown>).pacer;
}

/** Subchannels asked to connect whose attempt has not ended (the test ends attempts). */
function attemptsInProgress(h: PolicyHarness, ended: ReadonlySet<FakeSubchannel>): number {
  let n = 0;
  for (const s of h.helper.subchannels.values()) {
    if (s.startConnectingCalls > 0 && !ended.has(s)) n++;
  }
  return n;
}

/**
 * Ends every attempt in progress (READY for the addresses in `ready`, else
 * connection refused), a turn at a time, until every subchannel was asked to
 * connect; checks the limit after each turn. Returns the turns it took.
 */
async function driveToEnd(
  h: PolicyHarness,
  total: number,
  ready: ReadonlySet<string> = new Set(),
  onTurn: () => void = () => undefined,
): Promise<number> {
  const ended = new Set<FakeSubchannel>();
  let turns = 0;
  for (;;) {
    await h.settle(1);
    const inProgress = attemptsInProgress(h, ended);
    assert.ok(inProgress <= LIMIT, `${inProgress} attempts in progress (limit ${LIMIT})`);
    for (const s of h.helper.subchannels.values()) {
      if (s.startConnectingCalls === 0 || ended.has(s)) continue;
      ended.add(s);
      s.setState('CONNECTING');
      if (ready.has(s.address)) s.setState('READY');
      else s.setState('TRANSIENT_FAILURE', 'connection refused');
    }
    onTurn();
    turns++;
    if (ended.size === total) return turns;
    assert.ok(turns < 10 * (total / LIMIT) + 10, `stuck at ${ended.size} of ${total}`);
  }
}

describe('connection pacing', () => {
  test(`10,000 new endpoints: at most ${LIMIT} attempts at once, every one attempted in order, READY endpoints take calls meanwhile`, async () => {
    const all = addresses(10_000);
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: all });
    try {
      // None starts in the update's own turn (it applied 10,000 endpoints: enough for one turn);
      // they wait without a leaf or subchannel, and the first batch starts on the next turn.
      assert.equal(h.helper.created.length, 0);
      assert.equal(pacerOf(h).queued, all.length);
      assert.equal(h.stateName, 'CONNECTING');
      await h.settle(1);
      assert.equal(h.helper.created.length, LIMIT);
      assert.equal(pacerOf(h).queued, all.length - LIMIT);
      const ready = new Set([all[0]!, all[5_000]!]);
      let checkedCalls = 0;
      await driveToEnd(h, all.length, ready, () => {
        if (h.stateName !== 'READY') return;
        const picks = h.pickMany(10);
        assert.deepEqual(picks.failed, []);
        assert.equal(picks.queued, 0);
        checkedCalls++;
      });
      assert.ok(checkedCalls > 0, 'calls went to the READY endpoint while others connected');
      assert.deepEqual(
        h.helper.created,
        all,
        'each endpoint made one subchannel, in resolver order',
      );
      assert.ok(pacerOf(h).peakConnecting <= LIMIT);
      await h.settle();
      assert.equal(h.stateName, 'READY');
      assert.deepEqual(Object.keys(h.pickMany(4).counts).sort(), [...ready].sort());
    } finally {
      h.destroy();
    }
    assert.deepEqual(h.leakedSubchannels(), []);
  });

  test('up to the limit, every endpoint connects in the update itself (as without pacing)', () => {
    const all = addresses(LIMIT);
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: all });
    try {
      assert.deepEqual(h.helper.created, all);
      assert.equal(pacerOf(h).queued, 0);
    } finally {
      h.destroy();
    }
  });

  test('endpoints removed before their turn never connect; new ones in a later update wait their turn', async () => {
    const first = addresses(1_000);
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: first });
    try {
      await h.settle(1);
      // Keep the first 300 (64 of them started), drop the other 700, add 500 new ones.
      const kept = first.slice(0, 300);
      const added = addresses(500, 50_000);
      h.update({ endpoints: [...kept, ...added] });
      await driveToEnd(h, kept.length + added.length);
      assert.deepEqual(h.helper.created, [...kept, ...added]);
      for (const dropped of first.slice(300)) {
        assert.ok(!h.helper.subchannels.has(dropped), `${dropped} connected after its removal`);
      }
    } finally {
      h.destroy();
    }
  });

  test('a config change mid-pacing: pacing goes on, nothing is attempted twice', async () => {
    const all = addresses(500);
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: all });
    try {
      await h.settle(1);
      h.update({ config: { removalHoldDownMs: 0 } });
      await driveToEnd(h, all.length);
      assert.deepEqual(h.helper.created, all);
      for (const s of h.helper.subchannels.values()) assert.equal(s.startConnectingCalls, 1);
    } finally {
      h.destroy();
    }
  });

  test(`reconnections after a failure are paced too: ${LIMIT * 3} subchannels out of backoff at once`, async () => {
    const all = addresses(LIMIT * 3);
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: all });
    try {
      await driveToEnd(h, all.length);
      const before = [...h.helper.subchannels.values()].map((s) => s.startConnectingCalls);
      assert.ok(
        before.every((n) => n === 1),
        'no reconnection during the backoff',
      );
      // Every backoff ends in the same instant: grpc-js's subchannels go IDLE, pick_first asks again.
      for (const s of h.helper.subchannels.values()) s.setState('IDLE');
      await h.settle(1);
      const again = () =>
        [...h.helper.subchannels.values()].filter((s) => s.startConnectingCalls > 1);
      assert.equal(again().length, LIMIT, 'one batch of reconnections');
      for (const s of again()) s.setState('CONNECTING');
      for (const s of again()) s.setState('TRANSIENT_FAILURE', 'connection refused');
      await h.settle(2);
      assert.equal(again().length, 2 * LIMIT, 'the next batch once the first ended');
    } finally {
      h.destroy();
    }
  });

  test(`an attempt that never ends (a blackhole) frees its slot after ${SLOT_TIMEOUT_MS} ms`, async (t: TestContext) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const all = addresses(LIMIT * 2);
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: all });
    try {
      await h.settle();
      assert.equal(h.helper.created.length, LIMIT);
      t.mock.timers.tick(SLOT_TIMEOUT_MS - 1);
      await h.settle();
      assert.equal(h.helper.created.length, LIMIT, 'still waiting');
      t.mock.timers.tick(1);
      await h.settle();
      assert.equal(h.helper.created.length, 2 * LIMIT);
    } finally {
      h.destroy();
    }
  });

  test('destroy mid-pacing leaves no timer and no subchannel in use; every timer is unref’d', async (t: TestContext) => {
    const timers = TimerTracker.install();
    t.after(() => timers.uninstall());
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: addresses(1_000) });
    await h.settle();
    // Every slot held by an attempt that has not ended: the slot timeout is armed.
    assert.equal(pacerOf(h).inProgress, LIMIT);
    assert.deepEqual(
      timers.refed().map((x) => x.caller),
      [],
    );
    h.destroy();
    await h.settle();
    assert.deepEqual(
      timers.pending().map((x) => `${x.kind} ${x.caller}`),
      [],
    );
    assert.deepEqual(h.leakedSubchannels(), []);
    assert.equal(h.helper.created.length, LIMIT);
  });

  test('a leaf READY at once (a pooled connection) frees its slot at once, but one turn starts at most the limit', async () => {
    const all = addresses(LIMIT * 3);
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY });
    try {
      // The channel's pool already has these connections open.
      for (const address of all) {
        const [host, port] = address.split(':');
        h.helper.createSubchannel({ host: host!, port: Number(port) }, {}).setState(CS.READY);
      }
      h.helper.created.length = 0;
      const created = (): number => h.helper.created.length;
      h.update({ endpoints: all });
      assert.equal(created(), 0, 'more than the limit: none in the update itself');
      await h.settle(1);
      assert.equal(created(), LIMIT, 'one batch on the next turn');
      for (let turn = 0; created() < all.length; turn++) {
        assert.ok(turn < 20, `stuck at ${created()}`);
        const before = created();
        await h.settle(1);
        const started = created() - before;
        assert.ok(started <= LIMIT, `${started} started in one turn`);
      }
      await h.settle();
      assert.equal(h.stateName, 'READY');
      assert.equal(Object.keys(h.pickMany(all.length).counts).length, all.length);
    } finally {
      h.destroy();
    }
  });
});
