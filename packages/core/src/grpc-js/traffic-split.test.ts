import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EndpointChild } from './endpoint-policy';
import {
  CS,
  endpoint,
  foreignEndpoint,
  pickMany,
  QUEUED,
  splitConfig,
  splitPolicy,
  tally,
  version,
  type CallSpec,
  type Outcome,
} from './testing/split-pickers';

const METHOD = '/helloworld.Greeter/SayHello';
const CALL: CallSpec = { method: METHOD };

type Mode = 'redistribute' | 'fail';

/** Subsets v1, v2, v3 by the `version` label; one route on METHOD with `split`; no default route. */
function config(
  split: Record<string, number>,
  onEmptySubset: Mode = 'redistribute',
  subsetPolicy = 'round_robin',
) {
  return splitConfig({
    subsets: ['v1', 'v2', 'v3'].map((name) => ({ name, labels: { version: name } })),
    routes: [
      {
        name: 'hello',
        match: { method: METHOD },
        split: Object.entries(split).map(([subset, weight]) => ({ subset, weight })),
      },
    ],
    onEmptySubset,
    subsetPolicy,
  });
}

/** Counts of `outcomes` per subset (`v1`…, from the address 10.0.<n>.x), QUEUE and FAIL. */
function bySubset(outcomes: readonly Outcome[]): Record<string, number> {
  return tally(outcomes.map((o) => /^10\.0\.(\d+)\./.exec(o)?.[1]?.replace(/^/, 'v') ?? o));
}

/** Every `size` consecutive outcomes (not only aligned windows) hold exactly `expected`. */
function assertEveryWindow(
  outcomes: readonly Outcome[],
  size: number,
  expected: Record<string, number>,
  count: (window: readonly Outcome[]) => Record<string, number> = bySubset,
): void {
  for (let start = 0; start + size <= outcomes.length; start++) {
    const window = outcomes.slice(start, start + size);
    assert.deepEqual(
      count(window),
      expected,
      `calls ${start}-${start + size - 1}: ${window.join(' ')}`,
    );
  }
}

const v1Ready = (): EndpointChild[] => version('v1', 1, 2, CS.READY);
/** A READY endpoint in no subset: the balancer only builds a picker when some endpoint is READY. */
const outsider = (): EndpointChild[] => version('v9', 9, 1, CS.READY);

interface Case {
  readonly name: string;
  readonly mode: Mode;
  readonly split: Record<string, number>;
  readonly endpoints: () => EndpointChild[];
  readonly subsetPolicy?: 'weighted_round_robin';
  /** Of 100 calls to the route: per endpoint address, QUEUE and FAIL. */
  readonly expect: Record<string, number>;
  /** Text every failed call's message must contain. */
  readonly failText?: string;
}

const V1A = '10.0.1.1:50051';
const V1B = '10.0.1.2:50051';
const V3A = '10.0.3.1:50051';
const V3B = '10.0.3.2:50051';

