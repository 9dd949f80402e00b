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
    ['etcd:///services/hello?x=1', /no query/],
    ['etcd:///services/hello#x', /no query or fragment/],
    ['etcd:///bad%zz', /invalid percent-encoding/],
    ['etcd://user:secret@127.0.0.1:2379/services/hello', /credentials do not belong in a target/],
    ['etcd://127.0.0.1:2379,/services/hello', /etcd endpoint 2 is empty/],
    ['etcd://127.0.0.1:99999/services/hello', /invalid port "99999"/],
    ['etcd://secret@127.0.0.1:2379/services/hello', /give them as the auth option/],
    ['etcd:///services/hello?token=secret', /no query/],
    ['etcd:///services/hello?password=secret&x', /no query/],
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

test('the default authority is one host name however the service is spelled', () => {
  assert.equal(authorityOf('a/b/c'), 'c');
  assert.equal(authorityOf('a/b/c/'), 'c');
  assert.equal(authorityOf('/'), 'etcd');
  assert.equal(authorityOf('x/__'), 'etcd');
  assert.equal(authorityOf('x/Hello..World'), 'Hello.World');
  assert.equal(keyPrefixOf('x'), 'x/');
  assert.equal(keyPrefixOf('x/'), 'x/');
});
