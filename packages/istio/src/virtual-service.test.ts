import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { IstioTranslationError } from './errors';
import { assertClientAccepts, CORE_HAS } from './testing/validate';
import { translateIstio, type IstioTranslation } from './translate';

type Json = Record<string, unknown>;

const SAY_HELLO = '/helloworld.Greeter/SayHello';

function service(spec: Json, name = 'hello2'): Json {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace: 'prod' },
    spec: { hosts: ['hello2'], ...spec },
  };
}

const RULE = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'DestinationRule',
  metadata: { name: 'hello2', namespace: 'prod' },
  spec: {
    host: 'hello2.prod.svc.cluster.local',
    subsets: ['v1', 'v2', 'v3'].map((v) => ({ name: v, labels: { version: v } })),
  },
};

function translate(...http: Json[]): IstioTranslation {
  return translateIstio({
    host: 'hello2',
    namespace: 'prod',
    virtualServices: [service({ http })],
    destinationRules: [RULE],
  });
}

function routesOf(t: IstioTranslation): Json[] {
  const lb = t.serviceConfig['loadBalancingConfig'] as Json[];
  return (lb[0]!['grpc-lb.traffic_split'] as Json)['routes'] as Json[];
}

function to(subset: string, weight?: number, host = 'hello2'): Json {
  return { destination: { host, subset }, ...(weight === undefined ? {} : { weight }) };
}

/** Warnings minus the one about calls no route matches (most tests have no catch-all route). */
function notes(t: IstioTranslation): string[] {
  return t.warnings.filter((w) => !w.includes('no route matches every call'));
}

/** The field paths the warnings name. */
function fields(t: IstioTranslation): string[] {
  return notes(t).map((w) => w.split(': ')[1]!);
}

function accepts(t: TestContext, result: IstioTranslation, needsRegex = false): void {
  if (needsRegex && !CORE_HAS.regexMatches) {
    t.diagnostic('core lacks regex matches: the config is validated once it has them');
    return;
  }
  assertClientAccepts(result.serviceConfig);
}