const cases: Case[] = [
  {
    name: 'every subset READY: 90/10 exactly, round robin inside v1',
    mode: 'redistribute',
    split: { v1: 90, v3: 10 },
    endpoints: () => [...v1Ready(), ...version('v3', 3, 1, CS.READY)],
    expect: { [V1A]: 45, [V1B]: 45, [V3A]: 10 },
  },
  {
    name: 'v3 CONNECTING (redistribute): its 10% goes to v1, no call queues',
    mode: 'redistribute',
    split: { v1: 90, v3: 10 },
    endpoints: () => [...v1Ready(), ...version('v3', 3, 1, CS.CONNECTING)],
    expect: { [V1A]: 50, [V1B]: 50 },
  },
  {
    name: 'v3 CONNECTING (fail): its 10 calls queue, v1 still takes its 90',
    mode: 'fail',
    split: { v1: 90, v3: 10 },
    endpoints: () => [...v1Ready(), ...version('v3', 3, 1, CS.CONNECTING)],
    expect: { [V1A]: 45, [V1B]: 45, [QUEUED]: 10 },
  },
  {
    name: 'v3 IDLE (redistribute): waiting like CONNECTING',
    mode: 'redistribute',
    split: { v1: 90, v3: 10 },
    endpoints: () => [...v1Ready(), ...version('v3', 3, 1, CS.IDLE)],
    expect: { [V1A]: 50, [V1B]: 50 },
  },
  {
    // A connected endpoint whose first health answer is pending is reported CONNECTING.
    name: 'v3 waiting on a health answer, its other endpoint failing (fail): waiting, not empty — its calls queue, none fail',
    mode: 'fail',
    split: { v1: 90, v3: 10 },
    endpoints: () => [
      ...v1Ready(),
      endpoint(V3A, { state: CS.TRANSIENT_FAILURE, labels: { version: 'v3' } }),
      endpoint(V3B, { state: CS.CONNECTING, labels: { version: 'v3' } }),
    ],
    expect: { [V1A]: 45, [V1B]: 45, [QUEUED]: 10 },
  },
  {
    name: 'v3 waiting on a health answer (redistribute): its share goes to v1',
    mode: 'redistribute',
    split: { v1: 90, v3: 10 },
    endpoints: () => [...v1Ready(), ...version('v3', 3, 2, CS.CONNECTING)],
    expect: { [V1A]: 50, [V1B]: 50 },
  },
  {
    name: 'v3 has no endpoints (fail): its 10 calls fail at once, naming it',
    mode: 'fail',
    split: { v1: 90, v3: 10 },
    endpoints: v1Ready,
    expect: { [V1A]: 45, [V1B]: 45, FAIL: 10 },
    failText: 'subset "v3" (version=v3) of static:///split.test has no endpoints (route "hello")',
  },
  {
    name: 'v3 has no endpoints (redistribute): v1 takes every call',
    mode: 'redistribute',
    split: { v1: 90, v3: 10 },
    endpoints: v1Ready,
    expect: { [V1A]: 50, [V1B]: 50 },
  },
  {
    name: 'v3 all TRANSIENT_FAILURE (fail): its calls fail, naming why',
    mode: 'fail',
    split: { v1: 90, v3: 10 },
    endpoints: () => [...v1Ready(), ...version('v3', 3, 2, CS.TRANSIENT_FAILURE)],
    expect: { [V1A]: 45, [V1B]: 45, FAIL: 10 },
    failText: 'all 2 endpoints failing',
  },
  {
    name: 'v3 all TRANSIENT_FAILURE (redistribute): v1 takes every call',
    mode: 'redistribute',
    split: { v1: 90, v3: 10 },
    endpoints: () => [...v1Ready(), ...version('v3', 3, 2, CS.TRANSIENT_FAILURE)],
    expect: { [V1A]: 50, [V1B]: 50 },
  },
  {
    name: 'v3 READY with weight 0 under weighted_round_robin (fail): empty',
    mode: 'fail',
    split: { v1: 90, v3: 10 },
    subsetPolicy: 'weighted_round_robin',
    endpoints: () => [...v1Ready(), ...version('v3', 3, 1, CS.READY, 0)],
    expect: { [V1A]: 45, [V1B]: 45, FAIL: 10 },
    failText: 'have weight 0',
  },
  {
    name: '30/60/10 with v2 CONNECTING (redistribute): v1 and v3 share 3:1',
    mode: 'redistribute',
    split: { v1: 30, v2: 60, v3: 10 },
    endpoints: () => [
      ...version('v1', 1, 1, CS.READY),
      ...version('v2', 2, 3, CS.CONNECTING),
      ...version('v3', 3, 1, CS.READY),
    ],
    expect: { [V1A]: 75, [V3A]: 25 },
  },
  {
    name: '30/60/10 with v2 CONNECTING and v3 empty (redistribute): v1 takes all',
    mode: 'redistribute',
    split: { v1: 30, v2: 60, v3: 10 },
    endpoints: () => [...version('v1', 1, 1, CS.READY), ...version('v2', 2, 3, CS.CONNECTING)],
    expect: { [V1A]: 100 },
  },
  {
    name: 'every subset of the route waiting (redistribute): every call queues',
    mode: 'redistribute',
    split: { v1: 90, v3: 10 },
    endpoints: () => [
      ...version('v1', 1, 2, CS.CONNECTING),
      ...version('v3', 3, 1, CS.IDLE),
      ...outsider(),
    ],
    expect: { [QUEUED]: 100 },
  },
  {
    name: 'every subset of the route waiting (fail): every call queues, none fails',
    mode: 'fail',
    split: { v1: 90, v3: 10 },
    endpoints: () => [
      ...version('v1', 1, 2, CS.CONNECTING),
      ...version('v3', 3, 1, CS.CONNECTING),
      ...outsider(),
    ],
    expect: { [QUEUED]: 100 },
  },
  {
    name: 'v1 waiting, v3 empty (redistribute): calls queue for v1',
    mode: 'redistribute',
    split: { v1: 90, v3: 10 },
    endpoints: () => [...version('v1', 1, 2, CS.CONNECTING), ...outsider()],
    expect: { [QUEUED]: 100 },
  },
  {
    name: 'v1 waiting, v3 empty (fail): v1 calls queue, v3 calls fail',
    mode: 'fail',
    split: { v1: 90, v3: 10 },
    endpoints: () => [...version('v1', 1, 2, CS.CONNECTING), ...outsider()],
    expect: { [QUEUED]: 90, FAIL: 10 },
    failText: 'subset "v3"',
  },
  {
    name: 'no endpoint in any subset of the route (redistribute): every call fails, naming each subset',
    mode: 'redistribute',
    split: { v1: 90, v3: 10 },
    endpoints: () => [...version('v1', 1, 2, CS.TRANSIENT_FAILURE), ...outsider()],
    expect: { FAIL: 100 },
    failText:
      'route "hello" of static:///split.test: no subset can take calls: subset "v1" (version=v1) of static:///split.test: all 2 endpoints failing; subset "v3" (version=v3) of static:///split.test has no endpoints',
  },
  {
    name: 'no endpoint in any subset of the route (fail): every call fails',
    mode: 'fail',
    split: { v1: 90, v3: 10 },
    endpoints: outsider,
    expect: { FAIL: 100 },
    failText: 'has no endpoints (route "hello")',
  },
  {
    name: 'no endpoints at all: route calls fail fast',
    mode: 'redistribute',
    split: { v1: 90, v3: 10 },
    endpoints: () => [],
    expect: { FAIL: 100 },
    failText: 'no subset can take calls',
  },
];

