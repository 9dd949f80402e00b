/**
 * `@kubernetes/client-node` is imported when the resolver is registered, not when the first
 * channel resolves (its ESM import takes seconds on a loaded machine, and the first calls of a
 * new client would wait for it). This file runs in a process of its own, so the module starts
 * unloaded.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
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
