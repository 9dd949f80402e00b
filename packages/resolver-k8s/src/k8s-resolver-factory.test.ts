/**
 * `@kubernetes/client-node` is imported when the resolver is registered, not when the first
 * channel resolves (its ESM import takes seconds on a loaded machine, and the first calls of a
 * new client would wait for it). This file runs in a process of its own, so the module starts
 * unloaded.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { parseTargetUri } from '@grpc-lb/core';
import { clientNodeRequested } from './k8s-client';
import { createK8sResolverFactory, registerK8s } from './k8s-resolver-factory';

test('a factory with its own API client does not load client-node', () => {
  assert.equal(clientNodeRequested(), false);
  createK8sResolverFactory({ createApi: () => Promise.reject(new Error('unused')) });
  assert.equal(clientNodeRequested(), false);
});

test('registerK8s() starts loading client-node at once, before any target', async () => {
  assert.equal(clientNodeRequested(), false);
  registerK8s({ grpc, kubeconfig: '/nonexistent/kubeconfig' });
  assert.equal(clientNodeRequested(), true);
  // The import itself succeeds (and a failure would be reported by the first resolution).
  await import('@kubernetes/client-node');
});

test("source must be 'auto', 'endpointslices' or 'endpoints'; the resolver gets it", () => {
  const createApi = (): Promise<never> => Promise.reject(new Error('unused'));
  assert.throws(() => createK8sResolverFactory({ createApi, source: 'slices' as 'endpoints' }), {
    name: 'ConfigError',
    message: `k8s resolver: invalid source: source must be 'auto', 'endpointslices' or 'endpoints', not "slices"`,
  });
  const factory = createK8sResolverFactory({ createApi, source: 'endpoints' });
  const target = factory.parseTarget(parseTargetUri('k8s:///hello:grpc'), 'k8s:///hello:grpc');
  const resolver = factory.create(target, {
    target: 'k8s:///hello:grpc',
    channelOptions: {},
  }) as unknown as { source: string };
  assert.equal(resolver.source, 'endpoints');
});

test('registerK8s passes zone on to register() (a bad one is its ConfigError)', () => {
  assert.throws(() => registerK8s({ grpc, kubeconfig: '/nonexistent/kubeconfig', zone: '' }), {
    name: 'ConfigError',
  });
  registerK8s({ grpc, kubeconfig: '/nonexistent/kubeconfig', zone: 'eu-west-1a' });
});