describe('traffic_split picker: a route under each subset state (100 calls)', () => {
  for (const c of cases) {
    test(c.name, () => {
      const split = splitPolicy();
      const picker = split.picker(
        config(c.split, c.mode, c.subsetPolicy),
        c.endpoints(),
        new Map(),
      );
      const outcomes = pickMany(picker, 100, CALL);
      assert.deepEqual(tally(outcomes), c.expect);
      for (const outcome of outcomes.filter((o) => o.startsWith('FAIL: '))) {
        assert.ok(outcome.includes(c.failText ?? ''), outcome);
      }
      assert.deepEqual(split.warnings, []);
    });
  }
});

describe('traffic_split picker: state changes', () => {
  for (const mode of ['redistribute', 'fail'] as const) {
    test(`(${mode}) v1 90 / v3 10 with v3 connecting, then READY: exactly 9 v1 / 1 v3 in every 10 consecutive calls from the first picker with v3 READY`, () => {
      const split = splitPolicy();
      const memo = new Map<string, unknown>();
      const v1 = v1Ready();
      const connecting = split.picker(
        config({ v1: 90, v3: 10 }, mode),
        [...v1, ...version('v3', 3, 1, CS.CONNECTING)],
        memo,
      );
      const during = pickMany(connecting, 37, CALL);
      if (mode === 'redistribute') {
        assert.deepEqual(bySubset(during), { v1: 37 });
      } else {
        // Only v3's own share waits; the route keeps moving.
        assertEveryWindow(during, 10, { v1: 9, [QUEUED]: 1 });
      }
      const ready = split.picker(
        config({ v1: 90, v3: 10 }, mode),
        [...v1, ...version('v3', 3, 1, CS.READY)],
        memo,
      );
      assertEveryWindow(pickMany(ready, 200, CALL), 10, { v1: 9, v3: 1 });
    });
  }

  test('v2 flapping READY/CONNECTING every 10 calls: each READY stretch is exactly 3/6/1, each CONNECTING one gives v2 calls to v1 and v3 3:1', () => {
    const split = splitPolicy();
    const memo = new Map<string, unknown>();
    const cfg = config({ v1: 30, v2: 60, v3: 10 });
    const v1 = version('v1', 1, 1, CS.READY);
    const v3 = version('v3', 3, 1, CS.READY);
    const outcomes: Outcome[] = [];
    for (let flap = 0; flap < 32; flap++) {
      const v2 = version('v2', 2, 1, flap % 2 === 0 ? CS.READY : CS.CONNECTING);
      outcomes.push(...pickMany(split.picker(cfg, [...v1, ...v2, ...v3], memo), 10, CALL));
    }
    // 16 READY stretches of 3/6/1; 16 CONNECTING stretches of 3/0/1 plus v2's 16 × 6 calls
    // shared 3:1 by v1 and v3.
    assert.deepEqual(bySubset(outcomes), { v1: 48 + 48 + 72, v2: 96, v3: 16 + 16 + 24 });
    assertEveryWindow(
      outcomes.filter((_, i) => Math.floor(i / 10) % 2 === 0),
      10,
      { v1: 3, v2: 6, v3: 1 },
    );
  });

  test('config change mid-flight (the balancer clears its memo): the new split is exact from its first call', () => {
    const split = splitPolicy();
    const memo = new Map<string, unknown>();
    const endpoints = [...version('v1', 1, 1, CS.READY), ...version('v3', 3, 1, CS.READY)];
    pickMany(split.picker(config({ v1: 90, v3: 10 }), endpoints, memo), 7, CALL);
    memo.clear();
    const after = pickMany(split.picker(config({ v1: 1, v3: 1 }), endpoints, memo), 40, CALL);
    assertEveryWindow(after, 2, { v1: 1, v3: 1 });
  });

  test('a different config with the same memo (not cleared) is still picked by its own split', () => {
    const split = splitPolicy();
    const memo = new Map<string, unknown>();
    const endpoints = [
      ...version('v1', 1, 1, CS.READY),
      ...version('v2', 2, 1, CS.READY),
      ...version('v3', 3, 1, CS.READY),
    ];
    pickMany(split.picker(config({ v1: 90, v3: 10 }), endpoints, memo), 7, CALL);
    const two = splitConfig({
      subsets: [{ name: 'v2', labels: { version: 'v2' } }],
      routes: [{ split: [{ subset: 'v2', weight: 1 }] }],
    });
    assert.deepEqual(bySubset(pickMany(split.picker(two, endpoints, memo), 10, CALL)), { v2: 10 });
  });
});

