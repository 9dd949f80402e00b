import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseTrafficSplitConfig } from '@grpc-lb/core';
import { IstioTranslationError } from './errors';
import { parseIstioYaml } from './parse-yaml';
import { HELLO2_DESTINATION_RULE, HELLO2_VIRTUAL_SERVICE } from './testing/hello2';
import { assertClientAccepts } from './testing/validate';
import { translateIstio, type IstioTranslation } from './translate';

type Json = Record<string, unknown>;

/** The traffic split body of a translation. */
function splitOf(t: IstioTranslation): Json {
  const lb = t.serviceConfig['loadBalancingConfig'] as Json[];
  assert.equal(lb.length, 1);
  return lb[0]!['grpc-lb.traffic_split'] as Json;
}

function vs(spec: Json, name = 'hello2', namespace = 'prod'): Json {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace },
    spec,
  };
}

function dr(spec: Json, name = 'hello2', namespace = 'prod'): Json {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name, namespace },
    spec,
  };
}

const SUBSETS = [
  { name: 'v1', labels: { version: 'v1' } },
  { name: 'v2', labels: { version: 'v2' } },
  { name: 'v3', labels: { version: 'v3' } },
];

function dest(subset: string, weight?: number, host = 'hello2'): Json {
  return { destination: { host, subset }, ...(weight === undefined ? {} : { weight }) };
}

function translate(
  virtualServices: Json[],
  destinationRules: Json[] = [dr({ host: 'hello2', subsets: SUBSETS })],
) {
  return translateIstio({ host: 'hello2', namespace: 'prod', virtualServices, destinationRules });
}

describe('the hello2 walk-through: VirtualService and DestinationRule', () => {
  const vsDocs = parseIstioYaml(HELLO2_VIRTUAL_SERVICE, 'hello2-vs.yaml');
  const drDocs = parseIstioYaml(HELLO2_DESTINATION_RULE, 'hello2-dr.yaml');
  const t = translateIstio({
    host: 'hello2-svc',
    namespace: 'grpc-reciprocal-hello',
    virtualServices: vsDocs.virtualServices,
    destinationRules: drDocs.destinationRules,
  });

  test('sends SayHello 30/60/10 to subsets v1/v2/v3 selected by the version label', () => {
    const { limits: _limits, ...split } = splitOf(t);
    const parsed = parseTrafficSplitConfig(split);
    assert.deepEqual(
      parsed.subsets.map((s) => [s.name, s.labels]),
      [
        ['v1', { version: 'v1' }],
        ['v2', { version: 'v2' }],
        ['v3', { version: 'v3' }],
      ],
    );
    assert.equal(parsed.routes.length, 1);
    const route = parsed.routes[0]!;
    assert.equal(route.name, 'grpc-hello-route');
    assert.deepEqual(route.match, { prefix: '/org.feuyeux.grpc.Greeter/SayHello', headers: [] });
    assert.deepEqual(route.split, [
      { subset: 'v1', weight: 30 },
      { subset: 'v2', weight: 60 },
      { subset: 'v3', weight: 10 },
    ]);
  });

  test('is accepted by the client as a service config', () => {
    assertClientAccepts(t.serviceConfig);
    assert.equal(t.serviceConfig['methodConfig'], undefined);
  });

  test('names both resources as used', () => {
    assert.deepEqual(t.used, [
      'VirtualService grpc-reciprocal-hello/hello2-vs',
      'DestinationRule grpc-reciprocal-hello/hello2-dr',
    ]);
  });

  test('limits calls from http2MaxRequests and http1MaxPendingRequests', () => {
    assert.deepEqual(splitOf(t)['limits'], { maxPending: 20, maxRequests: 100 });
  });

  test('warns about the other connection pool fields by name, and about calls no route matches', () => {
    assert.deepEqual(t.warnings, [
      'DestinationRule grpc-reciprocal-hello/hello2-dr: trafficPolicy.connectionPool: connection pool settings are not applied ' +
        '(http.maxRequestsPerConnection, http.maxRetries, tcp.connectTimeout, tcp.maxConnections): a channel keeps one ' +
        'HTTP/2 connection per endpoint (maxRequestsPerConnection is how many calls a connection carries in its life, not at once)',
      'DestinationRule grpc-reciprocal-hello/hello2-dr: trafficPolicy.connectionPool: limits count the calls to every endpoint ' +
        'of the host together, where Istio counts per subset',
      'VirtualService grpc-reciprocal-hello/hello2-vs: http: no route matches every call: a call that matches none goes ' +
        'to every endpoint of hello2-svc.grpc-reciprocal-hello.svc.cluster.local, round robin ' +
        '(Istio answers it with HTTP 404, which a gRPC client sees as UNIMPLEMENTED)',
    ]);
  });
});

