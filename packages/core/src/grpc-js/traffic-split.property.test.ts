/**
 * Properties of the traffic_split picker over generated splits and subset
 * states, driven at the picker level (see testing/split-pickers.ts). One
 * route, subsets s0…s3 with weights w_i (W = Σ w_i); a subset is READY,
 * waiting (CONNECTING, IDLE, or connected with its health answer pending,
 * which the balancer reports as CONNECTING) or empty (no endpoint, or all
 * failing). A = Σ w_i over the READY subsets. Each property runs in well
 * under 2 s.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { experimental } from '@grpc/grpc-js';
import fc from 'fast-check';
import type { EndpointChild } from './endpoint-policy';
import {
  CS,
  endpoint,
  outcomeOf,
  pickArgs,
  QUEUED,
  splitConfig,
  splitPolicy,
  version,
  type Outcome,
} from './testing/split-pickers';

const METHOD = '/helloworld.Greeter/SayHello';
/** The policy's rules; each balancer below has its own memo. */
const policy = splitPolicy();

type Mode = 'redistribute' | 'fail';
type SubsetState = 'ready' | 'connecting' | 'idle' | 'health-pending' | 'none' | 'failing';

const READY_STATES: readonly SubsetState[] = ['ready'];
const WAITING_STATES: readonly SubsetState[] = ['connecting', 'idle', 'health-pending'];
const EMPTY_STATES: readonly SubsetState[] = ['none', 'failing'];
const kind = (state: SubsetState): 'ready' | 'waiting' | 'empty' =>
  READY_STATES.includes(state) ? 'ready' : WAITING_STATES.includes(state) ? 'waiting' : 'empty';

function subsetEndpoints(i: number, state: SubsetState): EndpointChild[] {
  const name = `s${i}`;
  const at = (j: number, s: (typeof CS)[keyof typeof CS]): EndpointChild =>
    endpoint(`10.0.${i + 1}.${j}:50051`, { state: s, labels: { version: name } });
  switch (state) {
    case 'ready':
      return [at(1, CS.READY), at(2, CS.READY), at(3, CS.CONNECTING)];
    case 'connecting':
      return [at(1, CS.CONNECTING)];
    case 'idle':
      return [at(1, CS.IDLE), at(2, CS.TRANSIENT_FAILURE)];
    case 'health-pending':
      return [at(1, CS.CONNECTING), at(2, CS.TRANSIENT_FAILURE)];
    case 'none':
      return [];
    case 'failing':
      return [at(1, CS.TRANSIENT_FAILURE), at(2, CS.TRANSIENT_FAILURE)];
  }
}

function configFor(weights: readonly number[], mode: Mode) {
  return splitConfig({
    subsets: weights.map((_, i) => ({ name: `s${i}`, labels: { version: `s${i}` } })),
    routes: [
      {
        name: 'r',
        match: { method: METHOD },
        split: weights.map((weight, i) => ({ subset: `s${i}`, weight })),
      },
    ],
    onEmptySubset: mode,
  });
}

/** One balancer: its memo outlives the pickers it builds as states change. */
class Balancer {
  private readonly memo = new Map<string, unknown>();
  private readonly args = pickArgs({ method: METHOD });

  constructor(
    private readonly weights: readonly number[],
    private readonly mode: Mode,
  ) {}

  /** `n` calls with the subsets in `states`: `s<i>`, QUEUE or FAIL each. */
  calls(states: readonly SubsetState[], n: number): string[] {
    const children = [
      ...states.flatMap((state, i) => subsetEndpoints(i, state)),
      // In no subset: the balancer builds pickers only when some endpoint is READY.
      ...version('outside', 99, 1, CS.READY),
    ];
    const picker = policy.picker(configFor(this.weights, this.mode), children, this.memo);
    return Array.from({ length: n }, () => label(outcomeOf(picker.pick(this.args))));
  }
}

function label(outcome: Outcome): string {
  if (outcome === QUEUED) return QUEUED;
  if (outcome.startsWith('FAIL: ')) return 'FAIL';
  const subset = /^10\.0\.(\d+)\./.exec(outcome)?.[1];
  assert.ok(subset !== undefined && subset !== '99', `call went to ${outcome}, outside the route`);
  return `s${Number(subset) - 1}`;
}

