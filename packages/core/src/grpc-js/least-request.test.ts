import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connectivityState, type experimental } from '@grpc/grpc-js';
import fc from 'fast-check';
import { EndpointStats } from '../endpoint-stats';
import type { LeastRequestConfig } from '../least-request-config';
import type { EndpointChild } from './endpoint-policy';
import { LeastRequestPicker } from './least-request';

/** The time constant the balancer passes with every latency sample. */
const DECAY_MS = 10_000;
const CONFIG: LeastRequestConfig = { choiceCount: 2, defaultLatencyMs: 10 };
const ARGS = {} as experimental.PickArgs;
const PICKED = {} as experimental.PickResult;

/** mulberry32: a seeded source of [0, 1), so every run picks the same way. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Call {
  readonly child: EndpointChild;
  readonly endsAt: number;
  readonly latencyMs: number;
}

/**
 * READY endpoints under a least-request picker, driven in simulated time:
 * a call is picked, counts as outstanding, and at its end reports its
 * latency to the endpoint's stats exactly as the balancer does.
 */
class Simulation {
  now = 0;
  readonly children: EndpointChild[] = [];
  private picker!: LeastRequestPicker;
  private picked: EndpointChild | undefined;
  private readonly inFlight: Call[] = [];

  constructor(
    keys: readonly string[],
    private readonly random: () => number,
    private readonly config: LeastRequestConfig = CONFIG,
    private readonly weightOf: (child: EndpointChild) => number = () => 1,
  ) {
    for (const key of keys) this.add(key);
  }

  child(key: string): EndpointChild {
    const found = this.children.find((c) => c.key === key);
    assert.ok(found, `no endpoint ${key}`);
    return found;
  }

  /** A new READY endpoint; the picker is rebuilt over all of them, as the balancer does. */
  add(key: string): EndpointChild {
    const child: EndpointChild = {
      key,
      info: undefined,
      state: connectivityState.READY,
      stats: new EndpointStats(),
      picker: {
        pick: () => {
          this.picked = child;
          return PICKED;
        },
      },
    };
    this.children.push(child);
    this.picker = new LeastRequestPicker([...this.children], this.config, this.weightOf, {
      now: () => this.now,
      random: this.random,
    });
    return child;
  }

  pick(): EndpointChild {
    this.picked = undefined;
    assert.equal(this.picker.pick(ARGS), PICKED);
    assert.ok(this.picked, 'the picker returned the pick of one of its endpoints');
    return this.picked;
  }

  /** One call, picked now, taking `latencyMs` of simulated time. */
  call(latencyMs: number | ((child: EndpointChild) => number)): EndpointChild {
    const child = this.pick();
    const ms = typeof latencyMs === 'number' ? latencyMs : latencyMs(child);
    child.stats.outstanding++;
    this.inFlight.push({ child, endsAt: this.now + ms, latencyMs: ms });
    return child;
  }

  /** A call already in flight on `child`, ending at `endsAt` and reporting `latencyMs`. */
  inFlightAlready(child: EndpointChild, endsAt: number, latencyMs: number): void {
    child.stats.outstanding++;
    this.inFlight.push({ child, endsAt, latencyMs });
  }

  /** Moves the clock on by `ms`, ending the calls due on the way in the order they end. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      let next = -1;
      for (let i = 0; i < this.inFlight.length; i++) {
        if (
          this.inFlight[i]!.endsAt <= until &&
          (next < 0 || this.inFlight[i]!.endsAt < this.inFlight[next]!.endsAt)
        )
          next = i;
      }
      if (next < 0) break;
      const [call] = this.inFlight.splice(next, 1);
      this.now = Math.max(this.now, call!.endsAt);
      const stats = call!.child.stats;
      stats.outstanding--;
      stats.calls++;
      stats.recordLatency(call!.latencyMs, this.now, DECAY_MS);
    }
    this.now = until;
  }

  /** `count` calls, one every `gapMs`, each taking `latencyMs`: how many went to each endpoint. */
  stream(
    count: number,
    gapMs: number,
    latencyMs: number | ((child: EndpointChild) => number),
  ): Map<string, number> {
    const counts = new Map<string, number>(this.children.map((c) => [c.key, 0]));
    for (let i = 0; i < count; i++) {
      const child = this.call(latencyMs);
      counts.set(child.key, counts.get(child.key)! + 1);
      this.advance(gapMs);
    }
    return counts;
  }
}

function between(value: number, low: number, high: number, what: string): void {
  assert.ok(value >= low && value <= high, `${what}: ${value}, expected ${low}-${high}`);
}

