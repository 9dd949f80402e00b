import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { IstioTranslationError } from './errors';
import { assertClientAccepts } from './testing/validate';
import { translateIstio, type IstioTranslation } from './translate';

type Json = Record<string, unknown>;

function translate(trafficPolicy: Json, subsets: Json[] = []): IstioTranslation {
  return translateIstio({
    host: 'hello2',
    namespace: 'prod',
    virtualServices: [],
    destinationRules: [
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'DestinationRule',
        metadata: { name: 'hello2', namespace: 'prod' },
        spec: { host: 'hello2', trafficPolicy, subsets },
      },
    ],
  });
}

function limitsOf(t: IstioTranslation): unknown {
  const config = (t.serviceConfig['loadBalancingConfig'] as Json[])[0]!;
  return (config['grpc-lb.traffic_split'] as Json)['limits'];
}

const AT = 'DestinationRule prod/hello2: trafficPolicy.connectionPool';

describe('DestinationRule connectionPool → limits', () => {
  const cases: [string, Json, Json | undefined][] = [
    [
      'http2MaxRequests → maxRequests, http1MaxPendingRequests → maxPending',
      { http: { http2MaxRequests: 100, http1MaxPendingRequests: 20 } },
      { maxRequests: 100, maxPending: 20 },
    ],
    ['http2MaxRequests alone', { http: { http2MaxRequests: 1 } }, { maxRequests: 1 }],
    ['http1MaxPendingRequests alone', { http: { http1MaxPendingRequests: 5 } }, { maxPending: 5 }],
    ['0 is Istio’s "unset": no limit', { http: { http2MaxRequests: 0 } }, undefined],
    [
      'Istio’s default 2^32-1 is no limit',
      { http: { http2MaxRequests: 2 ** 32 - 1, http1MaxPendingRequests: 2 ** 32 - 1 } },
      undefined,
    ],
    [
      'the largest limit grpc-lb takes (10^9) is kept, one more is no limit',
      { http: { http2MaxRequests: 1e9, http1MaxPendingRequests: 1e9 + 1 } },
      { maxRequests: 1e9 },
    ],
  ];
  for (const [name, pool, limits] of cases) {
    test(name, () => {
      const t = translate({ connectionPool: pool });
      assert.deepEqual(limitsOf(t), limits);
      assert.deepEqual(t.warnings, []);
      assertClientAccepts(t.serviceConfig);
    });
  }

  test('maxRequestsPerConnection is warned about: a lifetime count, not calls at once', () => {
    const t = translate({ connectionPool: { http: { maxRequestsPerConnection: 1 } } });
    assert.equal(limitsOf(t), undefined);
    assert.deepEqual(t.warnings, [
      `${AT}: connection pool settings are not applied (http.maxRequestsPerConnection): ` +
        'a channel keeps one HTTP/2 connection per endpoint (maxRequestsPerConnection is how many calls ' +
        'a connection carries in its life, not at once)',
    ]);
  });

  test('every other field is named in one warning, the limits are still taken', () => {
    const t = translate({
      connectionPool: {
        tcp: { maxConnections: 10, connectTimeout: '1s', tcpKeepalive: { time: '10s' } },
        http: {
          http2MaxRequests: 50,
          maxRetries: 3,
          idleTimeout: '1m',
          h2UpgradePolicy: 'UPGRADE',
          maxConcurrentStreams: 8,
        },
      },
    });
    assert.deepEqual(limitsOf(t), { maxRequests: 50 });
    assert.deepEqual(t.warnings, [
      `${AT}: connection pool settings are not applied (tcp.maxConnections, tcp.connectTimeout, ` +
        'tcp.tcpKeepalive, http.maxRetries, http.idleTimeout, http.h2UpgradePolicy, ' +
        'http.maxConcurrentStreams): a channel keeps one HTTP/2 connection per endpoint',
    ]);
    assertClientAccepts(t.serviceConfig);
  });

  const bad: [string, unknown][] = [
    ['a negative count', -1],
    ['a fraction', 1.5],
    ['a string', '100'],
  ];
  for (const [name, value] of bad) {
    test(`${name} is an error naming the field`, () => {
      assert.throws(
        () => translate({ connectionPool: { http: { http2MaxRequests: value } } }),
        (e: unknown) =>
          e instanceof IstioTranslationError &&
          e.code === 'BAD_RESOURCE' &&
          e.resource === 'DestinationRule prod/hello2' &&
          e.field === 'trafficPolicy.connectionPool.http.http2MaxRequests',
      );
    });
  }

  test('a connectionPool that is not an object is an error naming it', () => {
    assert.throws(
      () => translate({ connectionPool: 5 }),
      (e: unknown) =>
        e instanceof IstioTranslationError && e.field === 'trafficPolicy.connectionPool',
    );
  });

  test('with several subsets, a warning says the limits count over the whole host', () => {
    const t = translate({ connectionPool: { http: { http2MaxRequests: 100 } } }, [
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'v2', labels: { version: 'v2' } },
    ]);
    assert.deepEqual(limitsOf(t), { maxRequests: 100 });
    assert.deepEqual(t.warnings, [
      `${AT}: limits count the calls to every endpoint of the host together, where Istio counts per subset`,
    ]);
  });

  test('a subset’s limits are warned about; the top-level ones limit the whole channel', () => {
    const t = translate({ connectionPool: { http: { http2MaxRequests: 100 } } }, [
      {
        name: 'v1',
        labels: { version: 'v1' },
        trafficPolicy: { connectionPool: { http: { http2MaxRequests: 5 } } },
      },
    ]);
    assert.deepEqual(limitsOf(t), { maxRequests: 100 });
    assert.deepEqual(t.warnings, [
      'DestinationRule prod/hello2: subsets[0].trafficPolicy.connectionPool: per-subset limits are not applied: ' +
        'the top-level connectionPool limits the whole channel',
    ]);
    assertClientAccepts(t.serviceConfig);
  });

  test('Istio’s trafficPolicy.retryBudget is warned about, not translated', () => {
    const t = translate({ retryBudget: { percent: 20, minRetryConcurrency: 3 } });
    assert.deepEqual(t.warnings, [
      'DestinationRule prod/hello2: trafficPolicy.retryBudget: not translated: Istio’s budget counts retries in ' +
        'flight against requests in flight; grpc-lb’s retryBudget counts them over a window of time ' +
        '(set it in the policy’s config)',
    ]);
    assert.equal(limitsOf(t), undefined);
  });
});
