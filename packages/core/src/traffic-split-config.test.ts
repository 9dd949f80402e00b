import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from './errors';
import { parseTrafficSplitConfig, type TrafficSplitConfig } from './traffic-split-config';

const SUBSETS = [
  { name: 'v1', labels: { version: 'v1' } },
  { name: 'v2', labels: { version: 'v2' } },
  { name: 'v3', labels: { version: 'v3' } },
];

/** A valid config: a method route 30/60/10, a prefix route with header matches, a default route. */
function valid(): Record<string, unknown> {
  return {
    subsets: structuredClone(SUBSETS),
    routes: [
      {
        match: { method: '/helloworld.Greeter/SayHello' },
        split: [
          { subset: 'v1', weight: 30 },
          { subset: 'v2', weight: 60 },
          { subset: 'v3', weight: 10 },
        ],
      },
      {
        name: 'canary',
        match: {
          prefix: '/helloworld.Greeter/',
          headers: [
            { name: 'x-canary', exact: '1' },
            { name: 'x-user', prefix: 'test-' },
            { name: 'x-debug', present: true },
          ],
        },
        split: [{ subset: 'v3', weight: 100 }],
      },
      { split: [{ subset: 'v2', weight: 100 }] },
    ],
  };
}

/** A config with one route whose split, match and extra route fields are given. */
function route(fields: Record<string, unknown>): Record<string, unknown> {
  return {
    subsets: structuredClone(SUBSETS),
    routes: [{ split: [{ subset: 'v1', weight: 1 }], ...fields }],
  };
}

function split(...targets: unknown[]): Record<string, unknown> {
  return route({ split: targets });
}

function match(m: unknown): Record<string, unknown> {
  return route({ match: m });
}

function header(h: unknown): Record<string, unknown> {
  return match({ headers: [h] });
}

function rejects(json: unknown, field: string, reason: RegExp): void {
  assert.throws(
    () => parseTrafficSplitConfig(json),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
      assert.equal(e.code, 'BAD_CONFIG');
      assert.equal(e.field, field);
      assert.match(e.problem, reason);
      assert.ok(
        e.message.includes(field) && e.message.includes(e.problem),
        `message names the field and the reason: ${e.message}`,
      );
      return true;
    },
  );
}

const P = 'grpc-lb.traffic_split';
const R0 = `${P}.routes[0]`;