describe('least_request after one slow call (two equal backends)', () => {
  /** Two backends, one slow call: returns the simulation and the endpoint that served it. */
  function afterOneSlowCall(seed: number) {
    const sim = new Simulation(['a', 'b'], seeded(seed));
    const slow = sim.call(1_000);
    sim.advance(1_000);
    const fast = sim.children.find((c) => c !== slow)!;
    return { sim, slow, fast };
  }

  test('the backend that served it is avoided at once (latency-aware), not forever', () => {
    const { sim, slow } = afterOneSlowCall(1);
    const next = sim.stream(1_000, 1, 1);
    between(next.get(slow.key)!, 0, 10, 'calls to the slow one in the next second');
  });

  test('after 30 s idle it gets calls again, and then half of them', () => {
    const { sim, slow } = afterOneSlowCall(2);
    sim.stream(1_000, 1, 1);
    sim.advance(30_000);
    const after = sim.stream(1_000, 1, 1);
    between(after.get(slow.key)!, 400, 600, 'calls to it of the next 1,000');
  });

  test('under a steady stream of equal fast calls it is back within 30 s, then has a fair share', () => {
    const { sim, slow } = afterOneSlowCall(3);
    sim.stream(30_000, 1, 1);
    const after = sim.stream(10_000, 1, 1);
    between(after.get(slow.key)!, 4_000, 6_000, 'calls to it of the 10,000 after 30 s');
  });

  test('with calls overlapping (5 in flight), both have a fair share again after 30 s', () => {
    const { sim, slow } = afterOneSlowCall(4);
    sim.stream(30_000, 1, 5);
    const after = sim.stream(10_000, 1, 5);
    between(after.get(slow.key)!, 4_000, 6_000, 'calls to it of the 10,000 after 30 s');
  });

  test('a backend that stays 100× slower keeps a trickle: a probe every 30 s at most', () => {
    const sim = new Simulation(['a', 'b'], seeded(5));
    const latency = (c: EndpointChild) => (c.key === 'a' ? 100 : 1);
    const counts = sim.stream(60_000, 1, latency);
    between(counts.get('a')!, 1, 6, 'calls to the slow one in 60 s');
  });
});

