import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  compositeTarget,
  createCompositeResolverFactory,
  MAX_SOURCES,
  type SchemeLookup,
} from './composite-target';
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
/** Accepts any target: lets a test see exactly what a source was given. */
const echoFactory: ResolverFactory = {
  scheme: 'echo',
  parseTarget: (_uri, original) => original,
  defaultAuthority: () => 'echo',
  create: () => ({ start() {}, refresh() {}, stop() {} }),
};

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

  test('a source keeps its own & parameters; a new source starts at name=<registered scheme>:', () => {
    const lookupWithEcho: SchemeLookup = {
      get: (scheme) => (scheme === 'echo' ? echoFactory : lookup.get(scheme)),
      schemes: () => [...lookup.schemes(), 'echo'],
    };
    const factory = createCompositeResolverFactory(lookupWithEcho);
    const target =
      'composite:///hello?vms=echo:///hello?tag=v2&dc=dc2&near=a:b&pods=echo:///hello.prod:grpc?config=lb&pod_labels=version&weight.pods=2&edge=echo:///e?x=1%26y=2';
    const parsed = factory.parseTarget(parseTargetUri(target), target);
    assert.deepEqual(
      parsed.sources.map((s) => [s.name, s.target, s.weight]),
      [
        ['vms', 'echo:///hello?tag=v2&dc=dc2&near=a:b', 1],
        ['pods', 'echo:///hello.prod:grpc?config=lb&pod_labels=version', 2],
        ['edge', 'echo:///e?x=1&y=2', 1],
      ],
    );
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
      'a source that takes no parameters given one',
      'composite:///h?a=static:///127.0.0.2:1&tag=v2',
      /source "a": endpoint 1 "127\.0\.0\.2:1&tag=v2" has an invalid port|source "a": .*tag=v2/,
    ],
    [
      'a misspelt scheme',
      'composite:///h?a=static:///127.0.0.2:1&b=k8z:///x',
      /source "b": unknown scheme "k8z:"/,
    ],
    [
      'a weight parameter with an &',
      'composite:///h?a=static:///127.0.0.2:1&weight.a=1&x=1',
      /source "x": expected scheme:.*a source's own parameters follow its target, before any weight\.… parameter/,
    ],
    [
      'an upper-case name',
      'composite:///h?VMs=static:///127.0.0.2:1',
      /"VMs" is not a source name/,
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

  test('compositeTarget() writes a target that parses back to the same sources', () => {
    const manual = new ManualEndpoints([], { id: 'composite-build-a' });
    const written = compositeTarget({
      service: 'hello',
      sources: { vms: 'static:///127.0.0.2:1;team=a%2Cb&c', pods: manual.target },
      weights: { pods: 3 },
    });
    assert.equal(
      written,
      'composite:///hello?vms=static:///127.0.0.2:1;team=a%252Cb%26c&pods=manual:///composite-build-a&weight.pods=3',
    );
    const parsed = parse(written);
    assert.deepEqual(
      parsed.sources.map((s) => [s.name, s.target, s.weight]),
      [
        ['vms', 'static:///127.0.0.2:1;team=a%2Cb&c', 1],
        ['pods', 'manual:///composite-build-a', 3],
      ],
    );
    assert.throws(() => compositeTarget({ sources: { VMs: 'static:///a:1' } }), TargetError);
    assert.throws(
      () => compositeTarget({ sources: { a: 'static:///a:1' }, weights: { a: 1.5 } }),
      TargetError,
    );
    assert.throws(
      () => compositeTarget({ sources: { a: 'static:///a:1' }, weights: { b: 1 } }),
      TargetError,
    );
    assert.throws(() => compositeTarget({ sources: {} }), TargetError);
    manual.dispose();
  });
});
