import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { UsageError } from './errors';
import { defaultHost, namedHosts } from './hosts';

const vs = (...hosts: string[]) => ({ kind: 'VirtualService', spec: { hosts } });
const dr = (host: string) => ({ kind: 'DestinationRule', spec: { host } });

describe('defaultHost: the host the resources share', () => {
  test('a VirtualService and a DestinationRule for the same host give it', () => {
    assert.equal(
      defaultHost(
        { virtualServices: [vs('hello2-svc')], destinationRules: [dr('hello2-svc')] },
        'x',
      ),
      'hello2-svc',
    );
  });

  test('the one host every resource names wins over the others a VirtualService lists', () => {
    const resources = {
      virtualServices: [vs('hello2', 'hello2.example.com')],
      destinationRules: [dr('hello2')],
    };
    assert.equal(defaultHost(resources, 'x'), 'hello2');
  });

  test('a DestinationRule alone gives its host', () => {
    assert.equal(defaultHost({ virtualServices: [], destinationRules: [dr('a')] }, 'x'), 'a');
  });

  test('several hosts are a usage error listing them', () => {
    const resources = { virtualServices: [vs('a')], destinationRules: [dr('b')] };
    assert.throws(
      () => defaultHost(resources, 'grpc-lb istio translate'),
      (error: unknown) =>
        error instanceof UsageError &&
        error.command === 'grpc-lb istio translate' &&
        error.message === 'the resources name several hosts (a, b): choose one with --host',
    );
    assert.throws(
      () => defaultHost({ virtualServices: [vs('a', 'b')], destinationRules: [] }, 'x'),
      UsageError,
    );
  });

  test('no host at all is a usage error asking for --host', () => {
    assert.throws(
      () => defaultHost({ virtualServices: [{ spec: {} }], destinationRules: [{}] }, 'x'),
      /name no host .*--host/,
    );
  });

  test('namedHosts lists each host once, in order', () => {
    assert.deepEqual(
      namedHosts({ virtualServices: [vs('b', 'a')], destinationRules: [dr('a'), dr('c')] }),
      ['b', 'a', 'c'],
    );
  });
});
