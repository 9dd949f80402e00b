import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { routeMatches, type HeaderReader } from './route-match';
import { RoutePattern } from './route-regex';
import type { HeaderMatch, RouteMatch } from './traffic-split-config';

const METHOD = '/helloworld.Greeter/SayHello';

/** A HeaderReader over fixed headers, like grpc-js `Metadata.get` (absent → []). */
function headers(values: Record<string, readonly unknown[]> = {}): HeaderReader {
  return (name) => values[name] ?? [];
}

function matchesHeader(match: HeaderMatch, values: Record<string, readonly unknown[]>): boolean {
  return routeMatches({ headers: [match] }, METHOD, headers(values));
}

describe('routeMatches: method and prefix', () => {
  const cases: [string, RouteMatch, string, boolean][] = [
    ['an exact method matches that method', { method: METHOD, headers: [] }, METHOD, true],
    [
      'an exact method does not match another method of the service',
      { method: METHOD, headers: [] },
      '/helloworld.Greeter/SayGoodbye',
      false,
    ],
    [
      'an exact method does not match a longer method name',
      { method: METHOD, headers: [] },
      `${METHOD}Again`,
      false,
    ],
    [
      'an exact method is case-sensitive',
      { method: METHOD, headers: [] },
      '/helloworld.Greeter/sayhello',
      false,
    ],
    [
      'a prefix matches every method of the service',
      { prefix: '/helloworld.Greeter/', headers: [] },
      METHOD,
      true,
    ],
    [
      'a prefix does not match another service',
      { prefix: '/helloworld.Greeter/', headers: [] },
      '/helloworld.Farewell/SayHello',
      false,
    ],
    ['a prefix is a plain string prefix', { prefix: '/helloworld.Gr', headers: [] }, METHOD, true],
    ['"/" as prefix matches every method', { prefix: '/', headers: [] }, METHOD, true],
    ['no method, prefix or header matches everything', { headers: [] }, METHOD, true],
    ['no method, prefix or header matches any string', { headers: [] }, '', true],
  ];
  for (const [behaviour, match, method, expected] of cases) {
    test(behaviour, () => {
      assert.equal(routeMatches(match, method, headers()), expected);
    });
  }

  test('reads no header when the route has no header match', () => {
    let reads = 0;
    routeMatches({ prefix: '/', headers: [] }, METHOD, () => {
      reads++;
      return [];
    });
    assert.equal(reads, 0);
  });
});

