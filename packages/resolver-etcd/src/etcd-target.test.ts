import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseTargetUri, TargetError } from '@grpc-lb/core';
import { authorityOf, keyPrefixOf, parseEtcdTarget } from './etcd-target';

function parse(target: string) {
  return parseEtcdTarget(parseTargetUri(target), target);
}

describe('parseEtcdTarget', () => {
  const table: [
    string,
    { service: string; keyPrefix: string; endpoints?: string[]; authority: string },
  ][] = [
    [
      'etcd:///services/hello',
      { service: 'services/hello', keyPrefix: 'services/hello/', authority: 'hello' },
    ],
    ['etcd:///hello', { service: 'hello', keyPrefix: 'hello/', authority: 'hello' }],
    ['etcd:hello', { service: 'hello', keyPrefix: 'hello/', authority: 'hello' }],
    [
      'etcd:////services/hello',
      { service: '/services/hello', keyPrefix: '/services/hello/', authority: 'hello' },
    ],
    [
      'etcd:///services/hello/',
      { service: 'services/hello/', keyPrefix: 'services/hello/', authority: 'hello' },
    ],
    [
      'etcd:///foo/bar/my_service.v2',
      {
        service: 'foo/bar/my_service.v2',
        keyPrefix: 'foo/bar/my_service.v2/',
        authority: 'my-service.v2',
      },
    ],
    ['etcd:///svc%20x', { service: 'svc x', keyPrefix: 'svc x/', authority: 'svc-x' }],
    [
      'etcd://127.0.0.1:2379,10.0.0.2:22379/services/hello',
      {
        service: 'services/hello',
        keyPrefix: 'services/hello/',
        endpoints: ['127.0.0.1:2379', '10.0.0.2:22379'],
        authority: 'hello',
      },
    ],
    [
      'etcd://etcd.infra/services/hello',
      {
        service: 'services/hello',
        keyPrefix: 'services/hello/',
        endpoints: ['etcd.infra:2379'],
        authority: 'hello',
      },
    ],
    [
      'etcd://[::1]:2379/services/hello',
      {
        service: 'services/hello',
        keyPrefix: 'services/hello/',
        endpoints: ['[::1]:2379'],
        authority: 'hello',
      },
    ],
  ];
  for (const [target, expected] of table) {
    test(`reads ${target}`, () => {
      const parsed = parse(target);
      assert.equal(parsed.service, expected.service);
      assert.equal(parsed.keyPrefix, expected.keyPrefix);
      assert.deepEqual(parsed.endpoints, expected.endpoints);
      assert.equal(parsed.authority, expected.authority);
      assert.equal(parsed.original, target);
    });
  }

  const errors: [string, RegExp][] = [
    ['etcd:///', /no service prefix/],
    ['etcd:////', /no service prefix/],
    [
      'etcd:///services/hello?x=1',
      /unknown query parameter "x" \(an etcd target takes only config=<key>\)/,
    ],
    ['etcd:///services/hello#x', /no fragment/],
    ['etcd:///services/hello?config=config/hello#x', /no fragment/],
    ['etcd:///bad%zz', /invalid percent-encoding/],
    ['etcd://user:secret@127.0.0.1:2379/services/hello', /credentials do not belong in a target/],
    ['etcd://127.0.0.1:2379,/services/hello', /etcd endpoint 2 is empty/],
    ['etcd://127.0.0.1:99999/services/hello', /invalid port "99999"/],
    ['etcd://secret@127.0.0.1:2379/services/hello', /give them as the auth option/],
    ['etcd:///services/hello?token=secret', /unknown query parameter "token"/],
    ['etcd:///services/hello?password=secret&x', /unknown query parameter "password"/],
    ['etcd:///services/hello?config=config/hello&token=secret', /unknown query parameter "token"/],
    ['etcd:///services/hello?config=', /config= is empty: name the etcd key/],
    ['etcd:///services/hello?config', /config= is empty/],
    ['etcd:///services/hello?config=a&config=b', /config is given twice/],
    ['etcd:///services/hello?config=bad%zz', /config key "bad%zz" has an invalid percent-encoding/],
    [
      'etcd:///services/hello?config=services/hello/config',
      /the config key "services\/hello\/config" is under the endpoint prefix "services\/hello\/".*e\.g\. config=services\/hello\.config/,
    ],
    [
      'etcd:///services/hello?config=services%2Fhello%2F',
      /the config key "services\/hello\/" is under the endpoint prefix "services\/hello\/"/,
    ],
    [
      'etcd:///services/hello/?config=services/hello/x',
      /under the endpoint prefix "services\/hello\/".*config=services\/hello\.config/,
    ],
  ];
  for (const [target, message] of errors) {
    test(`rejects ${target}`, () => {
      assert.throws(
        () => parse(target),
        (error: unknown) =>
          error instanceof TargetError &&
          message.test(error.message) &&
          !error.message.includes('secret'),
      );
    });
  }
});

describe('parseEtcdTarget: ?config=<key>', () => {
  const table: [string, { service: string; keyPrefix: string; configKey: string | undefined }][] = [
    [
      'etcd:///services/hello?config=config/hello',
      { service: 'services/hello', keyPrefix: 'services/hello/', configKey: 'config/hello' },
    ],
    [
      'etcd:///services/hello?config=services/hello.config',
      {
        service: 'services/hello',
        keyPrefix: 'services/hello/',
        configKey: 'services/hello.config',
      },
    ],
    [
      'etcd:///services/hello?config=%2Fconfig%2Fhello%20x%26y%3F',
      { service: 'services/hello', keyPrefix: 'services/hello/', configKey: '/config/hello x&y?' },
    ],
    // The service itself (no slash) is not under "services/hello/": Go's reader never lists it.
    [
      'etcd:///services/hello?config=services/hello',
      { service: 'services/hello', keyPrefix: 'services/hello/', configKey: 'services/hello' },
    ],
    [
      'etcd://127.0.0.1:2379/svc%3Fx?config=cfg',
      { service: 'svc?x', keyPrefix: 'svc?x/', configKey: 'cfg' },
    ],
    // An empty query is no parameter.
    [
      'etcd:///services/hello?',
      { service: 'services/hello', keyPrefix: 'services/hello/', configKey: undefined },
    ],
    [
      'etcd:///services/hello',
      { service: 'services/hello', keyPrefix: 'services/hello/', configKey: undefined },
    ],
  ];
  for (const [target, expected] of table) {
    test(`reads ${target}`, () => {
      const parsed = parse(target);
      assert.equal(parsed.service, expected.service);
      assert.equal(parsed.keyPrefix, expected.keyPrefix);
      assert.equal(parsed.configKey, expected.configKey);
      assert.equal(parsed.authority, authorityOf(expected.service));
    });
  }
});

test('the default authority is one host name however the service is spelled', () => {
  assert.equal(authorityOf('a/b/c'), 'c');
  assert.equal(authorityOf('a/b/c/'), 'c');
  assert.equal(authorityOf('/'), 'etcd');
  assert.equal(authorityOf('x/__'), 'etcd');
  assert.equal(authorityOf('x/Hello..World'), 'Hello.World');
  assert.equal(keyPrefixOf('x'), 'x/');
  assert.equal(keyPrefixOf('x/'), 'x/');
});
