import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { parseOutlierDetection } from '@grpc-lb/core';
import { IstioTranslationError } from './errors';
import { assertClientAccepts, CORE_HAS } from './testing/validate';
import { translateIstio, type IstioTranslation } from './translate';

type Json = Record<string, unknown>;

function rule(spec: Json, name = 'hello2'): Json {
  return {
    apiVersion: 'networking.istio.io/v1beta1',
    kind: 'DestinationRule',
    metadata: { name, namespace: 'prod' },
    spec: { host: 'hello2', ...spec },
  };
}

function translate(...destinationRules: Json[]): IstioTranslation {
  return translateIstio({
    host: 'hello2',
    namespace: 'prod',
    virtualServices: [],
    destinationRules,
  });
}

function splitOf(t: IstioTranslation): Json {
  return (t.serviceConfig['loadBalancingConfig'] as Json[])[0]!['grpc-lb.traffic_split'] as Json;
}

/** Validates with core when it has the subset policies the config uses. */
function accepts(
  t: TestContext,
  result: IstioTranslation,
  needs: (keyof typeof CORE_HAS)[] = [],
): void {
  const missing = needs.filter((n) => !CORE_HAS[n]);
  if (missing.length > 0) {
    t.diagnostic(`core lacks ${missing.join(', ')}: the config is validated once it has them`);
    return;
  }
  assertClientAccepts(result.serviceConfig);
}

const SUBSETS = [
  { name: 'v1', labels: { version: 'v1' } },
  { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } },
];