describe('host matching', () => {
  const route = { http: [{ route: [dest('v1')] }] };
  const forms: [string, string | undefined, string, string][] = [
    ['hello2', 'prod', 'hello2', 'hello2'],
    ['hello2.prod', undefined, 'hello2', 'hello2'],
    ['hello2.prod.svc.cluster.local', undefined, 'hello2.prod', 'hello2.prod.svc.cluster.local'],
    ['hello2', 'prod', 'hello2.prod.svc.cluster.local', 'hello2.prod'],
    ['hello2.prod.svc.cluster.local', 'prod', 'hello2.prod.svc', 'hello2'],
    ['hello2', undefined, 'hello2', 'hello2'],
  ];
  for (const [host, namespace, vsHost, drHost] of forms) {
    test(`client host ${host}${namespace ? ` in ${namespace}` : ''} takes VirtualService host ${vsHost} and DestinationRule host ${drHost}`, () => {
      const t = translateIstio({
        host,
        ...(namespace === undefined ? {} : { namespace }),
        virtualServices: [vs({ hosts: [vsHost], ...route })],
        destinationRules: [dr({ host: drHost, subsets: SUBSETS })],
      });
      assert.deepEqual(t.used, ['VirtualService prod/hello2', 'DestinationRule prod/hello2']);
    });
  }

  test('a wildcard VirtualService host covers the service', () => {
    const t = translate([vs({ hosts: ['*.prod.svc.cluster.local'], ...route })]);
    assert.deepEqual(t.used, ['VirtualService prod/hello2', 'DestinationRule prod/hello2']);
  });

  test('a short host in another namespace is another service: the resource is not used, with a warning', () => {
    const t = translate(
      [
        vs({ hosts: ['hello2'], ...route }),
        vs({ hosts: ['hello2'], ...route }, 'other', 'staging'),
      ],
      [
        dr({ host: 'hello2', subsets: SUBSETS }),
        dr({ host: 'hello2', subsets: SUBSETS }, 'other', 'staging'),
      ],
    );
    assert.deepEqual(t.used, ['VirtualService prod/hello2', 'DestinationRule prod/hello2']);
    assert.ok(
      t.warnings.includes(
        'DestinationRule staging/other: host: hello2.staging.svc.cluster.local is not hello2.prod.svc.cluster.local: not used',
      ),
    );
    assert.ok(
      t.warnings.includes(
        'VirtualService staging/other: hosts: hello2.staging.svc.cluster.local does not include hello2.prod.svc.cluster.local: not used',
      ),
    );
  });

  test('a resource whose host is not a host name is named and not used; the others still apply', () => {
    const t = translate([
      vs({ hosts: ['hello_2'], ...route }, 'bad'),
      vs({ hosts: ['hello2'], ...route }),
    ]);
    assert.deepEqual(t.used, ['VirtualService prod/hello2', 'DestinationRule prod/hello2']);
    assert.ok(
      t.warnings.includes(
        'VirtualService prod/bad: hosts[0]: "hello_2" is not a host name: it names no service',
      ),
    );
  });

  test('a resource that is not an object is an error naming its kind', () => {
    assert.throws(
      () =>
        translateIstio({
          host: 'hello2',
          virtualServices: [null as unknown as object],
          destinationRules: [],
        }),
      (e: unknown) =>
        e instanceof IstioTranslationError && e.resource === 'VirtualService (unnamed)',
    );
  });

  test('a host and a namespace that disagree are an error naming both', () => {
    assert.throws(
      () =>
        translateIstio({
          host: 'hello2.prod',
          namespace: 'staging',
          virtualServices: [],
          destinationRules: [],
        }),
      (e: unknown) =>
        e instanceof IstioTranslationError &&
        e.code === 'BAD_HOST' &&
        /prod.*staging/.test(e.message),
    );
  });

  test('no resource for the host is an error naming the host', () => {
    assert.throws(
      () =>
        translateIstio({
          host: 'hello3',
          namespace: 'prod',
          virtualServices: [vs({ hosts: ['hello2'], ...route })],
          destinationRules: [],
        }),
      (e: unknown) =>
        e instanceof IstioTranslationError &&
        e.code === 'NO_RESOURCE_FOR_HOST' &&
        e.message.includes(
          'no VirtualService or DestinationRule applies to hello3.prod.svc.cluster.local',
        ),
    );
  });

  test('exportTo limited to its own namespace is noted with the namespace that sees it', () => {
    const t = translate([vs({ hosts: ['hello2'], exportTo: ['.'], ...route })]);
    assert.ok(
      t.warnings.includes(
        'VirtualService prod/hello2: exportTo: Istio applies it only to clients in prod; here it applies to every client given this config',
      ),
    );
  });

  test('exportTo "~" is noted as hiding it from every client', () => {
    const t = translate([], [dr({ host: 'hello2', subsets: SUBSETS, exportTo: ['~'] })]);
    assert.ok(
      t.warnings.includes(
        'DestinationRule prod/hello2: exportTo: exported to no namespace: Istio applies it to no client; it is translated all the same',
      ),
    );
  });

  test('exportTo "*" needs no note', () => {
    const t = translate([vs({ hosts: ['hello2'], exportTo: ['*'], ...route })]);
    assert.ok(!t.warnings.some((w) => w.includes('exportTo')));
  });
});

