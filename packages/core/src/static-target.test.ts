import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TargetError } from './errors';
import { parseStaticTarget, staticResolverFactory } from './static-target';
import { parseTargetUri } from './target-uri';

function parse(target: string) {
  return parseStaticTarget(parseTargetUri(target), target);
}

describe('static: targets', () => {
  test('a plain comma list of host:port', () => {
    const parsed = parse('static:///127.0.0.2:50051,127.0.0.3:50051');
    assert.equal(parsed.authority, undefined);
    assert.deepEqual(
      parsed.endpoints.map((e) => [e.host, e.port, e.weight]),
      [
        ['127.0.0.2', 50051, undefined],
        ['127.0.0.3', 50051, undefined],
      ],
    );
  });

  test('weights, zones and labels per endpoint, percent-decoded', () => {
    const parsed = parse(
      'static:///127.0.0.2:1;version=v1;weight=3;zone=a,[::1]:2;version=v%32;team=x%2Fy',
    );
    assert.deepEqual(parsed.endpoints, [
      { host: '127.0.0.2', port: 1, labels: { version: 'v1' }, weight: 3, zone: 'a' },
      { host: '::1', port: 2, labels: { version: 'v2', team: 'x/y' } },
    ]);
  });

  test('weight 0 is allowed (known, no traffic)', () => {
    assert.equal(parse('static:///127.0.0.2:1;weight=0').endpoints[0]!.weight, 0);
  });

  test('the authority is the default :authority; otherwise the first endpoint', () => {
    const named = parseTargetUri('static://hello.prod/10.0.0.1:50051');
    assert.equal(
      staticResolverFactory.defaultAuthority(parseStaticTarget(named, ''), named),
      'hello.prod',
    );
    const anonymous = parseTargetUri('static:///[::1]:50051,127.0.0.1:1');
    assert.equal(
      staticResolverFactory.defaultAuthority(parseStaticTarget(anonymous, ''), anonymous),
      '[::1]:50051',
    );
  });

  const bad: [string, RegExp][] = [
    ['static:///', /needs at least one host:port/],
    ['static://name/', /needs at least one host:port/],
    ['static:///127.0.0.1', /endpoint 1 "127.0.0.1" has no port/],
    ['static:///127.0.0.1:1,', /endpoint 2 is empty/],
    ['static:///127.0.0.1:1,127.0.0.1:1', /endpoint 2 "127.0.0.1:1" is listed twice/],
    ['static:///127.0.0.1:1;weight=-1', /weight "-1" is not a number/],
    ['static:///127.0.0.1:1;weight=abc', /weight "abc"/],
    ['static:///127.0.0.1:1;weight=2000000', /weight "2000000"/],
    ['static:///127.0.0.1:1;version', /attribute "version" is not name=value/],
    ['static:///127.0.0.1:1;=v1', /attribute "=v1" is not name=value/],
    ['static:///127.0.0.1:1;a=1;a=2', /label "a" is set twice/],
    ['static:///127.0.0.1:1;bad label=1', /"bad label" is not a valid label name/],
    ['static:///127.0.0.1:1;v=%zz', /malformed percent-escape/],
    ['static:///127.0.0.1:99999', /invalid port "99999"/],
    ['static://name/127.0.0.1:1;role=%zz', /malformed percent-escape/],
  ];
  for (const [target, message] of bad) {
    test(`rejects ${target}`, () => {
      assert.throws(
        () => parse(target),
        (e: unknown) =>
          e instanceof TargetError && message.test(e.message) && e.message.includes(target),
      );
    });
  }
});

describe('static: targets never carry credentials', () => {
  const refused: [string, RegExp][] = [
    ['static://u:S3CRET@hello.prod/127.0.0.1:1', /userinfo .* not allowed .*call credentials/],
    ['static://S3CRET@hello.prod/127.0.0.1:1', /userinfo .* not allowed/],
    ['static:///127.0.0.1:1;token=S3CRET', /label named "token" would hold a secret/],
    ['static:///127.0.0.1:1;version=v1;api_key=S3CRET', /label named "api_key"/],
    ['static:///127.0.0.1:1,127.0.0.2:1;Password=S3CRET', /endpoint 2 .*label named "Password"/],
    ['static:///127.0.0.1:1;secret=S3CRET%zz', /label named "secret"/],
  ];
  for (const [target, message] of refused) {
    test(`refuses ${target.replace('S3CRET', '…')} without repeating the secret`, () => {
      assert.throws(
        () => parse(target),
        (e: unknown) => {
          assert.ok(e instanceof TargetError);
          assert.match(e.message, message);
          assert.doesNotMatch(e.message, /S3CRET/);
          assert.doesNotMatch(e.target, /S3CRET/);
          return true;
        },
      );
    });
  }

  test('any other error of a target holding a secret label does not repeat it', () => {
    assert.throws(
      () => parse('static:///127.0.0.1:1;token=S3CRET,127.0.0.1:1'),
      (e: unknown) => e instanceof TargetError && !e.message.includes('S3CRET'),
    );
  });

  test('labels that only look alike are kept', () => {
    const parsed = parse('static:///127.0.0.1:1;monkey=1;keyboard=2;author=x');
    assert.deepEqual(parsed.endpoints[0]!.labels, { monkey: '1', keyboard: '2', author: 'x' });
  });
});