describe('DestinationRule: subsets and policies', () => {
  test('a rule alone routes every call over every endpoint, with its subsets listed', (t) => {
    const result = translate(rule({ subsets: SUBSETS.slice(0, 1) }));
    assert.deepEqual(splitOf(result), {
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'all-endpoints', labels: {} },
      ],
      routes: [{ name: 'default', split: [{ subset: 'all-endpoints', weight: 100 }] }],
    });
    assert.deepEqual(result.warnings, []);
    accepts(t, result);
  });

  const simple: [string, string | undefined][] = [
    ['ROUND_ROBIN', 'round_robin'],
    ['LEAST_REQUEST', 'least_request'],
    ['LEAST_CONN', 'least_request'],
    ['RANDOM', 'random'],
    ['UNSPECIFIED', undefined],
  ];
  for (const [istio, ours] of simple) {
    test(`loadBalancer.simple ${istio} → subsetPolicy ${ours ?? '(default)'}`, (t) => {
      const result = translate(rule({ trafficPolicy: { loadBalancer: { simple: istio } } }));
      assert.equal(splitOf(result)['subsetPolicy'], ours);
      assert.deepEqual(result.warnings, []);
      accepts(
        t,
        result,
        ours === 'least_request'
          ? ['leastRequestSubsets']
          : ours === 'random'
            ? ['randomSubsets']
            : [],
      );
    });
  }

  test('a subset’s own loadBalancer.simple becomes its policy', (t) => {
    const result = translate(
      rule({ trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' } }, subsets: SUBSETS }),
    );
    const split = splitOf(result);
    assert.equal(split['subsetPolicy'], 'least_request');
    assert.deepEqual((split['subsets'] as Json[]).slice(0, 2), [
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'v2', labels: { version: 'v2' }, policy: 'random' },
    ]);
    accepts(t, result, ['leastRequestSubsets', 'randomSubsets']);
  });

  test('PASSTHROUGH is warned about and kept as round robin', (t) => {
    const result = translate(rule({ trafficPolicy: { loadBalancer: { simple: 'PASSTHROUGH' } } }));
    assert.equal(splitOf(result)['subsetPolicy'], 'round_robin');
    assert.deepEqual(result.warnings, [
      'DestinationRule prod/hello2: trafficPolicy.loadBalancer.simple: PASSTHROUGH (use the address the caller chose) ' +
        'has no client-side equivalent: round robin is used',
    ]);
    accepts(t, result);
  });

  const hashes: [string, Json, Json][] = [
    [
      'httpHeaderName → a ring hash keyed by that header (lower-cased)',
      { httpHeaderName: 'X-User-Id' },
      { hashHeader: 'x-user-id', algorithm: 'ring_hash' },
    ],
    [
      'ringHash.minimumRingSize → minRingSize',
      { httpHeaderName: 'x-user', ringHash: { minimumRingSize: 4096 } },
      { hashHeader: 'x-user', algorithm: 'ring_hash', minRingSize: 4096 },
    ],
    [
      'the deprecated top-level minimumRingSize → minRingSize',
      { httpHeaderName: 'x-user', minimumRingSize: 2048 },
      { hashHeader: 'x-user', algorithm: 'ring_hash', minRingSize: 2048 },
    ],
    [
      'maglev.tableSize → Maglev with that table',
      { httpHeaderName: 'x-user', maglev: { tableSize: 251 } },
      { hashHeader: 'x-user', algorithm: 'maglev', tableSize: 251 },
    ],
    [
      'maglev without a size → Maglev with the default table',
      { httpHeaderName: 'x-user', maglev: {} },
      { hashHeader: 'x-user', algorithm: 'maglev' },
    ],
  ];
  for (const [what, istio, ours] of hashes) {
    test(`loadBalancer.consistentHash: ${what}`, (t) => {
      const result = translate(
        rule({ trafficPolicy: { loadBalancer: { consistentHash: istio } } }),
      );
      const split = splitOf(result);
      assert.equal(split['subsetPolicy'], 'consistent_hash');
      assert.deepEqual(split['consistentHash'], ours);
      assert.deepEqual(result.warnings, []);
      accepts(t, result);
    });
  }

  test('a subset’s own consistentHash becomes its policy and options', (t) => {
    const result = translate(
      rule({
        subsets: [
          {
            name: 'v1',
            labels: { version: 'v1' },
            trafficPolicy: {
              loadBalancer: { consistentHash: { httpHeaderName: 'x-tenant', maglev: {} } },
            },
          },
        ],
      }),
    );
    const split = splitOf(result);
    assert.equal(split['subsetPolicy'], undefined);
    assert.deepEqual((split['subsets'] as Json[])[0], {
      name: 'v1',
      labels: { version: 'v1' },
      policy: 'consistent_hash',
      consistentHash: { hashHeader: 'x-tenant', algorithm: 'maglev' },
    });
    accepts(t, result);
  });

  test('hashing on a cookie, the source IP or a query parameter is warned: keyed by setHashKey only', (t) => {
    for (const source of [
      { httpCookie: { name: 'session', ttl: '0s' } },
      { useSourceIp: true },
      { httpQueryParameterName: 'user' },
    ]) {
      const result = translate(
        rule({ trafficPolicy: { loadBalancer: { consistentHash: source } } }),
      );
      const split = splitOf(result);
      assert.equal(split['subsetPolicy'], 'consistent_hash');
      assert.deepEqual(split['consistentHash'], { algorithm: 'ring_hash' });
      const key = Object.keys(source)[0]!;
      assert.equal(result.warnings.length, 1);
      assert.match(
        result.warnings[0]!,
        new RegExp(
          `^DestinationRule prod/hello2: trafficPolicy\\.loadBalancer\\.consistentHash\\.${key}: hashing on ${key} is not applied \\(.+\\): calls are hashed by the key the application sets \\(setHashKey\\)`,
        ),
      );
      accepts(t, result);
    }
  });

  const badHashes: [string, Json, string, RegExp][] = [
    [
      'simple beside consistentHash',
      { simple: 'RANDOM', consistentHash: { httpHeaderName: 'x' } },
      'trafficPolicy.loadBalancer',
      /give one of simple, consistentHash/,
    ],
    [
      'ringHash beside maglev',
      { consistentHash: { httpHeaderName: 'x', ringHash: {}, maglev: {} } },
      'trafficPolicy.loadBalancer.consistentHash',
      /give one of ringHash, maglev/,
    ],
    [
      'a Maglev table size that is not prime',
      { consistentHash: { httpHeaderName: 'x', maglev: { tableSize: 65536 } } },
      'trafficPolicy.loadBalancer.consistentHash',
      /must be a prime number/,
    ],
    [
      'a ring above 8M entries',
      { consistentHash: { httpHeaderName: 'x', ringHash: { minimumRingSize: 9_000_000 } } },
      'trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize',
      /expected an integer 0-8388608/,
    ],
    [
      'a binary header',
      { consistentHash: { httpHeaderName: 'x-id-bin' } },
      'trafficPolicy.loadBalancer.consistentHash',
      /binary header/,
    ],
  ];
  for (const [what, loadBalancer, field, problem] of badHashes) {
    test(`consistentHash: ${what} is an error naming the field`, () => {
      assert.throws(
        () => translate(rule({ trafficPolicy: { loadBalancer } })),
        (e: unknown) =>
          e instanceof IstioTranslationError &&
          e.code === 'BAD_RESOURCE' &&
          e.field === field &&
          problem.test(e.message),
      );
    });
  }

  test('an unknown loadBalancer.simple is an error naming the field', () => {
    assert.throws(
      () => translate(rule({ trafficPolicy: { loadBalancer: { simple: 'FASTEST' } } })),
      (e: unknown) =>
        e instanceof IstioTranslationError &&
        e.code === 'BAD_RESOURCE' &&
        e.resource === 'DestinationRule prod/hello2' &&
        e.field === 'trafficPolicy.loadBalancer.simple',
    );
  });

  test('localityLbSetting, tls, portLevelSettings are each named in a warning', () => {
    const result = translate(
      rule({
        trafficPolicy: {
          loadBalancer: {
            simple: 'ROUND_ROBIN',
            localityLbSetting: { enabled: true },
          },
          tls: { mode: 'ISTIO_MUTUAL' },
          portLevelSettings: [{ port: { number: 7001 }, loadBalancer: { simple: 'RANDOM' } }],
        },
      }),
    );
    const fields = result.warnings.map((w) => w.split(': ')[1]);
    assert.deepEqual(fields.sort(), [
      'trafficPolicy.loadBalancer.localityLbSetting',
      'trafficPolicy.portLevelSettings',
      'trafficPolicy.tls',
    ]);
  });

  test('a subset’s connectionPool and tls are named with the subset’s path', () => {
    const result = translate(
      rule({
        subsets: [
          {
            name: 'v1',
            labels: { version: 'v1' },
            trafficPolicy: {
              tls: { mode: 'SIMPLE' },
              connectionPool: { tcp: { maxConnections: 1 } },
            },
          },
        ],
      }),
    );
    assert.deepEqual(
      result.warnings.map((w) => w.split(': ')[1]),
      ['subsets[0].trafficPolicy.tls', 'subsets[0].trafficPolicy.connectionPool'],
    );
  });

  test('a second rule for the host adds its subsets; its traffic policy is named as not applied', () => {
    const result = translate(
      rule({
        subsets: SUBSETS.slice(0, 1),
        trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } },
      }),
      rule(
        {
          subsets: [
            { name: 'v1', labels: { track: 'x' } },
            { name: 'v3', labels: { version: 'v3' } },
          ],
          trafficPolicy: { loadBalancer: { simple: 'RANDOM' } },
        },
        'hello2-more',
      ),
    );
    assert.deepEqual(
      (splitOf(result)['subsets'] as Json[]).map((s) => s['name']),
      ['v1', 'v3', 'all-endpoints'],
    );
    assert.equal(splitOf(result)['subsetPolicy'], 'round_robin');
    assert.deepEqual(result.used, [
      'DestinationRule prod/hello2',
      'DestinationRule prod/hello2-more',
    ]);
    assert.deepEqual(result.warnings, [
      'DestinationRule prod/hello2-more: trafficPolicy: not applied: the traffic policy of DestinationRule prod/hello2, ' +
        'the first DestinationRule for the host, is used',
      'DestinationRule prod/hello2-more: subsets[0].name: subset "v1" is defined earlier: this one is left out',
    ]);
  });

  test('workloadSelector is named: the rule is applied to every client', () => {
    const result = translate(rule({ workloadSelector: { matchLabels: { app: 'hello1' } } }));
    assert.match(result.warnings[0]!, /^DestinationRule prod\/hello2: workloadSelector: /);
  });

  test('a subset without a name, or with a label that is not a string, is an error naming the field', () => {
    for (const [subsets, field] of [
      [[{ labels: { version: 'v1' } }], 'subsets[0].name'],
      [[{ name: 'v1', labels: { version: 1 } }], 'subsets[0].labels.version'],
    ] as const) {
      assert.throws(
        () => translate(rule({ subsets })),
        (e: unknown) => e instanceof IstioTranslationError && e.field === field,
      );
    }
  });
});