describe('parseTrafficSplitConfig', () => {
  test('reads snake_case options like every other policy option, and refuses both spellings at once', () => {
    const camel = { ...valid(), subsetPolicy: 'weighted_round_robin', onEmptySubset: 'fail' };
    const snake = { ...valid(), subset_policy: 'weighted_round_robin', on_empty_subset: 'fail' };
    assert.deepEqual(parseTrafficSplitConfig(snake), parseTrafficSplitConfig(camel));
    assert.equal(parseTrafficSplitConfig(snake).onEmptySubset, 'fail');
    rejects({ ...snake, subsetPolicy: 'round_robin' }, `${P}.subsetPolicy`, /given twice/);
    rejects(
      { ...valid(), on_empty_subset: 'drop' },
      `${P}.on_empty_subset`,
      /"redistribute", "fail"/,
    );
  });

  test('parses a full config into the typed shape, with defaults filled in', () => {
    const expected: TrafficSplitConfig = {
      subsets: [
        { name: 'v1', labels: { version: 'v1' }, policy: 'round_robin' },
        { name: 'v2', labels: { version: 'v2' }, policy: 'round_robin' },
        { name: 'v3', labels: { version: 'v3' }, policy: 'round_robin' },
      ],
      routes: [
        {
          name: 'routes[0]',
          match: { method: '/helloworld.Greeter/SayHello', headers: [] },
          split: [
            { subset: 'v1', weight: 30 },
            { subset: 'v2', weight: 60 },
            { subset: 'v3', weight: 10 },
          ],
        },
        {
          name: 'canary',
          match: {
            prefix: '/helloworld.Greeter/',
            headers: [
              { name: 'x-canary', exact: '1' },
              { name: 'x-user', prefix: 'test-' },
              { name: 'x-debug', present: true },
            ],
          },
          split: [{ subset: 'v3', weight: 100 }],
        },
        { name: 'routes[2]', match: { headers: [] }, split: [{ subset: 'v2', weight: 100 }] },
      ],
      subsetPolicy: 'round_robin',
      onEmptySubset: 'redistribute',
    };
    assert.deepEqual(parseTrafficSplitConfig(valid()), expected);
  });

  test('subsets inherit subsetPolicy unless they set their own policy', () => {
    const config = parseTrafficSplitConfig({
      subsets: [
        { name: 'a', labels: { version: 'v1' } },
        { name: 'b', policy: 'round_robin' },
      ],
      routes: [],
      subsetPolicy: 'weighted_round_robin',
      onEmptySubset: 'fail',
    });
    assert.deepEqual(config, {
      subsets: [
        { name: 'a', labels: { version: 'v1' }, policy: 'weighted_round_robin' },
        { name: 'b', labels: {}, policy: 'round_robin' },
      ],
      routes: [],
      subsetPolicy: 'weighted_round_robin',
      onEmptySubset: 'fail',
    });
  });

  test('reads subset policies least_request and random, per subset or as subsetPolicy', () => {
    const config = parseTrafficSplitConfig({
      subsets: [
        { name: 'a', policy: 'least_request' },
        { name: 'b', policy: 'random' },
        { name: 'c' },
      ],
      routes: [],
      subset_policy: 'least_request',
    });
    assert.deepEqual(
      config.subsets.map((s) => s.policy),
      ['least_request', 'random', 'least_request'],
    );
  });

  test('compiles a route regex and header regexes once, at parse time; they match whole values', () => {
    const config = parseTrafficSplitConfig(
      match({
        regex: '/helloworld\\.Greeter/Say(Hello|Goodbye)',
        headers: [{ name: 'x-user', regex: 'test-[a-z]+' }],
      }),
    );
    const m = config.routes[0]!.match;
    assert.equal(m.regex?.source, '/helloworld\\.Greeter/Say(Hello|Goodbye)');
    assert.equal(m.regex?.matches('/helloworld.Greeter/SayGoodbye'), true);
    assert.equal(m.regex?.matches('/helloworld.Greeter/SayGoodbyeNow'), false);
    const h = m.headers[0]!;
    assert.ok('regex' in h);
    assert.equal(h.regex.matches('test-alice'), true);
    assert.equal(h.regex.matches('test-alice2'), false);
    // The parsed config prints as the JSON it came from.
    assert.deepEqual(JSON.parse(JSON.stringify(m)), {
      regex: '/helloworld\\.Greeter/Say(Hello|Goodbye)',
      headers: [{ name: 'x-user', regex: 'test-[a-z]+' }],
    });
  });

  test('accepts weight 0 beside a positive weight, and the largest weight 1,000,000', () => {
    const config = parseTrafficSplitConfig(
      split({ subset: 'v1', weight: 0 }, { subset: 'v2', weight: 1_000_000 }),
    );
    assert.deepEqual(config.routes[0]!.split, [
      { subset: 'v1', weight: 0 },
      { subset: 'v2', weight: 1_000_000 },
    ]);
  });

  test('names errors under the field path it is given', () => {
    assert.throws(
      () => parseTrafficSplitConfig({ colour: 1 }, 'loadBalancingConfig[0].grpc-lb.traffic_split'),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.field === 'loadBalancingConfig[0].grpc-lb.traffic_split.colour',
    );
  });

  const invalid: [string, unknown, string, RegExp][] = [
    // The config itself.
    ['a config that is not an object', [], P, /expected an object, got an array/],
    ['a null config', null, P, /expected an object, got null/],
    ['an unknown top-level field', { ...valid(), colour: 'blue' }, `${P}.colour`, /unknown field/],
    [
      'onEmptySubset "drop"',
      { ...valid(), onEmptySubset: 'drop' },
      `${P}.onEmptySubset`,
      /"redistribute", "fail".*"drop"/,
    ],
    [
      'subsetPolicy "ring_hash"',
      { ...valid(), subsetPolicy: 'ring_hash' },
      `${P}.subsetPolicy`,
      /"round_robin", "weighted_round_robin", "least_request", "random".*"ring_hash"/,
    ],
    // Subsets.
    ['missing subsets', { routes: [] }, `${P}.subsets`, /expected an array, got undefined/],
    ['no subsets', { subsets: [], routes: [] }, `${P}.subsets`, /at least one subset/],
    [
      'subsets that are not an array',
      { subsets: { v1: {} }, routes: [] },
      `${P}.subsets`,
      /expected an array, got object/,
    ],
    [
      'a subset that is not an object',
      { subsets: ['v1'], routes: [] },
      `${P}.subsets[0]`,
      /expected an object, got the string "v1"/,
    ],
    [
      'a subset without a name',
      { subsets: [{ labels: {} }], routes: [] },
      `${P}.subsets[0].name`,
      /non-empty string, got undefined/,
    ],
    [
      'a subset with an empty name',
      { subsets: [{ name: '' }], routes: [] },
      `${P}.subsets[0].name`,
      /non-empty string/,
    ],
    [
      'a duplicate subset name',
      { subsets: [{ name: 'v1' }, { name: 'v1' }], routes: [] },
      `${P}.subsets[1].name`,
      /"v1" is defined twice/,
    ],
    [
      'an unknown field in a subset',
      { subsets: [{ name: 'v1', weight: 3 }], routes: [] },
      `${P}.subsets[0].weight`,
      /unknown field \(expected one of name, labels, policy, consistentHash\)/,
    ],
    [
      'labels that are not an object',
      { subsets: [{ name: 'v1', labels: 'v1' }], routes: [] },
      `${P}.subsets[0].labels`,
      /expected an object/,
    ],
    [
      'a label value that is not a string',
      { subsets: [{ name: 'v1', labels: { version: 1 } }], routes: [] },
      `${P}.subsets[0].labels.version`,
      /expected a string, got number/,
    ],
    [
      'a subset policy "LEAST_REQUEST" (Istio\'s spelling)',
      { subsets: [{ name: 'v1', policy: 'LEAST_REQUEST' }], routes: [] },
      `${P}.subsets[0].policy`,
      /expected one of/,
    ],
    // Routes.
    ['missing routes', { subsets: SUBSETS }, `${P}.routes`, /expected an array, got undefined/],
    [
      'a route that is not an object',
      { subsets: SUBSETS, routes: [1] },
      R0,
      /expected an object, got number/,
    ],
    ['an unknown field in a route', route({ weight: 1 }), `${R0}.weight`, /unknown field/],
    ['a route with an empty name', route({ name: '' }), `${R0}.name`, /non-empty string/],
    [
      'a route without split',
      { subsets: SUBSETS, routes: [{}] },
      `${R0}.split`,
      /expected an array, got undefined/,
    ],
    ['an empty split', split(), `${R0}.split`, /at least one subset/],
    [
      'a split where every weight is 0',
      split({ subset: 'v1', weight: 0 }, { subset: 'v2', weight: 0 }),
      `${R0}.split`,
      /every weight is 0/,
    ],
    ['a split entry that is not an object', split('v1'), `${R0}.split[0]`, /expected an object/],
    [
      'an unknown subset',
      split({ subset: 'v1', weight: 1 }, { subset: 'v9', weight: 1 }),
      `${R0}.split[1].subset`,
      /no subset named "v9" \(defined: v1, v2, v3\)/,
    ],
    [
      'a split entry without a subset',
      split({ weight: 1 }),
      `${R0}.split[0].subset`,
      /non-empty string, got undefined/,
    ],
    [
      'a split naming a subset twice',
      split({ subset: 'v1', weight: 1 }, { subset: 'v1', weight: 2 }),
      `${R0}.split[1].subset`,
      /"v1" appears twice/,
    ],
    [
      'an unknown field in a split entry',
      split({ subset: 'v1', weight: 1, zone: 'a' }),
      `${R0}.split[0].zone`,
      /unknown field/,
    ],
    [
      'weight -1',
      split({ subset: 'v1', weight: -1 }),
      `${R0}.split[0].weight`,
      /integer 0-1000000, got number -1/,
    ],
    [
      'weight 1.5',
      split({ subset: 'v1', weight: 1.5 }),
      `${R0}.split[0].weight`,
      /integer 0-1000000, got number 1\.5/,
    ],
    [
      'weight "30"',
      split({ subset: 'v1', weight: '30' }),
      `${R0}.split[0].weight`,
      /integer 0-1000000, got the string "30"/,
    ],
    [
      'weight 2000000',
      split({ subset: 'v1', weight: 2_000_000 }),
      `${R0}.split[0].weight`,
      /integer 0-1000000, got number 2000000/,
    ],
    ['a missing weight', split({ subset: 'v1' }), `${R0}.split[0].weight`, /got undefined/],
    ['weight NaN', split({ subset: 'v1', weight: NaN }), `${R0}.split[0].weight`, /got number NaN/],
    // Matches.
    [
      'a match that is not an object',
      match('/pkg.Svc/Method'),
      `${R0}.match`,
      /expected an object/,
    ],
    [
      'an unknown field in a match',
      match({ path: '/pkg.Svc/' }),
      `${R0}.match.path`,
      /unknown field/,
    ],
    [
      'method "SayHello"',
      match({ method: 'SayHello' }),
      `${R0}.match.method`,
      /"\/package\.Service\/Method", got "SayHello"/,
    ],
    [
      'method "/pkg.Svc/"',
      match({ method: '/pkg.Svc/' }),
      `${R0}.match.method`,
      /"\/package\.Service\/Method"/,
    ],
    [
      'method "/pkg.Svc/A/B"',
      match({ method: '/pkg.Svc/A/B' }),
      `${R0}.match.method`,
      /"\/package\.Service\/Method"/,
    ],
    ['an empty method', match({ method: '' }), `${R0}.match.method`, /non-empty string/],
    [
      'method and prefix together',
      match({ method: '/pkg.Svc/Method', prefix: '/pkg.Svc/' }),
      `${R0}.match`,
      /one of method, prefix, regex, not method and prefix/,
    ],
    [
      'prefix and regex together',
      match({ prefix: '/pkg.Svc/', regex: '/pkg.*' }),
      `${R0}.match`,
      /one of method, prefix, regex, not prefix and regex/,
    ],
    [
      'a regex that is not RE2 (unbalanced)',
      match({ regex: '/pkg.Svc/(Say' }),
      `${R0}.match.regex`,
      /is not a valid RE2 pattern: missing closing \)/,
    ],
    [
      'a regex with a lookahead (not RE2)',
      match({ regex: '/pkg.Svc/(?!Internal).*' }),
      `${R0}.match.regex`,
      /is not a valid RE2 pattern: invalid or unsupported Perl syntax/,
    ],
    [
      'a regex with a backreference',
      match({ regex: '/(\\w+)\\.Svc/\\1' }),
      `${R0}.match.regex`,
      /is not a valid RE2 pattern: invalid escape sequence/,
    ],
    ['an empty regex', match({ regex: '' }), `${R0}.match.regex`, /non-empty string/],
    ['a regex that is not a string', match({ regex: 3 }), `${R0}.match.regex`, /string/],
    [
      'a header regex that is not RE2',
      header({ name: 'x-user', regex: '[a-' }),
      `${R0}.match.headers[0].regex`,
      /is not a valid RE2 pattern: missing closing \]/,
    ],
    [
      'a header regex that is not a string',
      header({ name: 'x-user', regex: ['a'] }),
      `${R0}.match.headers[0].regex`,
      /expected a string, got an array/,
    ],
    [
      'a header with regex and exact',
      header({ name: 'x-user', regex: 'a', exact: 'a' }),
      `${R0}.match.headers[0]`,
      /exactly one of exact, prefix, regex, present; got exact, regex/,
    ],
    [
      'a prefix without a leading "/"',
      match({ prefix: 'pkg.Svc/' }),
      `${R0}.match.prefix`,
      /starting with "\/"/,
    ],
    [
      'headers that are not an array',
      match({ headers: { name: 'x' } }),
      `${R0}.match.headers`,
      /expected an array/,
    ],
    [
      'a header name in upper case',
      header({ name: 'X-Canary', exact: '1' }),
      `${R0}.match.headers[0].name`,
      /lower-case \("x-canary"\)/,
    ],
    [
      'a header without a name',
      header({ exact: '1' }),
      `${R0}.match.headers[0].name`,
      /non-empty string/,
    ],
    [
      'a header with none of exact/prefix/present',
      header({ name: 'x-canary' }),
      `${R0}.match.headers[0]`,
      /exactly one of exact, prefix, regex, present; got none/,
    ],
    [
      'a header with exact and prefix',
      header({ name: 'x-canary', exact: '1', prefix: '1' }),
      `${R0}.match.headers[0]`,
      /exactly one of exact, prefix, regex, present; got exact, prefix/,
    ],
    [
      'a header with exact and present',
      header({ name: 'x-canary', exact: '1', present: true }),
      `${R0}.match.headers[0]`,
      /got exact, present/,
    ],
    [
      'an unknown field in a header',
      header({ name: 'x-canary', suffix: '1' }),
      `${R0}.match.headers[0].suffix`,
      /unknown field/,
    ],
    [
      'a header exact that is not a string',
      header({ name: 'x-canary', exact: 1 }),
      `${R0}.match.headers[0].exact`,
      /expected a string, got number/,
    ],
    [
      'a header prefix that is not a string',
      header({ name: 'x-canary', prefix: null }),
      `${R0}.match.headers[0].prefix`,
      /expected a string, got null/,
    ],
    [
      'a header present that is not a boolean',
      header({ name: 'x-canary', present: 'yes' }),
      `${R0}.match.headers[0].present`,
      /expected true or false, got the string "yes"/,
    ],
  ];
  for (const [what, json, field, reason] of invalid) {
    test(`rejects ${what}, naming ${field}`, () => rejects(json, field, reason));
  }

  // JSON.parse makes "__proto__" an own key; copying it into `{}` with `labels[key] = v` calls the
  // prototype setter instead, which ignores a string: the subset would select every endpoint.
  test('keeps or rejects a label named "__proto__", never drops it and selects every endpoint', () => {
    const json: unknown = JSON.parse(
      '{"subsets": [{"name": "v1", "labels": {"__proto__": "v1"}}], "routes": []}',
    );
    let labels: Readonly<Record<string, string>>;
    try {
      labels = parseTrafficSplitConfig(json).subsets[0]!.labels;
    } catch (e) {
      assert.ok(e instanceof ConfigError && e.field === `${P}.subsets[0].labels.__proto__`);
      return;
    }
    assert.deepEqual(Object.entries(labels), [['__proto__', 'v1']]);
  });

  test('names the later route when only a later route is wrong', () => {
    const json = valid();
    (json['routes'] as Record<string, unknown>[])[2]!['split'] = [{ subset: 'v4', weight: 1 }];
    rejects(json, `${P}.routes[2].split[0].subset`, /no subset named "v4"/);
  });
});