describe('traffic_split picker: routes by method, prefix and header', () => {
  const routes = splitConfig({
    subsets: ['v1', 'v2', 'v3'].map((name) => ({ name, labels: { version: name } })),
    routes: [
      {
        name: 'canary',
        match: { prefix: '/helloworld.Greeter/', headers: [{ name: 'x-canary', exact: '1' }] },
        split: [{ subset: 'v3', weight: 100 }],
      },
      { name: 'hello', match: { method: METHOD }, split: [{ subset: 'v1', weight: 100 }] },
      {
        name: 'greeter',
        match: { prefix: '/helloworld.Greeter/' },
        split: [{ subset: 'v2', weight: 100 }],
      },
    ],
  });
  const endpoints = (): EndpointChild[] => [
    ...version('v1', 1, 1, CS.READY),
    ...version('v2', 2, 1, CS.READY),
    ...version('v3', 3, 1, CS.READY),
  ];
  const cases: [string, CallSpec, string][] = [
    ['the exact method goes to its route', { method: METHOD }, 'v1'],
    [
      'a header match before it takes the call first',
      { method: METHOD, headers: { 'x-canary': '1' } },
      'v3',
    ],
    [
      'a header with another value does not match',
      { method: METHOD, headers: { 'x-canary': '0' } },
      'v1',
    ],
    [
      'another method of the service takes the prefix route',
      { method: '/helloworld.Greeter/Bye' },
      'v2',
    ],
    [
      'the prefix and header route takes any method of the service',
      { method: '/helloworld.Greeter/Bye', headers: { 'x-canary': '1' } },
      'v3',
    ],
  ];
  for (const [behaviour, call, subset] of cases) {
    test(behaviour, () => {
      const picker = splitPolicy().picker(routes, endpoints(), new Map());
      assert.deepEqual(bySubset(pickMany(picker, 6, call)), { [subset]: 6 });
    });
  }

  test('a call no route matches goes round robin over every READY endpoint, in a subset or not', () => {
    const picker = splitPolicy().picker(
      routes,
      [
        ...endpoints(),
        endpoint('10.0.2.9:50051', { state: CS.CONNECTING, labels: { version: 'v2' } }),
        ...outsider(),
      ],
      new Map(),
    );
    assertEveryWindow(
      pickMany(picker, 40, { method: '/other.Service/Method', headers: { 'x-canary': '1' } }),
      4,
      { v1: 1, v2: 1, v3: 1, v9: 1 },
    );
  });
});