describe('routeMatches: headers', () => {
  const canary = Buffer.from('1');
  const cases: [string, HeaderMatch, Record<string, readonly unknown[]>, boolean][] = [
    ['exact matches the one value', { name: 'x-canary', exact: '1' }, { 'x-canary': ['1'] }, true],
    [
      'exact matches when any of several values is equal',
      { name: 'x-canary', exact: '1' },
      { 'x-canary': ['0', '1', '2'] },
      true,
    ],
    [
      'exact does not match when no value is equal',
      { name: 'x-canary', exact: '1' },
      { 'x-canary': ['0', '10', ' 1'] },
      false,
    ],
    ['exact does not match an absent header', { name: 'x-canary', exact: '1' }, {}, false],
    [
      'exact "" matches an empty value, not an absent header',
      { name: 'x-canary', exact: '' },
      { 'x-canary': [''] },
      true,
    ],
    ['exact "" does not match an absent header', { name: 'x-canary', exact: '' }, {}, false],
    [
      'exact reads the header it names',
      { name: 'x-canary', exact: '1' },
      { 'x-other': ['1'] },
      false,
    ],
    [
      'prefix matches a value starting with it',
      { name: 'x-user', prefix: 'test-' },
      { 'x-user': ['test-alice'] },
      true,
    ],
    [
      'prefix matches when any of several values starts with it',
      { name: 'x-user', prefix: 'test-' },
      { 'x-user': ['bob', 'test-alice'] },
      true,
    ],
    [
      'prefix does not match a value that only contains it',
      { name: 'x-user', prefix: 'test-' },
      { 'x-user': ['my-test-alice'] },
      false,
    ],
    ['prefix does not match an absent header', { name: 'x-user', prefix: 'test-' }, {}, false],
    [
      'present: true matches a header with a value',
      { name: 'x-debug', present: true },
      { 'x-debug': ['anything'] },
      true,
    ],
    [
      'present: true matches a header with an empty value',
      { name: 'x-debug', present: true },
      { 'x-debug': [''] },
      true,
    ],
    [
      'present: true does not match an absent header',
      { name: 'x-debug', present: true },
      {},
      false,
    ],
    ['present: false matches an absent header', { name: 'x-debug', present: false }, {}, true],
    [
      'present: false does not match a header with a value',
      { name: 'x-debug', present: false },
      { 'x-debug': ['1'] },
      false,
    ],
    [
      'a Buffer value never matches exact text',
      { name: 'x-canary-bin', exact: '1' },
      { 'x-canary-bin': [canary] },
      false,
    ],
    [
      'a Buffer value never matches a text prefix',
      { name: 'x-canary-bin', prefix: '' },
      { 'x-canary-bin': [canary] },
      false,
    ],
    [
      'a text value beside a Buffer value still matches',
      { name: 'x-canary', exact: '1' },
      { 'x-canary': [canary, '1'] },
      true,
    ],
  ];
  for (const [behaviour, match, values, expected] of cases) {
    test(behaviour, () => {
      assert.equal(matchesHeader(match, values), expected);
    });
  }

  // Presence is not a text comparison: a binary header that is sent is present.
  const binaryPresence: [string, HeaderMatch, boolean][] = [
    [
      'present: true matches a binary header that is sent',
      { name: 'x-trace-bin', present: true },
      true,
    ],
    [
      'present: false does not match a binary header that is sent',
      { name: 'x-trace-bin', present: false },
      false,
    ],
  ];
  for (const [behaviour, match, expected] of binaryPresence) {
    test(behaviour, () => {
      assert.equal(matchesHeader(match, { 'x-trace-bin': [Buffer.from([0, 1, 2])] }), expected);
    });
  }

  test('a route regex must match the whole method name', () => {
    const match: RouteMatch = {
      regex: RoutePattern.compile('/helloworld\\.Greeter/Say(Hello|Goodbye)', 'r'),
      headers: [],
    };
    assert.equal(routeMatches(match, METHOD, headers()), true);
    assert.equal(routeMatches(match, '/helloworld.Greeter/SayGoodbye', headers()), true);
    assert.equal(routeMatches(match, '/helloworld.Greeter/SayHelloAgain', headers()), false);
    assert.equal(routeMatches(match, '/x/helloworld.Greeter/SayHello', headers()), false);
    // "." is a regex dot: it also matches another character.
    assert.equal(routeMatches(match, '/helloworld.GreeterXSayHello', headers()), false);
  });

  test('a header regex holds when one text value matches it whole; binary values never match', () => {
    const match: HeaderMatch = { name: 'x-user', regex: RoutePattern.compile('test-[a-z]+', 'h') };
    assert.equal(matchesHeader(match, { 'x-user': ['alice', 'test-bob'] }), true);
    assert.equal(matchesHeader(match, { 'x-user': ['test-bob2'] }), false);
    assert.equal(matchesHeader(match, { 'x-user': ['xtest-bob'] }), false);
    assert.equal(matchesHeader(match, {}), false);
    assert.equal(matchesHeader(match, { 'x-user': [Buffer.from('test-bob')] }), false);
    // An empty value matches a pattern that accepts the empty string.
    const any: HeaderMatch = { name: 'x-user', regex: RoutePattern.compile('.*', 'h') };
    assert.equal(matchesHeader(any, { 'x-user': [''] }), true);
    assert.equal(matchesHeader(any, {}), false);
  });

  test('every header match must hold, and the method too', () => {
    const match: RouteMatch = {
      prefix: '/helloworld.Greeter/',
      headers: [
        { name: 'x-canary', exact: '1' },
        { name: 'x-user', prefix: 'test-' },
        { name: 'x-debug', present: false },
      ],
    };
    const all = { 'x-canary': ['1'], 'x-user': ['test-alice'] };
    assert.equal(routeMatches(match, METHOD, headers(all)), true);
    assert.equal(routeMatches(match, '/other.Service/SayHello', headers(all)), false);
    const oneWrong: Record<string, readonly unknown[]>[] = [
      { ...all, 'x-canary': ['0'] },
      { ...all, 'x-user': ['alice'] },
      { ...all, 'x-debug': ['1'] },
      { 'x-user': ['test-alice'] },
    ];
    for (const values of oneWrong) {
      assert.equal(routeMatches(match, METHOD, headers(values)), false, JSON.stringify(values));
    }
  });
});