/** Asserts every `size` consecutive labels, from any start, count as `expected` (absent = 0). */
function assertEveryWindow(
  labels: readonly string[],
  size: number,
  expected: Readonly<Record<string, number>>,
): void {
  const keys = [...new Set([...Object.keys(expected), ...labels])];
  const prefix = new Map(keys.map((k) => [k, [0]]));
  labels.forEach((l, n) => {
    for (const k of keys) {
      const p = prefix.get(k)!;
      p.push(p[n]! + (l === k ? 1 : 0));
    }
  });
  for (let start = 0; start + size <= labels.length; start++) {
    for (const k of keys) {
      const p = prefix.get(k)!;
      const got = p[start + size]! - p[start]!;
      if (got !== (expected[k] ?? 0)) {
        assert.fail(
          `${k}: ${got} (expected ${expected[k] ?? 0}) in calls ${start}-${start + size - 1}`,
        );
      }
    }
  }
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

const anyState = fc.constantFrom<SubsetState>(...READY_STATES, ...WAITING_STATES, ...EMPTY_STATES);
const mode = fc.constantFrom<Mode>('redistribute', 'fail');

/** Weights 0-10 for 1-4 subsets, at least one above 0. */
const weightsArb = fc
  .array(fc.nat(10), { minLength: 1, maxLength: 4 })
  .filter((w) => w.some((x) => x > 0));

/** Weights, and a state per subset. */
const splitArb = weightsArb.chain((weights) =>
  fc.tuple(
    fc.constant(weights),
    fc.array(anyState, { minLength: weights.length, maxLength: weights.length }),
  ),
);

/** A state change history: phases of states and how many calls each lasted. */
const historyArb = (subsets: number) =>
  fc.array(
    fc.tuple(
      fc.array(anyState, { minLength: subsets, maxLength: subsets }),
      fc.integer({ min: 0, max: 40 }),
    ),
    { maxLength: 4 },
  );

describe('traffic_split picker properties', () => {
  test('all subsets READY: every W consecutive calls give exactly w_i to subset i (both modes)', () => {
    fc.assert(
      fc.property(weightsArb, mode, (weights, m) => {
        const W = sum(weights);
        const labels = new Balancer(weights, m).calls(
          weights.map(() => 'ready'),
          3 * W,
        );
        assertEveryWindow(labels, W, Object.fromEntries(weights.map((w, i) => [`s${i}`, w])));
      }),
      { numRuns: 200 },
    );
  });

  test('redistribute: after any history, every W·A consecutive calls give each READY subset exactly w_i·W (share w_i/A), the others none; nothing queues or fails', () => {
    fc.assert(
      fc.property(
        splitArb.chain(([weights, states]) =>
          fc.tuple(fc.constant(weights), fc.constant(states), historyArb(weights.length)),
        ),
        ([weights, states, history]) => {
          const A = sum(weights.filter((_, i) => states[i] === 'ready'));
          fc.pre(A > 0);
          const W = sum(weights);
          const balancer = new Balancer(weights, 'redistribute');
          for (const [past, n] of history) balancer.calls(past, n);
          const labels = balancer.calls(states, 2 * W * A);
          const expected = Object.fromEntries(
            weights.map((w, i) => [`s${i}`, states[i] === 'ready' ? w * W : 0]),
          );
          assertEveryWindow(labels, W * A, expected);
        },
      ),
      { numRuns: 150 },
    );
  });

  test('redistribute: a READY subset is passed over at most W − w_i times in a row, whatever the others do', () => {
    fc.assert(
      fc.property(splitArb, ([weights, states]) => {
        const W = sum(weights);
        const labels = new Balancer(weights, 'redistribute').calls(states, 3 * W);
        weights.forEach((w, i) => {
          if (states[i] !== 'ready' || w === 0) return;
          let run = 0;
          for (const l of labels) {
            run = l === `s${i}` ? 0 : run + 1;
            assert.ok(run <= W - w, `s${i} passed over ${run} times`);
          }
        });
      }),
      { numRuns: 200 },
    );
  });

  test('redistribute with no READY subset: every call queues if one is waiting, else every call fails', () => {
    fc.assert(
      fc.property(splitArb, ([weights, states]) => {
        const live = (i: number): boolean => weights[i]! > 0;
        fc.pre(!states.some((s, i) => live(i) && kind(s) === 'ready'));
        const waiting = states.some((s, i) => live(i) && kind(s) === 'waiting');
        const labels = new Balancer(weights, 'redistribute').calls(states, 20);
        assert.deepEqual(new Set(labels), new Set([waiting ? QUEUED : 'FAIL']));
      }),
      { numRuns: 200 },
    );
  });

  test('fail: after any history, every W consecutive calls give w_i to each READY subset, queue Σ w of the waiting ones and fail Σ w of the empty ones', () => {
    fc.assert(
      fc.property(
        splitArb.chain(([weights, states]) =>
          fc.tuple(fc.constant(weights), fc.constant(states), historyArb(weights.length)),
        ),
        ([weights, states, history]) => {
          const W = sum(weights);
          const balancer = new Balancer(weights, 'fail');
          for (const [past, n] of history) balancer.calls(past, n);
          const labels = balancer.calls(states, 3 * W);
          const of = (k: string): number => sum(weights.filter((_, i) => kind(states[i]!) === k));
          const expected: Record<string, number> = { [QUEUED]: of('waiting'), FAIL: of('empty') };
          weights.forEach((w, i) => {
            if (states[i] === 'ready') expected[`s${i}`] = w;
          });
          assertEveryWindow(labels, W, expected);
        },
      ),
      { numRuns: 150 },
    );
  });

  test('after any history of states, the first picker with every subset READY is exact: every W consecutive calls give w_i', () => {
    fc.assert(
      fc.property(
        weightsArb.chain((weights) =>
          fc.tuple(fc.constant(weights), mode, historyArb(weights.length)),
        ),
        ([weights, m, history]) => {
          const W = sum(weights);
          const balancer = new Balancer(weights, m);
          for (const [states, n] of history) balancer.calls(states, n);
          const labels = balancer.calls(
            weights.map(() => 'ready'),
            2 * W,
          );
          assertEveryWindow(labels, W, Object.fromEntries(weights.map((w, i) => [`s${i}`, w])));
        },
      ),
      { numRuns: 200 },
    );
  });

  test('pick cost: one endpoint picker per completed call (none otherwise), each header read at most once per route tried', () => {
    const routes = splitConfig({
      subsets: [
        { name: 'a', labels: { version: 'a' } },
        { name: 'b', labels: { version: 'b' } },
      ],
      routes: [
        {
          match: { prefix: '/x.', headers: [{ name: 'h1', exact: '1' }] },
          split: [{ subset: 'a', weight: 1 }],
        },
        {
          match: {
            headers: [
              { name: 'h1', prefix: '2' },
              { name: 'h2', present: true },
            ],
          },
          split: [
            { subset: 'a', weight: 2 },
            { subset: 'b', weight: 3 },
          ],
        },
        { match: { method: METHOD }, split: [{ subset: 'b', weight: 1 }] },
      ],
    });
    const headerMatches = 3;
    fc.assert(
      fc.property(
        fc.constantFrom<SubsetState>('ready', 'connecting', 'none'),
        fc.constantFrom<SubsetState>('ready', 'connecting', 'failing'),
        fc.array(
          fc.record({
            method: fc.constantFrom(METHOD, '/x.Y/Z', '/other.S/M'),
            h1: fc.option(fc.constantFrom('1', '2', '23'), { nil: undefined }),
            h2: fc.boolean(),
          }),
          { minLength: 1, maxLength: 30 },
        ),
        (a, b, calls) => {
          let endpointPicks = 0;
          const counted = (children: EndpointChild[]): EndpointChild[] =>
            children.map((c) => ({
              ...c,
              picker: {
                pick: (args: experimental.PickArgs) => {
                  endpointPicks++;
                  return c.picker.pick(args);
                },
              },
            }));
          const children = counted([
            ...subsetEndpoints(0, a).map((c) => relabel(c, 'a')),
            ...subsetEndpoints(1, b).map((c) => relabel(c, 'b')),
            ...version('outside', 99, 1, CS.READY),
          ]);
          const picker = policy.picker(routes, children, new Map());
          for (const call of calls) {
            const headers: Record<string, string> = {};
            if (call.h1 !== undefined) headers['h1'] = call.h1;
            if (call.h2) headers['h2'] = 'x';
            const args = pickArgs({ method: call.method, headers });
            let reads = 0;
            const get = args.metadata.get.bind(args.metadata);
            args.metadata.get = (name) => {
              reads++;
              return get(name);
            };
            endpointPicks = 0;
            const outcome = outcomeOf(picker.pick(args));
            const completed = outcome !== QUEUED && !outcome.startsWith('FAIL: ');
            assert.equal(endpointPicks, completed ? 1 : 0, outcome);
            assert.ok(reads <= headerMatches, `${reads} header reads`);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

function relabel(child: EndpointChild, versionName: string): EndpointChild {
  return endpoint(child.key, { state: child.state, labels: { version: versionName } });
}
