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

describe('defaultHost: names compared as Istio reads them', () => {
  const inNs = <T extends object>(namespace: string, resource: T) => ({
    ...resource,
    metadata: { name: 'r', namespace },
  });

  test('a short name and the full name of the same Service give the full name', () => {
    const resources = {
      virtualServices: [inNs('prod', vs('hello2'))],
      destinationRules: [inNs('prod', dr('hello2.prod.svc.cluster.local'))],
    };
    assert.equal(defaultHost(resources, 'x'), 'hello2.prod.svc.cluster.local');
  });

  test('a short name in a resource without a namespace reads in --namespace', () => {
    const resources = {
      virtualServices: [vs('hello2')],
      destinationRules: [dr('hello2.prod')],
    };
    assert.equal(defaultHost(resources, 'x', 'prod'), 'hello2.prod.svc.cluster.local');
    assert.throws(
      () => defaultHost(resources, 'x', 'staging'),
      /several hosts \(hello2, hello2\.prod\)/,
    );
  });

  test('the same short name in two namespaces is two hosts', () => {
    const resources = {
      virtualServices: [],
      destinationRules: [inNs('a', dr('hello2')), inNs('b', dr('hello2'))],
    };
    assert.throws(() => defaultHost(resources, 'x'), UsageError);
  });

  test('a wildcard host is never chosen', () => {
    const resources = {
      virtualServices: [vs('*.example.com', 'api.example.com')],
      destinationRules: [],
    };
    assert.equal(defaultHost(resources, 'x'), 'api.example.com');
  });
});