describe('warnings', () => {
  test('every warning names its resource and a field path in it', () => {
    const result = translateIstio({
      host: 'hello2',
      namespace: 'prod',
      virtualServices: [
        vs({
          hosts: ['hello2'],
          exportTo: ['.'],
          tcp: [{ route: [{ destination: { host: 'hello2' } }] }],
          http: [
            {
              match: [
                { uri: { exact: '/healthz' } },
                {
                  uri: { regex: '/a\\..*' },
                  sourceLabels: { app: 'x' },
                  headers: { ':authority': { exact: 'a' } },
                },
              ],
              route: [dest('v1', 50), dest('v9', 25), dest('v2', 25, 'hello3')],
              timeout: '1s',
              retries: { attempts: 9, perTryTimeout: '1s', retryOn: 'reset,retriable-4xx' },
              fault: { abort: { httpStatus: 500 } },
              mirror: { host: 'hello2' },
              rewrite: { uri: '/b' },
              headers: { request: { add: { a: 'b' } } },
              corsPolicy: {},
            },
            { redirect: { uri: '/c' } },
            { delegate: { name: 'other' } },
          ],
        }),
        vs({ hosts: ['hello4'], http: [] }, 'hello4'),
      ],
      destinationRules: [
        dr({
          host: 'hello2',
          workloadSelector: { matchLabels: { app: 'hello1' } },
          subsets: [...SUBSETS, { name: 'v1', labels: {} }],
          trafficPolicy: {
            loadBalancer: { simple: 'PASSTHROUGH', localityLbSetting: { enabled: true } },
            connectionPool: { tcp: { maxConnections: 1 } },
            outlierDetection: {
              consecutive5xxErrors: 9,
              consecutiveGatewayErrors: 1,
              minHealthPercent: 50,
              splitExternalLocalOriginErrors: true,
            },
            tls: { mode: 'ISTIO_MUTUAL' },
            portLevelSettings: [],
          },
        }),
      ],
    });
    assert.ok(result.warnings.length >= 20, `${result.warnings.length} warnings`);
    for (const warning of result.warnings) {
      assert.match(
        warning,
        /^(VirtualService|DestinationRule) prod\/hello\d: [a-zA-Z][\w.[\]:-]*: \S/,
        warning,
      );
    }
  });
});