describe('VirtualService http routes → traffic split routes', () => {
  test('uri exact → method, prefix → prefix, regex → regex; routes keep their order', (t) => {
    const result = translate(
      { name: 'exact', match: [{ uri: { exact: SAY_HELLO } }], route: [to('v1')] },
      { name: 'prefix', match: [{ uri: { prefix: '/helloworld.Greeter/' } }], route: [to('v2')] },
      { name: 'regex', match: [{ uri: { regex: '/helloworld\\..*/Say.*' } }], route: [to('v3')] },
      { name: 'rest', route: [to('v1')] },
    );
    assert.deepEqual(routesOf(result), [
      { name: 'exact', match: { method: SAY_HELLO }, split: [{ subset: 'v1', weight: 100 }] },
      {
        name: 'prefix',
        match: { prefix: '/helloworld.Greeter/' },
        split: [{ subset: 'v2', weight: 100 }],
      },
      {
        name: 'regex',
        match: { regex: '/helloworld\\..*/Say.*' },
        split: [{ subset: 'v3', weight: 100 }],
      },
      { name: 'rest', split: [{ subset: 'v1', weight: 100 }] },
    ]);
    assert.deepEqual(result.warnings, []);
    accepts(t, result, true);
  });

  test('header matches: exact, prefix, regex, and presence; names lower-cased', (t) => {
    const result = translate({
      match: [
        {
          headers: {
            'X-Canary': { exact: '1' },
            'x-user': { prefix: 'test-' },
            'x-region': { regex: 'eu-.*' },
            'x-debug': {},
          },
        },
      ],
      route: [to('v3')],
    });
    assert.deepEqual(routesOf(result)[0]!['match'], {
      headers: [
        { name: 'x-canary', exact: '1' },
        { name: 'x-user', prefix: 'test-' },
        { name: 'x-region', regex: 'eu-.*' },
        { name: 'x-debug', present: true },
      ],
    });
    accepts(t, result, true);
  });

  test('several match blocks (OR) become one route each with the same split', (t) => {
    const result = translate({
      name: 'greet',
      match: [
        { name: 'hello', uri: { exact: SAY_HELLO } },
        { uri: { prefix: '/helloworld.Farewell/' } },
      ],
      route: [to('v1', 20), to('v2', 80)],
    });
    const split = [
      { subset: 'v1', weight: 20 },
      { subset: 'v2', weight: 80 },
    ];
    assert.deepEqual(routesOf(result), [
      { name: 'greet.hello', match: { method: SAY_HELLO }, split },
      { name: 'greet.match[1]', match: { prefix: '/helloworld.Farewell/' }, split },
    ]);
    accepts(t, result);
  });

  test('a uri exact that is not a method path can match no call: the block is left out, named', () => {
    const result = translate(
      { match: [{ uri: { exact: '/healthz' } }, { uri: { exact: SAY_HELLO } }], route: [to('v1')] },
      { route: [to('v2')] },
    );
    assert.deepEqual(routesOf(result)[0]!['match'], { method: SAY_HELLO });
    assert.deepEqual(fields(result), ['http[0].match[0].uri.exact']);
  });

  test('a destination without a subset goes to every endpoint', (t) => {
    const result = translate({ route: [{ destination: { host: 'hello2' } }] });
    assert.deepEqual(routesOf(result), [
      { name: 'http[0]', split: [{ subset: 'all-endpoints', weight: 100 }] },
    ]);
    accepts(t, result);
  });

  test('a destination on another host is named and left out; its share goes to the others', () => {
    const result = translate({
      route: [to('v1', 50), to('v1', 25, 'hello3'), to('v2', 25)],
    });
    assert.deepEqual(routesOf(result)[0]!['split'], [
      { subset: 'v1', weight: 50 },
      { subset: 'v2', weight: 25 },
    ]);
    assert.deepEqual(fields(result), ['http[0].route[1].destination.host']);
    assert.match(result.warnings[0]!, /hello3 is another host/);
  });

  test('a route whose only destination is on another host is left out, named', () => {
    const result = translate(
      {
        match: [{ uri: { exact: SAY_HELLO } }],
        route: [to('v1', 100, 'hello3.prod.svc.cluster.local')],
      },
      { route: [to('v2')] },
    );
    assert.deepEqual(routesOf(result), [
      { name: 'http[1]', split: [{ subset: 'v2', weight: 100 }] },
    ]);
    assert.deepEqual(fields(result), ['http[0].route[0].destination.host', 'http[0].route']);
  });

  test('a subset no DestinationRule defines is named and left out', () => {
    const result = translate({ route: [to('v1', 90), to('v9', 10)] });
    assert.deepEqual(routesOf(result)[0]!['split'], [{ subset: 'v1', weight: 90 }]);
    assert.deepEqual(fields(result), ['http[0].route[1].destination.subset']);
  });

  test('several destinations without weights are an error: every weight is 0', () => {
    assert.throws(
      () => translate({ route: [to('v1'), to('v2')] }),
      (e: unknown) => e instanceof IstioTranslationError && e.field === 'http[0].route',
    );
  });

  test('a weight that is not a number is an error naming the field', () => {
    assert.throws(
      () => translate({ route: [{ destination: { host: 'hello2', subset: 'v1' }, weight: '30' }] }),
      (e: unknown) =>
        e instanceof IstioTranslationError &&
        e.code === 'BAD_RESOURCE' &&
        e.resource === 'VirtualService prod/hello2' &&
        e.field === 'http[0].route[0].weight',
    );
  });

  test('no route matching every call is noted', () => {
    const result = translate({ match: [{ uri: { exact: SAY_HELLO } }], route: [to('v1')] });
    assert.deepEqual(
      result.warnings.map((w) => w.split(': ')[1]),
      ['http'],
    );
  });
});