describe('DestinationRule: outlier detection and panic threshold', () => {
  function outlier(od: Json, subsets: Json[] = []): { result: IstioTranslation; split: Json } {
    const result = translate(rule({ subsets, trafficPolicy: { outlierDetection: od } }));
    return { result, split: splitOf(result) };
  }

  test('consecutive5xxErrors counts the statuses Envoy turns into a 5xx', (t) => {
    const { result, split } = outlier({
      consecutive5xxErrors: 7,
      interval: '5s',
      baseEjectionTime: '1m',
      maxEjectionPercent: 50,
    });
    assert.deepEqual(split['outlierDetection'], {
      consecutiveFailures: 7,
      failureStatusCodes: [
        'UNKNOWN',
        'DEADLINE_EXCEEDED',
        'UNIMPLEMENTED',
        'INTERNAL',
        'UNAVAILABLE',
        'DATA_LOSS',
      ],
      interval: '5s',
      baseEjectionTime: '60s',
      maxEjectionPercent: 50,
    });
    const parsed = parseOutlierDetection(split['outlierDetection'], 'outlierDetection');
    assert.deepEqual(
      [...parsed.failureStatusCodes].sort((a, b) => a - b),
      [2, 4, 12, 13, 14, 15],
    );
    assert.equal(parsed.intervalMs, 5000);
    assert.equal(parsed.baseEjectionTimeMs, 60_000);
    assert.deepEqual(result.warnings, []);
    accepts(t, result);
  });

  test('consecutiveGatewayErrors counts UNAVAILABLE and DEADLINE_EXCEEDED (503, 504) only', (t) => {
    const { result, split } = outlier({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 3 });
    assert.deepEqual(split['outlierDetection'], {
      consecutiveFailures: 3,
      failureStatusCodes: ['DEADLINE_EXCEEDED', 'UNAVAILABLE'],
    });
    assert.deepEqual(result.warnings, []);
    accepts(t, result);
  });

  test('an empty outlierDetection is Envoy’s: 5 consecutive 5xx', () => {
    const { split } = outlier({});
    assert.deepEqual(split['outlierDetection'], {
      consecutiveFailures: 5,
      failureStatusCodes: [
        'UNKNOWN',
        'DEADLINE_EXCEEDED',
        'UNIMPLEMENTED',
        'INTERNAL',
        'UNAVAILABLE',
        'DATA_LOSS',
      ],
    });
  });

  test('the deprecated consecutiveErrors counts gateway errors only, as Istio reads it', () => {
    const { split } = outlier({ consecutiveErrors: 4 });
    assert.deepEqual(split['outlierDetection'], {
      consecutiveFailures: 4,
      failureStatusCodes: ['DEADLINE_EXCEEDED', 'UNAVAILABLE'],
    });
  });

  test('a gateway threshold at or above the 5xx one adds nothing: the 5xx rule covers it', () => {
    const { result, split } = outlier({ consecutive5xxErrors: 3, consecutiveGatewayErrors: 5 });
    assert.equal((split['outlierDetection'] as Json)['consecutiveFailures'], 3);
    assert.deepEqual(result.warnings, []);
  });

  test('a gateway threshold below the 5xx one is used, and the 5xx rule is named as not applied', () => {
    const { result, split } = outlier({ consecutive5xxErrors: 10, consecutiveGatewayErrors: 2 });
    assert.deepEqual(split['outlierDetection'], {
      consecutiveFailures: 2,
      failureStatusCodes: ['DEADLINE_EXCEEDED', 'UNAVAILABLE'],
    });
    assert.equal(result.warnings.length, 1);
    assert.match(
      result.warnings[0]!,
      /^DestinationRule prod\/hello2: trafficPolicy\.outlierDetection\.consecutive5xxErrors: ejection after 10 /,
    );
  });

  test('both thresholds 0 turn consecutive ejection off', () => {
    const { split } = outlier({ consecutive5xxErrors: 0 });
    assert.deepEqual(split['outlierDetection'], { consecutiveFailures: 0 });
  });

  test('maxEjectionPercent 0 is Istio’s "unset": the default applies', () => {
    const { split } = outlier({ maxEjectionPercent: 0 });
    assert.equal((split['outlierDetection'] as Json)['maxEjectionPercent'], undefined);
  });

  test('minHealthPercent becomes the panic threshold; with subsets, the per-host count is noted', (t) => {
    const { result, split } = outlier({ minHealthPercent: 30 }, [
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'v2', labels: { version: 'v2' } },
    ]);
    assert.equal(split['panicThreshold'], 30);
    assert.deepEqual(
      result.warnings.map((w) => w.split(': ')[1]),
      ['trafficPolicy.outlierDetection', 'trafficPolicy.outlierDetection.minHealthPercent'],
    );
    accepts(t, result);
  });

  test('minHealthPercent 0 (Istio’s default) leaves the panic threshold off', () => {
    const { split } = outlier({ minHealthPercent: 0 });
    assert.equal(split['panicThreshold'], undefined);
  });

  test('local-origin splitting is named as not applied', () => {
    const { result } = outlier({
      splitExternalLocalOriginErrors: true,
      consecutiveLocalOriginFailures: 2,
    });
    assert.deepEqual(
      result.warnings.map((w) => w.split(': ')[1]),
      [
        'trafficPolicy.outlierDetection.splitExternalLocalOriginErrors',
        'trafficPolicy.outlierDetection.consecutiveLocalOriginFailures',
      ],
    );
  });

  test('a subset’s own outlierDetection is named as not applied', () => {
    const result = translate(
      rule({
        trafficPolicy: { outlierDetection: { consecutive5xxErrors: 5 } },
        subsets: [
          {
            name: 'v1',
            labels: {},
            trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1 } },
          },
        ],
      }),
    );
    assert.deepEqual(
      result.warnings.map((w) => w.split(': ')[1]),
      ['subsets[0].trafficPolicy.outlierDetection'],
    );
  });

  test('a bad interval is an error naming the field', () => {
    assert.throws(
      () => outlier({ interval: 'soon' }),
      (e: unknown) =>
        e instanceof IstioTranslationError && e.field === 'trafficPolicy.outlierDetection.interval',
    );
  });

  test('warmupDurationSecs becomes slow start over the same window', (t) => {
    const result = translate(
      rule({
        trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN', warmupDurationSecs: '90s' } },
      }),
    );
    assert.deepEqual(splitOf(result)['slowStart'], { window: '90s' });
    accepts(t, result);
  });
});
