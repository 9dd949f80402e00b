import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createCompositeResolverFactory, MAX_SOURCES, type SchemeLookup } from './composite-target';
import { TargetError } from './errors';
import { ManualEndpoints, manualResolverFactory } from './manual-target';
import type { ResolverFactory } from './resolver-contract';
import { staticResolverFactory } from './static-target';
import { parseTargetUri } from './target-uri';
import { validateTarget } from './validate';

const factories: ResolverFactory[] = [staticResolverFactory, manualResolverFactory];
const lookup: SchemeLookup = {
  get: (scheme) => factories.find((f) => f.scheme === scheme),
  schemes: () => [...factories.map((f) => f.scheme), 'composite'],
};
const composite = createCompositeResolverFactory(lookup);

function parse(target: string) {
  return composite.parseTarget(parseTargetUri(target), target);
}

function rejects(target: string, pattern: RegExp): void {
  assert.throws(
    () => parse(target),
    (error: unknown) => {
      assert.ok(error instanceof TargetError, String(error));
      assert.match(error.message, pattern);
      return true;
    },
  );
}

describe('composite: targets', () => {
  test('sources in order, each parsed by its own scheme, weight 1 by default', () => {
    const parsed = parse(
      'composite:///hello?vms=static:///127.0.0.2:1;version=v1&pods=static:///127.0.0.3:1',
    );
    assert.equal(parsed.service, 'hello');
    assert.deepEqual(
      parsed.sources.map((s) => [s.name, s.uri.scheme, s.target, s.weight]),
      [
        ['vms', 'static', 'static:///127.0.0.2:1;version=v1', 1],
        ['pods', 'static', 'static:///127.0.0.3:1', 1],
      ],
    );
  });

  test('a source target keeps its own "?", and "%26" is its "&"', () => {
    const manual = new ManualEndpoints([], { id: 'composite-parse-a' });
    const parsed = parse(
      `composite:///hello?a=${manual.target}&b=static:///127.0.0.2:1;team=x%26y`,
    );
    assert.equal(parsed.sources[1]!.target, 'static:///127.0.0.2:1;team=x&y');
    manual.dispose();
  });

  test('weight.<name> multiplies a source, 0 to 1000', () => {
    const parsed = parse(
      'composite:///hello?a=static:///127.0.0.2:1&weight.a=0&b=static:///127.0.0.3:1&weight.b=7',
    );
    assert.deepEqual(
      parsed.sources.map((s) => s.weight),
      [0, 7],
    );
    rejects('composite:///h?a=static:///127.0.0.2:1&weight.a=1001', /weight\.a.*0 to 1000/);
    rejects('composite:///h?a=static:///127.0.0.2:1&weight.a=-1', /weight\.a.*0 to 1000/);
    rejects('composite:///h?a=static:///127.0.0.2:1&weight.a=1.5', /weight\.a.*0 to 1000/);
    rejects('composite:///h?a=static:///127.0.0.2:1&weight.b=2', /"weight\.b" names no source/);
    rejects(
      'composite:///h?a=static:///127.0.0.2:1&weight.a=2&weight.a=3',
      /"weight\.a" is given twice/,
    );
  });

  test('the default authority is the service name, else the first source’s', () => {
    const uri = parseTargetUri('composite:///hello.prod?a=static://first.example/127.0.0.2:1');
    assert.equal(composite.defaultAuthority(composite.parseTarget(uri, ''), uri), 'hello.prod');
    const bare = parseTargetUri('composite:///?a=static://first.example/127.0.0.2:1');
    assert.equal(
      composite.defaultAuthority(composite.parseTarget(bare, ''), bare),
      'first.example',
    );
  });

  const bad: [string, string, RegExp][] = [
    ['no sources', 'composite:///hello', /needs sources after "\?"/],
    ['nothing after ?', 'composite:///hello?', /parameter 1 is empty/],
    ['an authority', 'composite://auth/hello?a=static:///127.0.0.2:1', /takes no authority/],
    ['a stray &', 'composite:///h?a=static:///127.0.0.2:1&', /parameter 2 is empty/],
    ['no =', 'composite:///h?static:///127.0.0.2:1', /is not name=target/],
    [
      'an unescaped & of a source (its next parameter looks like ours)',
      'composite:///h?a=static:///127.0.0.2:1&tag=v2',
      /source "tag": expected scheme:.*; if "tag=…" belongs to the target of the source before it, write its "&" as %26/,
    ],
    [
      'an upper-case name',
      'composite:///h?VMs=static:///127.0.0.2:1',
      /unknown parameter "VMs".*%26/,
    ],
    [
      'a name twice',
      'composite:///h?a=static:///127.0.0.2:1&a=static:///127.0.0.3:1',
      /source "a" is given twice/,
    ],
    [
      'an unknown scheme',
      'composite:///h?a=consol:///hello',
      /source "a": unknown scheme "consol:" \(registered: static, manual\)/,
    ],
    [
      'a nested composite',
      'composite:///h?a=composite:///x?b=static:///127.0.0.2:1',
      /cannot itself be composite/,
    ],
    [
      'a bad source target',
      'composite:///h?a=static:///127.0.0.2',
      /source "a": endpoint 1 "127.0.0.2" has no port/,
    ],
    ['not a target', 'composite:///h?a=hello', /source "a": expected scheme:/],
    ['a malformed escape', 'composite:///h?a=static:///127.0.0.2:1%zz', /malformed percent-escape/],
    [
      'a service name that is no host',
      'composite:///a b?x=static:///127.0.0.2:1',
      /is not a host name/,
    ],
  ];
  for (const [what, target, pattern] of bad) {
    test(`refused, naming the problem: ${what}`, () => rejects(target, pattern));
  }

  test(`at most ${MAX_SOURCES} sources`, () => {
    const sources = Array.from(
      { length: MAX_SOURCES + 1 },
      (_, i) => `s${i}=static:///127.0.0.2:${i + 1}`,
    );
    rejects(`composite:///h?${sources.join('&')}`, /at most 16 sources, got 17/);
  });

  test('a secret in a source target never shows in the error', () => {
    for (const target of [
      'composite:///h?a=static://user:hunter2@name/127.0.0.2:1',
      'composite:///h?a=static:///127.0.0.2:1;token=hunter2',
      'composite:///h?a=static:///127.0.0.2:1&b=nope://x/?token=hunter2',
    ]) {
      assert.throws(
        () => parse(target),
        (error: unknown) => {
          assert.ok(error instanceof TargetError);
          assert.doesNotMatch(error.message, /hunter2/);
          return true;
        },
      );
    }
  });

  test('validateTarget knows composite targets and their sources’ schemes', () => {
    assert.deepEqual(validateTarget('composite:///hello?a=static:///127.0.0.2:1'), {
      scheme: 'composite',
      defaultAuthority: 'hello',
    });
    assert.throws(
      () => validateTarget('composite:///hello?a=etcd:///x'),
      /source "a": unknown scheme "etcd:"/,
    );
    const etcdLike: ResolverFactory = {
      scheme: 'etcd',
      parseTarget: () => ({}),
      defaultAuthority: () => 'x',
      create: () => ({ start() {}, refresh() {}, stop() {} }),
    };
    assert.equal(
      validateTarget('composite:///hello?a=etcd:///x', [etcdLike]).defaultAuthority,
      'hello',
    );
  });
});
