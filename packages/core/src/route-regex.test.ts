import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from './errors';
import { MAX_PROGRAM_SIZE, RoutePattern } from './route-regex';

/**
 * A string that counts how often the engine reads one of its characters:
 * re2js reads a string's input through `charCodeAt`, so the count is the
 * number of steps the match took over the value.
 */
class CountingString extends String {
  reads = 0;
  override charCodeAt(index: number): number {
    this.reads++;
    return super.charCodeAt(index);
  }
}

/** The characters a match of `pattern` on `text` read (`text` passed as the string the engine sees). */
function readsOf(pattern: RoutePattern, text: string): { matched: boolean; reads: number } {
  const counted = new CountingString(text);
  const matched = pattern.matches(counted as unknown as string);
  return { matched, reads: counted.reads };
}

describe('RoutePattern: whole-value RE2 matches', () => {
  const cases: [string, string, boolean][] = [
    ['/helloworld\\.Greeter/Say.*', '/helloworld.Greeter/SayHello', true],
    ['/helloworld\\.Greeter/Say.*', '/helloworld.Greeter/Bye', false],
    // The whole value, not a part of it (Istio's uri.regex semantics).
    ['Greeter', '/helloworld.Greeter/SayHello', false],
    ['.*Greeter.*', '/helloworld.Greeter/SayHello', true],
    ['a|b', 'ab', false],
    ['a|b', 'b', true],
    ['^/x$', '/x', true],
    ['(?i)say', 'SAY', true],
    ['v[0-9]+', 'v12', true],
    ['v[0-9]+', 'v12 ', false],
    ['\\d{2,3}', '1234', false],
    ['\\p{Greek}+', 'αβγ', true],
    // `.` does not match a newline (RE2's default), so neither does `.*` across one.
    ['.*', 'a\nb', false],
    ['(?s).*', 'a\nb', true],
  ];
  for (const [source, value, expected] of cases) {
    test(`${JSON.stringify(source)} on ${JSON.stringify(value)}: ${expected}`, () => {
      assert.equal(RoutePattern.compile(source, 'f').matches(value), expected);
    });
  }

  test('the same pattern is compiled once: a second config gets the same compiled pattern', () => {
    const first = RoutePattern.compile('/once\\.Service/.*', 'a');
    const second = RoutePattern.compile('/once\\.Service/.*', 'b');
    assert.equal(first, second);
  });

  test('prints (and serialises to JSON) as the pattern it was written as', () => {
    const p = RoutePattern.compile('/x\\..*', 'f');
    assert.equal(String(p), '/x\\..*');
    assert.equal(JSON.stringify({ regex: p }), JSON.stringify({ regex: '/x\\..*' }));
  });
});

describe('RoutePattern: patterns that cannot be used are ConfigErrors naming the field', () => {
  const bad: [string, RegExp][] = [
    ['(a', /missing closing \)/],
    ['a)', /unexpected \)/],
    ['[a-', /missing closing \]/],
    ['*a', /missing argument to repetition operator/],
    // What RE2 leaves out on purpose: lookarounds and backreferences (they need backtracking).
    ['(?=a)b', /invalid or unsupported Perl syntax/],
    ['(?<=a)b', /invalid named capture|unsupported/],
    ['(a)\\1', /invalid escape sequence/],
    ['a++', /invalid nested repetition operator/],
    ['a{1001}', /invalid repeat count/],
  ];
  for (const [source, problem] of bad) {
    test(`${JSON.stringify(source)}`, () => {
      assert.throws(
        () => RoutePattern.compile(source, 'routes[0].match.regex'),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.equal(err.field, 'routes[0].match.regex');
          assert.match(
            err.message,
            /^invalid routes\[0\]\.match\.regex: is not a valid RE2 pattern: /,
          );
          assert.match(err.message, problem);
          return true;
        },
      );
    });
  }

  test(`a pattern whose program is larger than ${MAX_PROGRAM_SIZE} is refused, with its size`, () => {
    assert.throws(
      () => RoutePattern.compile('[a-z]{300}[0-9]{300}[A-Z]{300}x{300}', 'h.regex'),
      /^ConfigError: invalid h\.regex: pattern is too large \(RE2 program size \d+, at most 1000\)$/,
    );
    // A pattern just under the limit compiles.
    RoutePattern.compile('a{900}', 'h.regex');
  });
});

describe('RoutePattern: linear time, counted in steps (characters read)', () => {
  test('the counter sees the engine: a match reads the value', () => {
    const { matched, reads } = readsOf(RoutePattern.compile('a+b', 'f'), 'aaab');
    assert.equal(matched, true);
    assert.ok(reads >= 4 && reads <= 8, `reads ${reads}`);
  });

  /**
   * Patterns that take exponential time on a backtracking engine (a
   * JavaScript RegExp) against a run of `a`s that finally fails.
   */
  const pathological = fc.constantFrom(
    '(a+)+$',
    '(a|aa)+',
    '(a*)*b',
    '(a|a)*c',
    '(.*a){12}',
    '(a+)+(b|c)',
    '^(([a-z])+.)+[A-Z]([a-z])+$',
    '(?i)(a|A)+!x',
  );

  test('a pathological pattern on a failing input of n characters reads at most 2(n + 2) of them', () => {
    fc.assert(
      fc.property(
        pathological,
        fc.integer({ min: 1, max: 5000 }),
        fc.constantFrom('!', 'b!', '', 'ab!'),
        (source, n, tail) => {
          const p = RoutePattern.compile(source, 'f');
          const text = 'a'.repeat(n) + tail;
          const { reads, matched } = readsOf(p, text);
          // The answer is RE2's whole-value answer…
          assert.equal(matched, p.matches(text));
          // …for a number of steps linear in the input, where backtracking needs ~2^n.
          assert.ok(
            reads <= 2 * (text.length + 2),
            `${source} on ${n} a's + ${JSON.stringify(tail)}: ${reads} reads`,
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  test('doubling the input at most doubles the steps (sizes compared: 1k, 2k, 4k … 64k characters)', () => {
    for (const source of ['(a+)+$', '(a|aa)+', '(.*a){12}', '(a*)*b']) {
      const p = RoutePattern.compile(source, 'f');
      let previous = readsOf(p, `${'a'.repeat(1000)}!`).reads;
      for (let n = 2000; n <= 64_000; n *= 2) {
        const { reads } = readsOf(p, `${'a'.repeat(n)}!`);
        assert.ok(reads <= 2 * previous + 4, `${source}: ${n / 2} → ${previous}, ${n} → ${reads}`);
        previous = reads;
      }
    }
  });
});