describe('VirtualService fields not carried over', () => {
  const cases: [string, Json, string][] = [
    [
      'fault',
      { fault: { abort: { httpStatus: 503, percentage: { value: 10 } } } },
      'http[0].fault',
    ],
    [
      'mirror',
      { mirror: { host: 'hello2', subset: 'v3' }, mirrorPercentage: { value: 5 } },
      'http[0].mirror',
    ],
    ['rewrite', { rewrite: { uri: '/other.Service/Method' } }, 'http[0].rewrite'],
    ['headers', { headers: { request: { set: { 'x-a': 'b' } } } }, 'http[0].headers'],
    ['corsPolicy', { corsPolicy: { allowOrigins: [{ exact: 'x' }] } }, 'http[0].corsPolicy'],
  ];
  for (const [what, extra, field] of cases) {
    test(`${what} is named and the route still applies`, () => {
      const result = translate({ route: [to('v1')], ...extra });
      assert.ok(fields(result).includes(field), fields(result).join(', '));
      assert.equal(routesOf(result).length, 1);
    });
  }

  test('fault injection is named as the design example words it', () => {
    const result = translate({ route: [to('v1')], fault: { delay: { fixedDelay: '1s' } } });
    assert.ok(
      result.warnings.includes(
        'VirtualService prod/hello2: http[0].fault: fault injection is not applied by the client',
      ),
    );
  });

  for (const key of ['redirect', 'directResponse', 'delegate']) {
    test(`a ${key} route is named and left out; later routes still apply`, () => {
      const result = translate(
        { match: [{ uri: { prefix: '/a.B/' } }], [key]: { uri: '/x' } },
        { route: [to('v1')] },
      );
      assert.deepEqual(routesOf(result), [
        { name: 'http[1]', split: [{ subset: 'v1', weight: 100 }] },
      ]);
      assert.deepEqual(fields(result), [`http[0].${key}`]);
    });
  }

  test('match conditions on the client or the request line are named: sourceLabels, gateways, authority, method, port', () => {
    const result = translate({
      match: [
        {
          uri: { exact: SAY_HELLO },
          sourceLabels: { app: 'hello1' },
          gateways: ['mesh'],
          authority: { exact: 'hello2' },
          method: { exact: 'POST' },
          port: 7001,
          queryParams: { a: { exact: 'b' } },
          ignoreUriCase: true,
        },
      ],
      route: [to('v1')],
    });
    assert.deepEqual(fields(result), [
      'http[0].match[0].sourceLabels',
      'http[0].match[0].gateways',
      'http[0].match[0].authority',
      'http[0].match[0].method',
      'http[0].match[0].port',
      'http[0].match[0].queryParams',
      'http[0].match[0].ignoreUriCase',
    ]);
    assert.deepEqual(routesOf(result)[0]!['match'], { method: SAY_HELLO });
  });

  test('a destination port and tcp routes are named', () => {
    const result = translateIstio({
      host: 'hello2',
      namespace: 'prod',
      virtualServices: [
        service({
          http: [
            { route: [{ destination: { host: 'hello2', subset: 'v1', port: { number: 7001 } } }] },
          ],
          tcp: [{ route: [{ destination: { host: 'hello2' } }] }],
        }),
      ],
      destinationRules: [RULE],
    });
    assert.deepEqual(fields(result), ['tcp', 'http[0].route[0].destination.port']);
  });

  test('a VirtualService bound to gateways only does not apply to mesh clients: named, not used', () => {
    const result = translateIstio({
      host: 'hello2',
      namespace: 'prod',
      virtualServices: [
        service({ gateways: ['istio-system/ingress'], http: [{ route: [to('v1')] }] }),
      ],
      destinationRules: [RULE],
    });
    assert.deepEqual(result.used, ['DestinationRule prod/hello2']);
    assert.deepEqual(fields(result), ['gateways']);
  });

  test('a second VirtualService for the host is named and not used', () => {
    const result = translateIstio({
      host: 'hello2',
      namespace: 'prod',
      virtualServices: [
        service({ http: [{ route: [to('v1')] }] }),
        service({ http: [{ route: [to('v2')] }] }, 'hello2-b'),
      ],
      destinationRules: [RULE],
    });
    assert.deepEqual(result.used, ['VirtualService prod/hello2', 'DestinationRule prod/hello2']);
    assert.deepEqual(result.warnings, [
      'VirtualService prod/hello2-b: hosts: VirtualService prod/hello2 is already used for hello2.prod.svc.cluster.local: ' +
        'one VirtualService per host applies to mesh clients; not used',
    ]);
  });

  test('a VirtualService for the host with no http routes is an error naming it', () => {
    assert.throws(
      () =>
        translateIstio({
          host: 'hello2',
          namespace: 'prod',
          virtualServices: [service({ tcp: [{ route: [{ destination: { host: 'hello2' } }] }] })],
          destinationRules: [RULE],
        }),
      (e: unknown) =>
        e instanceof IstioTranslationError &&
        e.code === 'UNUSABLE_RESOURCE' &&
        e.resource === 'VirtualService prod/hello2' &&
        e.field === 'http',
    );
  });

  test('a VirtualService whose every route is left out is an error giving the reasons', () => {
    assert.throws(
      () =>
        translate({ redirect: { uri: '/x' } }, { route: [to('v1', 100, 'elsewhere.example.com')] }),
      (e: unknown) =>
        e instanceof IstioTranslationError &&
        e.code === 'UNUSABLE_RESOURCE' &&
        e.message.startsWith('VirtualService prod/hello2: http: no http route can be used (') &&
        e.message.includes('http[0].redirect') &&
        e.message.includes('http[1].route[0].destination.host'),
    );
  });
});

