/**
 * What a failed call says: one sentence naming the target, how many
 * endpoints are in which state, the most recent relevant error and the
 * resolver's note when it has one — never nested or stale text.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ROUND_ROBIN_POLICY } from '../service-config';
import { PolicyHarness, Status } from './testing/fake-channel';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';

function failedDetails(h: PolicyHarness): string {
  const outcome = h.call();
  assert.equal(outcome.kind, 'fail', `expected the pick to fail, got ${outcome.kind}`);
  return outcome.kind === 'fail' ? outcome.details : '';
}

describe('failure messages', () => {
  test('no endpoints', () => {
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: [] });
    assert.equal(h.error, 'grpc-lb: no endpoints for test:///svc');
    assert.equal(failedDetails(h), 'grpc-lb: no endpoints for test:///svc');
    h.destroy();
  });

  test('no endpoints, with the resolver note', () => {
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY });
    h.update({ endpoints: [], note: 'Service hello has no ready endpoints' });
    assert.equal(
      failedDetails(h),
      'grpc-lb: no endpoints for test:///svc (resolver: Service hello has no ready endpoints)',
    );
    h.destroy();
  });

  test('every endpoint unreachable: the count, the state and the last connection error, not nested', async () => {
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: [A, B] });
    await h.fail('connect ECONNREFUSED 10.0.0.1:80', A);
    await h.fail('connect ECONNREFUSED 10.0.0.2:80', B);
    const expected =
      'grpc-lb: no endpoint of test:///svc can take calls: 2 of 2 endpoints in TRANSIENT_FAILURE (last error: connect ECONNREFUSED 10.0.0.2:80)';
    assert.equal(h.error, expected);
    assert.equal(failedDetails(h), expected);
    h.destroy();
  });

  test('the resolver note is added only when it is not empty', async () => {
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY });
    h.update({ endpoints: [A], note: 'from etcd /services/hello' });
    await h.fail('connect ECONNREFUSED 10.0.0.1:80', A);
    assert.equal(
      failedDetails(h),
      'grpc-lb: no endpoint of test:///svc can take calls: 1 of 1 endpoints in TRANSIENT_FAILURE (last error: connect ECONNREFUSED 10.0.0.1:80); resolver: from etcd /services/hello',
    );
    h.destroy();
  });

  test('an error from before an endpoint was READY is not reported after it fails again without one', async () => {
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: [A] });
    await h.fail('connect ECONNREFUSED 10.0.0.1:80', A);
    await h.ready(A);
    await h.setState('TRANSIENT_FAILURE', [A]);
    assert.equal(
      failedDetails(h),
      'grpc-lb: no endpoint of test:///svc can take calls: 1 of 1 endpoints in TRANSIENT_FAILURE',
    );
    h.destroy();
  });

  test("a removed endpoint's error is not reported", async () => {
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: [A, B] });
    await h.fail('connect ECONNREFUSED 10.0.0.2:80', B);
    await h.fail('connect ECONNREFUSED 10.0.0.1:80', A);
    h.update({ endpoints: [B] });
    await h.settle();
    assert.match(
      failedDetails(h),
      /1 of 1 endpoints in TRANSIENT_FAILURE \(last error: connect ECONNREFUSED 10\.0\.0\.2:80\)$/,
    );
    h.destroy();
  });

  test('unreachable and unhealthy endpoints together: both named in one sentence', async () => {
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { healthCheck: { serviceName: 'x' }, panicThreshold: 0 },
      endpoints: [A, B],
    });
    await h.fail('connect ECONNREFUSED 10.0.0.1:80', A);
    await h.ready(B);
    await h.setHealth(B, 'NOT_SERVING');
    assert.equal(
      failedDetails(h),
      'grpc-lb: no endpoint of test:///svc can take calls: 1 of 2 endpoints in TRANSIENT_FAILURE (last error: connect ECONNREFUSED 10.0.0.1:80); 1 of 1 connected endpoints failed their health check (service "x": NOT_SERVING)',
    );
    h.destroy();
  });

  test('ejected endpoints are named as ejected', async () => {
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: {
        outlierDetection: { consecutiveFailures: 1, maxEjectionPercent: 100 },
        panicThreshold: 0,
      },
      endpoints: [A],
    });
    await h.ready();
    const call = h.call();
    if (call.kind === 'complete') call.end({ code: Status.UNAVAILABLE });
    assert.equal(
      failedDetails(h),
      'grpc-lb: no endpoint of test:///svc can take calls: 1 of 1 connected endpoints ejected as outliers',
    );
    h.destroy();
  });

  test('a resolver error with no endpoint known: its own details', () => {
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY });
    h.resolverError('grpc-lb: etcd:///hello: etcd unreachable at 127.0.0.1:2379');
    assert.equal(failedDetails(h), 'grpc-lb: etcd:///hello: etcd unreachable at 127.0.0.1:2379');
    h.destroy();
  });
});
