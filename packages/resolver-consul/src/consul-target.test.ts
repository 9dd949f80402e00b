import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseTargetUri, TargetError } from '@grpc-lb/core';
import {
  DEFAULT_WAIT_MS,
  parseConsulTarget,
  redactTarget,
  type ConsulTarget,
} from './consul-target';
import { parseGoDuration } from './duration';

function parse(target: string): ConsulTarget {
  return parseConsulTarget(parseTargetUri(target), target);
}

const defaults = {
  agent: undefined,
  passingOnly: true,
  tags: [],
  dc: undefined,
  near: undefined,
  filter: undefined,
  waitMs: DEFAULT_WAIT_MS,
  stale: false,
  consistent: false,
  config: undefined,
};

describe('parseConsulTarget accepts', () => {
  const table: [string, Partial<ConsulTarget>][] = [
    ['consul:///hello', { service: 'hello' }],
    ['consul:hello', { service: 'hello' }],
    ['consul://10.0.0.5:8501/hello', { service: 'hello', agent: '10.0.0.5:8501' }],
    ['consul://consul.service/hello', { service: 'hello', agent: 'consul.service:8500' }],
    ['consul://[::1]:8500/hello', { service: 'hello', agent: '[::1]:8500' }],
    ['consul:///hello?healthy=true', { service: 'hello' }],
    ['consul:///hello?healthy=false', { service: 'hello', passingOnly: false }],
    ['consul:///hello?tag=v2', { service: 'hello', tags: ['v2'] }],
    ['consul:///hello?tag=v2&tag=grpc', { service: 'hello', tags: ['v2', 'grpc'] }],
    ['consul:///hello?dc=dc-1', { service: 'hello', dc: 'dc-1' }],
    ['consul:///hello?near=_agent', { service: 'hello', near: '_agent' }],
    ['consul:///hello?wait=30s', { service: 'hello', waitMs: 30_000 }],
    ['consul:///hello?wait=1m30s', { service: 'hello', waitMs: 90_000 }],
    ['consul:///hello?wait=10m', { service: 'hello', waitMs: 600_000 }],
    [
      'consul:///hello?filter=Service.Meta.version%20%3D%3D%20v2',
      { service: 'hello', filter: 'Service.Meta.version == v2' },
    ],
    ['consul:///hello?allow-stale=true', { service: 'hello', stale: true }],
    ['consul:///hello?require-consistent=true', { service: 'hello', consistent: true }],
    ['consul:///my_svc.v1-api', { service: 'my_svc.v1-api' }],
    ['consul:///hello?config=grpc-lb/hello', { service: 'hello', config: 'grpc-lb/hello' }],
    ['consul:///hello?config=grpc-lb%2Fhello', { service: 'hello', config: 'grpc-lb/hello' }],
    [
      'consul:///hello?config=lb%20policies/hello',
      { service: 'hello', config: 'lb policies/hello' },
    ],
    ['consul:///hello?config=hello.json', { service: 'hello', config: 'hello.json' }],
    [
      'consul:///hello?dc=dc2&config=grpc-lb/hello',
      { service: 'hello', dc: 'dc2', config: 'grpc-lb/hello' },
    ],
  ];
  for (const [target, expected] of table) {
    test(target, () => {
      const parsed = parse(target);
      assert.deepEqual(
        { ...parsed, original: undefined },
        {
          ...defaults,
          ...expected,
          original: undefined,
        },
      );
    });
  }
});