describe('timeouts and retries → methodConfig', () => {
  test('a route per method gets its own timeout and retry policy, with gRPC status names', (t) => {
    const result = translate(
      {
        match: [{ uri: { exact: SAY_HELLO } }],
        route: [to('v1')],
        timeout: '2.5s',
        retries: {
          attempts: 3,
          retryOn: 'unavailable,cancelled,resource-exhausted,deadline-exceeded',
        },
      },
      { match: [{ uri: { prefix: '/helloworld.Greeter/' } }], route: [to('v2')], timeout: '10s' },
      { route: [to('v3')], timeout: '30s' },
    );
    assert.deepEqual(result.serviceConfig['methodConfig'], [
      {
        name: [{ service: 'helloworld.Greeter', method: 'SayHello' }],
        timeout: '2.5s',
        retryPolicy: {
          maxAttempts: 4,
          initialBackoff: '0.025s',
          maxBackoff: '0.25s',
          backoffMultiplier: 2,
          retryableStatusCodes: [
            'UNAVAILABLE',
            'CANCELLED',
            'RESOURCE_EXHAUSTED',
            'DEADLINE_EXCEEDED',
          ],
        },
      },
      { name: [{ service: 'helloworld.Greeter' }], timeout: '10s' },
      { name: [{}], timeout: '30s' },
    ]);
    assert.deepEqual(result.warnings, []);
    accepts(t, result);
  });

  test('Go-style durations are written as gRPC ones', () => {
    const result = translate(
      { route: [to('v1')], timeout: '1m30s' },
      { route: [to('v2')], timeout: '250ms' },
    );
    assert.equal((result.serviceConfig['methodConfig'] as Json[])[0]!['timeout'], '90s');
  });

  test('a timeout of 0s is Istio’s "no timeout": no method config', () => {
    const result = translate({ route: [to('v1')], timeout: '0s' });
    assert.equal(result.serviceConfig['methodConfig'], undefined);
  });

  test('retries without retryOn retry what Istio retries by default: UNAVAILABLE and CANCELLED', (t) => {
    const result = translate({ route: [to('v1')], retries: { attempts: 2 } });
    const policy = (result.serviceConfig['methodConfig'] as Json[])[0]!['retryPolicy'] as Json;
    assert.deepEqual(policy['retryableStatusCodes'], ['UNAVAILABLE', 'CANCELLED']);
    assert.equal(policy['maxAttempts'], 3);
    assert.deepEqual(result.warnings, []);
    accepts(t, result);
  });

  test('connection conditions retry UNAVAILABLE, named; HTTP-only ones are named and dropped', (t) => {
    const result = translate({
      route: [to('v1')],
      retries: {
        attempts: 1,
        retryOn: 'connect-failure,5xx,retriable-4xx,envoy-ratelimited,internal',
      },
    });
    const policy = (result.serviceConfig['methodConfig'] as Json[])[0]!['retryPolicy'] as Json;
    assert.deepEqual(policy['retryableStatusCodes'], ['UNAVAILABLE', 'INTERNAL']);
    assert.equal(result.warnings.length, 2);
    assert.match(
      result.warnings[0]!,
      /^VirtualService prod\/hello2: http\[0\]\.retries\.retryOn: connect-failure, 5xx: /,
    );
    assert.match(
      result.warnings[1]!,
      /^VirtualService prod\/hello2: http\[0\]\.retries\.retryOn: retriable-4xx, envoy-ratelimited: HTTP-only retry conditions/,
    );
    accepts(t, result);
  });

  test('retryOn with only HTTP conditions gives no retry policy, named', () => {
    const result = translate({
      route: [to('v1')],
      retries: { attempts: 2, retryOn: 'retriable-4xx' },
    });
    assert.equal(result.serviceConfig['methodConfig'], undefined);
    assert.deepEqual(fields(result), ['http[0].retries.retryOn', 'http[0].retries.retryOn']);
  });

  test('perTryTimeout is named; more than 4 retries are capped at gRPC’s 5 attempts, named', (t) => {
    const result = translate({
      route: [to('v1')],
      retries: { attempts: 10, perTryTimeout: '1s', retryOn: 'unavailable' },
    });
    const policy = (result.serviceConfig['methodConfig'] as Json[])[0]!['retryPolicy'] as Json;
    assert.equal(policy['maxAttempts'], 5);
    assert.deepEqual(fields(result), ['http[0].retries.perTryTimeout', 'http[0].retries.attempts']);
    accepts(t, result);
  });

  test('attempts 0 turns retries off', () => {
    const result = translate({ route: [to('v1')], retries: { attempts: 0 } });
    assert.equal(result.serviceConfig['methodConfig'], undefined);
  });

  test('a header route’s timeout cannot be scoped by method: named, and not given to other calls', (t) => {
    const result = translate(
      {
        match: [{ uri: { exact: SAY_HELLO }, headers: { 'x-canary': { exact: '1' } } }],
        route: [to('v3')],
        timeout: '1s',
      },
      { route: [to('v1')], timeout: '5s' },
    );
    assert.deepEqual(result.serviceConfig['methodConfig'], [{ name: [{}], timeout: '5s' }]);
    assert.deepEqual(fields(result), ['http[0].match[0]']);
    assert.match(
      result.warnings[0]!,
      /timeout cannot be limited to the calls this match block selects \(it matches on headers/,
    );
    accepts(t, result);
  });

  test('a method matched earlier by a route without settings keeps no settings from a later, broader route', (t) => {
    const result = translate(
      { match: [{ uri: { exact: SAY_HELLO } }], route: [to('v1')] },
      { match: [{ uri: { prefix: '/helloworld.Greeter/' } }], route: [to('v2')], timeout: '3s' },
    );
    assert.deepEqual(result.serviceConfig['methodConfig'], [
      { name: [{ service: 'helloworld.Greeter', method: 'SayHello' }] },
      { name: [{ service: 'helloworld.Greeter' }], timeout: '3s' },
    ]);
    accepts(t, result);
  });

  test('a method shadowed by an earlier, broader route gets the earlier route’s settings', (t) => {
    const result = translate(
      { match: [{ uri: { prefix: '/helloworld.Greeter/' } }], route: [to('v2')], timeout: '3s' },
      { match: [{ uri: { exact: SAY_HELLO } }], route: [to('v1')], timeout: '1s' },
    );
    assert.deepEqual(result.serviceConfig['methodConfig'], [
      { name: [{ service: 'helloworld.Greeter' }], timeout: '3s' },
    ]);
    accepts(t, result);
  });

  test('a method-name prefix scopes settings to that method, named', (t) => {
    const result = translate({
      match: [{ uri: { prefix: SAY_HELLO } }],
      route: [to('v1')],
      timeout: '2s',
    });
    assert.deepEqual(result.serviceConfig['methodConfig'], [
      { name: [{ service: 'helloworld.Greeter', method: 'SayHello' }], timeout: '2s' },
    ]);
    assert.deepEqual(fields(result), ['http[0].match[0]']);
    accepts(t, result);
  });

  test('a package prefix or a regex cannot scope settings: named, no method config', () => {
    const result = translate(
      { match: [{ uri: { prefix: '/helloworld.' } }], route: [to('v1')], timeout: '2s' },
      { match: [{ uri: { regex: '/.*/Say.*' } }], route: [to('v2')], retries: { attempts: 1 } },
    );
    assert.equal(result.serviceConfig['methodConfig'], undefined);
    assert.deepEqual(fields(result), ['http[0].match[0]', 'http[1].match[0]']);
  });

  test('several match blocks share one method config with every name they cover', (t) => {
    const result = translate({
      match: [{ uri: { exact: SAY_HELLO } }, { uri: { prefix: '/helloworld.Farewell/' } }],
      route: [to('v1')],
      timeout: '4s',
    });
    assert.deepEqual(result.serviceConfig['methodConfig'], [
      {
        name: [
          { service: 'helloworld.Greeter', method: 'SayHello' },
          { service: 'helloworld.Farewell' },
        ],
        timeout: '4s',
      },
    ]);
    accepts(t, result);
  });
});