describe('least_request ties and unsampled endpoints', () => {
  test('two equal fresh endpoints: either may be chosen (ties are broken at random)', () => {
    const random = seeded(6);
    const counts = new Map<string, number>([
      ['a', 0],
      ['b', 0],
    ]);
    for (let trial = 0; trial < 200; trial++) {
      const key = new Simulation(['a', 'b'], random).pick().key;
      counts.set(key, counts.get(key)! + 1);
    }
    between(counts.get('a')!, 60, 140, 'first picks of a in 200 fresh pairs');
  });

  test('two endpoints with the same latency sample at the same time: either may be chosen', () => {
    const random = seeded(7);
    let a = 0;
    for (let trial = 0; trial < 200; trial++) {
      const sim = new Simulation(['a', 'b'], random);
      for (const child of sim.children) child.stats.recordLatency(5, 0, DECAY_MS);
      sim.now = 1;
      if (sim.pick().key === 'a') a++;
    }
    between(a, 60, 140, 'picks of a in 200 trials');
  });

  test('three equal endpoints with choiceCount 3: each is chosen about a third of the time', () => {
    const random = seeded(8);
    const counts = new Map<string, number>();
    for (let trial = 0; trial < 300; trial++) {
      const key = new Simulation(['a', 'b', 'c'], random, { ...CONFIG, choiceCount: 3 }).pick().key;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    for (const key of ['a', 'b', 'c']) between(counts.get(key) ?? 0, 60, 140, key);
  });

  test('a new endpoint among sampled fast ones is tried at once (an unsampled endpoint is cheap)', () => {
    const sim = new Simulation(['a'], seeded(9));
    sim.stream(100, 2, 1);
    sim.add('b');
    assert.equal(sim.call(1).key, 'b');
  });

  test('a new endpoint gets one probe at a time until its first answer, then its share', () => {
    const sim = new Simulation(['a', 'b'], seeded(10));
    sim.stream(100, 2, 1);
    sim.add('c');
    assert.equal(sim.call(1).key, 'c');
    // While the probe is in flight c costs defaultLatency (10 ms) × 1, more than a or b.
    const during = sim.stream(4, 0, 1);
    assert.equal(during.get('c'), 0, 'no second call to c while its probe is in flight');
    sim.advance(1);
    const after = sim.stream(3_000, 1, 1);
    between(after.get('c')!, 800, 1_200, 'calls to c of the next 3,000');
  });

  test('outstanding calls weigh in: with equal latency the endpoint with fewer in flight wins', () => {
    const sim = new Simulation(['a', 'b'], seeded(11));
    for (const child of sim.children) child.stats.recordLatency(5, 0, DECAY_MS);
    sim.child('a').stats.outstanding = 3;
    for (let i = 0; i < 20; i++) assert.equal(sim.pick().key, 'b');
  });

  test('latency × (outstanding + 1): 2 ms with 4 in flight loses to 5 ms with none', () => {
    const sim = new Simulation(['a', 'b'], seeded(12));
    sim.child('a').stats.recordLatency(2, 0, DECAY_MS);
    sim.child('b').stats.recordLatency(5, 0, DECAY_MS);
    sim.child('a').stats.outstanding = 4;
    assert.equal(sim.pick().key, 'b');
    sim.child('a').stats.outstanding = 1;
    assert.equal(sim.pick().key, 'a');
  });

  test('cost is divided by weight: weight 3 at 9 ms beats weight 1 at 4 ms', () => {
    const sim = new Simulation(['a', 'b'], seeded(13), CONFIG, (c) => (c.key === 'a' ? 3 : 1));
    sim.child('a').stats.recordLatency(9, 0, DECAY_MS);
    sim.child('b').stats.recordLatency(4, 0, DECAY_MS);
    for (let i = 0; i < 20; i++) assert.equal(sim.pick().key, 'a');
  });

  test('an endpoint of weight 0 is chosen only if every candidate has weight 0', () => {
    const sim = new Simulation(['a', 'b'], seeded(14), CONFIG, (c) => (c.key === 'a' ? 0 : 1));
    for (let i = 0; i < 20; i++) assert.equal(sim.pick().key, 'b');
  });

  test('one endpoint: always it', () => {
    const sim = new Simulation(['a'], seeded(15));
    sim.child('a').stats.outstanding = 100;
    assert.equal(sim.pick().key, 'a');
  });
});

describe('least_request properties', () => {
  const startingStats = fc.record({
    /** undefined: no sample yet. */
    latencyMs: fc.option(fc.double({ min: 0, max: 60_000, noNaN: true }), { nil: undefined }),
    sampledAt: fc.integer({ min: -120_000, max: 0 }),
    /** Calls in flight at the start, each ending within 5 s. */
    inFlightEnds: fc.array(fc.integer({ min: 1, max: 5_000 }), { maxLength: 20 }),
  });

  test('no starvation: from any starting stats, every endpoint of equal latency is picked within a bounded number of picks', () => {
    fc.assert(
      fc.property(
        fc.array(startingStats, { minLength: 2, maxLength: 5 }),
        fc.integer({ min: 2, max: 10 }),
        fc.integer({ min: 20, max: 200 }),
        fc.integer({ min: 1, max: 20 }),
        fc.integer(),
        (starts, choiceCount, gapMs, latencyMs, seed) => {
          const keys = starts.map((_, i) => `e${i}`);
          const sim = new Simulation(keys, seeded(seed), { choiceCount, defaultLatencyMs: 10 });
          starts.forEach((start, i) => {
            const child = sim.child(`e${i}`);
            if (start.latencyMs !== undefined)
              child.stats.recordLatency(start.latencyMs, start.sampledAt, DECAY_MS);
            for (const endsAt of start.inFlightEnds) sim.inFlightAlready(child, endsAt, latencyMs);
          });
          // The calls in flight at the start end within 5 s, and an estimate is forgotten 30 s
          // after its last sample: from then on an endpoint never picked costs 0 and wins every
          // pick it is a candidate in, which each pick makes it with probability ≥ 2/5; 300
          // more picks all miss it with probability (3/5)^300 < 1e-66.
          const bound = Math.ceil((5_000 + 30_000) / gapMs) + 300;
          const unpicked = new Set(keys);
          for (let i = 0; i < bound && unpicked.size > 0; i++) {
            unpicked.delete(sim.call(latencyMs).key);
            sim.advance(gapMs);
          }
          assert.deepEqual([...unpicked], [], `not picked in ${bound} picks`);
        },
      ),
      { numRuns: 60 },
    );
  });

  test('P2C never picks the strictly worse of its candidates, and compares choiceCount distinct ones', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            latencyMs: fc.integer({ min: 1, max: 1_000 }),
            outstanding: fc.integer({ min: 0, max: 20 }),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        fc.integer({ min: 2, max: 10 }),
        fc.integer(),
        (endpoints, choiceCount, seed) => {
          // The picker reads the weight of exactly the candidates it compares.
          const candidates = new Set<string>();
          const sim = new Simulation(
            endpoints.map((_, i) => `e${i}`),
            seeded(seed),
            { choiceCount, defaultLatencyMs: 10 },
            (c) => {
              candidates.add(c.key);
              return 1;
            },
          );
          // All sampled at the same instant: any decay scales every cost alike, so they
          // order as latency × (outstanding + 1).
          const cost = new Map<string, number>();
          endpoints.forEach((e, i) => {
            const child = sim.child(`e${i}`);
            child.stats.recordLatency(e.latencyMs, 0, DECAY_MS);
            child.stats.outstanding = e.outstanding;
            cost.set(child.key, e.latencyMs * (e.outstanding + 1));
          });
          sim.now = 100;
          for (let round = 0; round < 5; round++) {
            candidates.clear();
            const chosen = sim.pick().key;
            if (endpoints.length === 1) continue;
            assert.equal(candidates.size, Math.min(choiceCount, endpoints.length));
            assert.ok(candidates.has(chosen), `${chosen} was not a candidate`);
            const cheapest = Math.min(...[...candidates].map((key) => cost.get(key)!));
            assert.equal(
              cost.get(chosen),
              cheapest,
              `picked ${chosen} of ${[...candidates].join(', ')}`,
            );
          }
        },
      ),
    );
  });
});
