/**
 * Properties of the channel state over random sequences of connectivity and
 * health changes (round robin, health checks on, panic off).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { LoadBalancerObserver } from '../observer';
import { ROUND_ROBIN_POLICY } from '../service-config';
import { PolicyHarness, type ServingStatusName, type StateName } from './testing/fake-channel';

const ADDRESSES = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'];

type Step =
  | { readonly kind: 'connectivity'; readonly at: number; readonly state: StateName }
  | { readonly kind: 'health'; readonly at: number; readonly status: ServingStatusName };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('connectivity' as const),
    at: fc.integer({ min: 0, max: ADDRESSES.length - 1 }),
    state: fc.constantFrom<StateName>('IDLE', 'CONNECTING', 'READY', 'TRANSIENT_FAILURE'),
  }),
  fc.record({
    kind: fc.constant('health' as const),
    at: fc.integer({ min: 0, max: ADDRESSES.length - 1 }),
    status: fc.constantFrom<ServingStatusName>('SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'),
  }),
);

describe('channel state over random connectivity and health sequences', () => {
  test('READY exactly when an endpoint is in rotation; picks only go there; a failure says why in one sentence', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 8 }), async (steps) => {
        const observer = new LoadBalancerObserver();
        const h = PolicyHarness.create({
          policy: ROUND_ROBIN_POLICY,
          config: { healthCheck: { serviceName: 's' }, panicThreshold: 0 },
          endpoints: ADDRESSES,
          observer,
        });
        try {
          await h.settle(1);
          for (const s of steps) {
            const address = ADDRESSES[s.at]!;
            if (s.kind === 'connectivity') {
              h.subchannel(address).setState(s.state, `refused by ${address}`);
            } else {
              h.health.server(address).setStatus(s.status);
            }
            await h.settle(2);
            const endpoints = observer.endpoints();
            const inRotation = endpoints.filter((e) => e.inRotation).map((e) => e.address);
            for (const e of endpoints.filter((x) => x.inRotation)) {
              assert.equal(e.state, 'READY');
              assert.equal(e.health, 'serving');
            }
            assert.equal(h.stateName === 'READY', inRotation.length > 0, h.stateName);
            const tally = h.pickMany(6);
            if (h.stateName === 'READY') {
              for (const address of Object.keys(tally.counts)) {
                assert.ok(inRotation.includes(address), `${address} picked, not in rotation`);
              }
              assert.equal(tally.queued + tally.failed.length, 0);
            } else if (h.stateName === 'CONNECTING') {
              assert.equal(tally.queued, 6);
            } else {
              assert.equal(h.stateName, 'TRANSIENT_FAILURE');
              assert.equal(tally.failed.length, 6);
              const message = tally.failed[0]!;
              assert.match(message, /^grpc-lb: no endpoint of test:\/\/\/svc can take calls: /);
              assert.doesNotMatch(message, /No connection established|\n/);
              assert.equal(h.error, message);
            }
          }
        } finally {
          h.destroy();
        }
        assert.deepEqual(h.leakedSubchannels(), []);
      }),
      { numRuns: 40 },
    );
  });
});