describe('routeMatches properties', () => {
  const name = fc.constantFrom('x-a', 'x-b', 'x-c-bin');
  const value = fc.oneof(fc.constantFrom('', '1', '12', 'test-a'), fc.string({ maxLength: 4 }));
  /** Patterns whose whole-value meaning is the same in RE2 and in a JavaScript RegExp. */
  const pattern = fc.constantFrom('', '1', '1+', '[0-9]*', 'test-.*', 'x|12', '.?', '(a|1)(2|b)');
  /** The oracle for `pattern`: a native RegExp anchored at both ends. */
  const whole = (source: string, text: string): boolean => new RegExp(`^(?:${source})$`).test(text);
  const headerMatch: fc.Arbitrary<HeaderMatch> = fc.oneof(
    fc.record({ name, exact: value }),
    fc.record({ name, prefix: value }),
    fc.record({ name, present: fc.boolean() }),
    fc.record({ name, regex: pattern.map((p) => RoutePattern.compile(p, 'test')) }),
  );
  const sent = fc.dictionary(
    name,
    fc.array(fc.oneof(value, fc.constant(Buffer.from('1'))), { maxLength: 3 }),
  );
  const methodName = fc.constantFrom(METHOD, '/helloworld.Greeter/Bye', '/other.S/M', '');

  test('a match holds exactly when its method, prefix, regex and every header match hold, in any order', () => {
    fc.assert(
      fc.property(
        fc.option(methodName, { nil: undefined }),
        fc.option(fc.constantFrom('/', '/helloworld.', '/helloworld.Greeter/', '/x'), {
          nil: undefined,
        }),
        fc.option(fc.constantFrom('/helloworld\\.Greeter/.*', '.*/Bye', '/other\\..*', ''), {
          nil: undefined,
        }),
        fc.array(headerMatch, { maxLength: 3 }),
        methodName,
        sent,
        (method, prefix, regex, headerMatches, called, values) => {
          const read = headers(values);
          const match: RouteMatch = {
            ...(method === undefined ? {} : { method }),
            ...(prefix === undefined ? {} : { prefix }),
            ...(regex === undefined ? {} : { regex: RoutePattern.compile(regex, 'test') }),
            headers: headerMatches,
          };
          const expected =
            (method === undefined || method === called) &&
            (prefix === undefined || called.startsWith(prefix)) &&
            (regex === undefined || whole(regex, called)) &&
            headerMatches.every((h) => {
              const all = values[h.name] ?? [];
              const texts = all.filter((v): v is string => typeof v === 'string');
              if ('present' in h) return all.length > 0 === h.present;
              if ('exact' in h) return texts.includes(h.exact);
              if ('regex' in h) return texts.some((t) => whole(h.regex.source, t));
              return texts.some((t) => t.startsWith(h.prefix));
            });
          assert.equal(routeMatches(match, called, read), expected);
          assert.equal(
            routeMatches({ ...match, headers: [...headerMatches].reverse() }, called, read),
            expected,
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  test('headers the match does not name never change the answer, and each named one is read at most once per header match', () => {
    fc.assert(
      fc.property(
        fc.array(headerMatch, { maxLength: 3 }),
        sent,
        fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }),
        (headerMatches, values, noise) => {
          const match: RouteMatch = { headers: headerMatches };
          let reads = 0;
          const counting: HeaderReader = (n) => {
            reads++;
            return values[n] ?? [];
          };
          const answer = routeMatches(match, METHOD, counting);
          assert.ok(reads <= headerMatches.length);
          const noisy = { ...values, 'x-unrelated': noise };
          assert.equal(routeMatches(match, METHOD, headers(noisy)), answer);
        },
      ),
      { numRuns: 300 },
    );
  });
});