describe("traffic_split on a channel whose resolver is not grpc-lb's", () => {
  const labelled = splitConfig({
    subsets: [
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'v2', labels: { version: 'v2' } },
    ],
    routes: [
      { name: 'hello', match: { method: METHOD }, split: [{ subset: 'v1', weight: 1 }] },
      { name: 'rest', split: [{ subset: 'v2', weight: 1 }] },
    ],
  });
  const foreign = (): EndpointChild[] => [
    foreignEndpoint('10.1.0.1:443', CS.READY),
    foreignEndpoint('10.1.0.2:443', CS.READY),
  ];

  test('warns once per balancer, naming the endpoints and why routes and subsets cannot match', () => {
    const split = splitPolicy();
    const memo = new Map<string, unknown>();
    for (let update = 0; update < 3; update++) {
      pickMany(split.picker(labelled, foreign(), memo), 5, { method: undefined });
      memo.clear(); // as on a config change
    }
    assert.equal(split.warnings.length, 1, split.warnings.join('\n'));
    const [warning] = split.warnings as [string];
    assert.equal(
      warning,
      'grpc-lb.traffic_split on the channel to endpoints 10.1.0.1:443, 10.1.0.2:443: its resolver is not a grpc-lb one, ' +
        'so calls carry no method name (route "hello", which matches by method, prefix or regex, never matches) ' +
        'and endpoints carry no labels (subsets "v1", "v2", which select by labels, stay empty); ' +
        'use a target whose scheme grpc-lb registered',
    );
    // Another balancer (its own memo) warns for itself.
    split.picker(labelled, foreign(), new Map());
    assert.equal(split.warnings.length, 2);
  });

  test('endpoints with grpc-lb labels but picks without a method name: warns that method routes never match', () => {
    const split = splitPolicy();
    const memo = new Map<string, unknown>();
    const endpoints = [...version('v1', 1, 1, CS.READY), ...version('v2', 2, 1, CS.READY)];
    for (let i = 0; i < 3; i++) pickMany(split.picker(labelled, endpoints, memo), 5, {});
    assert.equal(split.warnings.length, 1, split.warnings.join('\n'));
    assert.equal(
      split.warnings[0],
      'grpc-lb.traffic_split on static:///split.test: its resolver is not a grpc-lb one, ' +
        'so calls carry no method name (route "hello", which matches by method, prefix or regex, never matches); ' +
        'use a target whose scheme grpc-lb registered',
    );
  });

  test('no warning from a grpc-lb resolver: labels on endpoints, the method on every pick', () => {
    const split = splitPolicy();
    const endpoints = [...version('v1', 1, 1, CS.READY), ...version('v2', 2, 1, CS.READY)];
    const outcomes = pickMany(split.picker(labelled, endpoints, new Map()), 10, CALL);
    assert.deepEqual(bySubset(outcomes), { v1: 10 });
    assert.deepEqual(split.warnings, []);
  });

  test('no warning when the config needs neither labels nor methods', () => {
    const split = splitPolicy();
    const plain = splitConfig({
      subsets: [{ name: 'all' }],
      routes: [
        {
          match: { headers: [{ name: 'x-a', present: true }] },
          split: [{ subset: 'all', weight: 1 }],
        },
      ],
    });
    const outcomes = pickMany(split.picker(plain, foreign(), new Map()), 4, {
      headers: { 'x-a': '1' },
    });
    assert.equal(tally(outcomes)['10.1.0.1:443'], 2);
    assert.deepEqual(split.warnings, []);
  });
});
