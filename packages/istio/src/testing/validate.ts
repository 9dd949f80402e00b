import assert from 'node:assert/strict';
import { checkServiceConfig } from '@grpc-lb/core';
import { validateServiceConfig } from '@grpc/grpc-js/build/src/service-config';

/**
 * Checks a translated service config as a client would: our policy's fields
 * by core's parser, `methodConfig` (timeouts, retry policies) by grpc-js's.
 */
export function assertClientAccepts(config: Record<string, unknown>): void {
  assert.doesNotThrow(() => checkServiceConfig(config, 'translated config'));
  assert.doesNotThrow(() => validateServiceConfig(config));
}

function accepts(split: Record<string, unknown>): boolean {
  try {
    checkServiceConfig({ loadBalancingConfig: [{ 'grpc-lb.traffic_split': split }] }, 'probe');
    return true;
  } catch {
    return false;
  }
}

const ROUTE = { split: [{ subset: 'a', weight: 1 }] };

/**
 * Whether the installed core has what some translations emit: subset
 * policies least_request and random, and regex matches. A test that emits
 * them validates its config once core has them.
 */
export const CORE_HAS = {
  leastRequestSubsets: accepts({
    subsets: [{ name: 'a', labels: {}, policy: 'least_request' }],
    routes: [ROUTE],
  }),
  randomSubsets: accepts({
    subsets: [{ name: 'a', labels: {}, policy: 'random' }],
    routes: [ROUTE],
  }),
  regexMatches: accepts({
    subsets: [{ name: 'a', labels: {} }],
    routes: [{ match: { regex: '/a\\.B/.*', headers: [{ name: 'x', regex: 'y.*' }] }, ...ROUTE }],
  }),
};