describe('parseConsulTarget rejects, naming the part', () => {
  const table: [string, RegExp][] = [
    ['consul:///', /expected consul:/],
    ['consul:///?tag=x', /expected consul:/],
    ['consul:///a/b', /not a Consul service name/],
    ['consul:///hello world', /not a Consul service name/],
    ['consul:///%zz', /percent-encoding/],
    ['consul:///hello#frag', /no fragment/],
    ['consul://bad host/hello', /agent address/],
    ['consul://127.0.0.1:99999/hello', /invalid port "99999"/],
    ['consul:///hello?healthy=maybe', /healthy="maybe" is not true or false/],
    ['consul:///hello?healthy=true&healthy=false', /healthy is given twice/],
    ['consul:///hello?tag=', /tag is empty/],
    ['consul:///hello?dc=a%20b', /dc="a b" is not a datacenter/],
    ['consul:///hello?near=', /near is empty/],
    ['consul:///hello?filter=', /filter is empty/],
    ['consul:///hello?wait=soon', /wait="soon" is not a duration/],
    ['consul:///hello?wait=11m', /longer than Consul's maximum 10m/],
    ['consul:///hello?wait=0s', /wait="0s" is not a duration/],
    ['consul:///hello?limit=3', /parameter limit \(grpc-consul-resolver\) is not supported/],
    ['consul:///hello?insecure=true', /https:\/\/ `address` option/],
    ['consul:///hello?max-backoff=1s', /max-backoff .*grpc-lb\.max_refresh_backoff_ms/],
    ['consul:///hello?timeout=1s', /timeout .*requestTimeoutMs option/],
    ['consul:///hello?limit=3', /narrow the set with tag, filter or dc/],
    ['consul:///hello?passing=true', /unknown parameter "passing"/],
    ['consul:///hello?allow-stale=true&require-consistent=true', /exclude each other/],
    ['consul:///hello?config=', /parameter config is empty: name a Consul KV key/],
    ['consul:///hello?config=/grpc-lb/hello', /config="\/grpc-lb\/hello" starts with "\/"/],
    ['consul:///hello?config=%2Fgrpc-lb', /config="\/grpc-lb" starts with "\/".*grpc-lb/],
    ['consul:///hello?config=a&config=b', /config is given twice/],
    ['consul:///hello?config=a%0Ab', /config=.* contains a control character/],
  ];
  for (const [target, problem] of table) {
    test(target, () => {
      assert.throws(
        () => parse(target),
        (error: unknown) => {
          assert.ok(error instanceof TargetError);
          assert.match(error.message, problem);
          return true;
        },
      );
    });
  }

  test('a token in the query: rejected, and the token is not in the message', () => {
    assert.throws(
      () => parse('consul:///hello?tag=v1&token=s3cr3t-token'),
      (error: unknown) => {
        assert.ok(error instanceof TargetError);
        assert.match(error.message, /token does not belong in a target/);
        assert.match(error.message, /CONSUL_HTTP_TOKEN/);
        assert.doesNotMatch(error.message, /s3cr3t/);
        assert.doesNotMatch(error.target, /s3cr3t/);
        return true;
      },
    );
  });

  test('user:pass in the authority: rejected, and neither is in the message', () => {
    assert.throws(
      () => parse('consul://admin:hunter2@127.0.0.1:8500/hello'),
      (error: unknown) => {
        assert.ok(error instanceof TargetError);
        assert.match(error.message, /credentials do not belong in a target/);
        assert.doesNotMatch(error.message, /hunter2|admin/);
        return true;
      },
    );
  });
});

test('any secret-named parameter is refused, saying where the token goes, without echoing it', () => {
  for (const target of [
    'consul:///hello?password=hunter2',
    'consul:///hello?X-Consul-Token=hunter2',
    'consul:///hello?tag=a&access_token=hunter2',
  ]) {
    assert.throws(
      () => parse(target),
      (error: unknown) =>
        error instanceof TargetError &&
        /does not belong in a target .*`token` option or CONSUL_HTTP_TOKEN/.test(error.message) &&
        !error.message.includes('hunter2'),
      target,
    );
  }
});

test('redactTarget hides user:pass and every token value', () => {
  assert.equal(
    redactTarget('consul://u:p@h:1/s?token=a&tag=x&TOKEN=b'),
    'consul://***@h:1/s?token=***&tag=x&TOKEN=***',
  );
  assert.equal(redactTarget('consul:///s?tag=x'), 'consul:///s?tag=x');
});

test('parseGoDuration reads Go durations and refuses anything else', () => {
  assert.equal(parseGoDuration('250ms'), 250);
  assert.equal(parseGoDuration('1h2m3s'), 3_723_000);
  assert.equal(parseGoDuration('1.5s'), 1_500);
  for (const bad of ['', '5', 's', '5x', '-5s', '5s ', '0s']) {
    assert.equal(parseGoDuration(bad), undefined, bad);
  }
});
