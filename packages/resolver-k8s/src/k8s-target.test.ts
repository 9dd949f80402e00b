import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseTargetUri, TargetError, type TargetUri } from '@grpc-lb/core';
import { parseK8sTarget, type K8sPortSelector } from './k8s-target';

function parse(target: string) {
  return parseK8sTarget(parseTargetUri(target), target);
}

describe('parseK8sTarget accepts', () => {
  const table: [
    string,
    {
      service: string;
      namespace: string | undefined;
      port: K8sPortSelector;
      authority: string;
    },
  ][] = [
    [
      'k8s:///svc:grpc',
      {
        service: 'svc',
        namespace: undefined,
        port: { kind: 'name', value: 'grpc' },
        authority: 'svc',
      },
    ],
    [
      'k8s:///svc.ns:50051',
      {
        service: 'svc',
        namespace: 'ns',
        port: { kind: 'number', value: 50051 },
        authority: 'svc.ns:50051',
      },
    ],
    [
      'k8s:///svc.ns.svc.cluster.local:grpc',
      {
        service: 'svc',
        namespace: 'ns',
        port: { kind: 'name', value: 'grpc' },
        authority: 'svc.ns.svc.cluster.local',
      },
    ],
    [
      'k8s:///svc.ns.svc:80',
      {
        service: 'svc',
        namespace: 'ns',
        port: { kind: 'number', value: 80 },
        authority: 'svc.ns.svc:80',
      },
    ],
    [
      'k8s://ns/svc:grpc',
      {
        service: 'svc',
        namespace: 'ns',
        port: { kind: 'name', value: 'grpc' },
        authority: 'svc.ns',
      },
    ],
    [
      'k8s://ns/svc:8080',
      {
        service: 'svc',
        namespace: 'ns',
        port: { kind: 'number', value: 8080 },
        authority: 'svc.ns:8080',
      },
    ],
    [
      // The same namespace twice is not a conflict.
      'k8s://ns/svc.ns:grpc',
      {
        service: 'svc',
        namespace: 'ns',
        port: { kind: 'name', value: 'grpc' },
        authority: 'svc.ns',
      },
    ],
    [
      'k8s:///svc',
      { service: 'svc', namespace: undefined, port: { kind: 'only' }, authority: 'svc' },
    ],
    [
      'kubernetes:///hello.prod',
      { service: 'hello', namespace: 'prod', port: { kind: 'only' }, authority: 'hello.prod' },
    ],
    [
      'k8s://prod/hello',
      { service: 'hello', namespace: 'prod', port: { kind: 'only' }, authority: 'hello.prod' },
    ],
    [
      // No //authority/ at all.
      'k8s:hello.prod:grpc',
      {
        service: 'hello',
        namespace: 'prod',
        port: { kind: 'name', value: 'grpc' },
        authority: 'hello.prod',
      },
    ],
    [
      'k8s:///my-svc-2.team-a:http-2',
      {
        service: 'my-svc-2',
        namespace: 'team-a',
        port: { kind: 'name', value: 'http-2' },
        authority: 'my-svc-2.team-a',
      },
    ],
    [
      'k8s:///a:1',
      { service: 'a', namespace: undefined, port: { kind: 'number', value: 1 }, authority: 'a:1' },
    ],
    [
      'k8s:///a:65535',
      {
        service: 'a',
        namespace: undefined,
        port: { kind: 'number', value: 65535 },
        authority: 'a:65535',
      },
    ],
    [
      // A namespace may start with a digit (a DNS label); a Service may not.
      'k8s:///a.0ns:grpc',
      {
        service: 'a',
        namespace: '0ns',
        port: { kind: 'name', value: 'grpc' },
        authority: 'a.0ns',
      },
    ],
    [
      // 63 characters: the longest Service name and namespace.
      `k8s:///${'s'.repeat(63)}.${'n'.repeat(63)}:${'p'.repeat(15)}`,
      {
        service: 's'.repeat(63),
        namespace: 'n'.repeat(63),
        port: { kind: 'name', value: 'p'.repeat(15) },
        authority: `${'s'.repeat(63)}.${'n'.repeat(63)}`,
      },
    ],
  ];
  for (const [target, expected] of table) {
    test(target.length > 60 ? `${target.slice(0, 60)}…` : target, () => {
      const parsed = parse(target);
      assert.deepEqual(parsed, { original: target, ...expected });
    });
  }

  test('a TargetUri built by hand, as grpc-js splits it', () => {
    const uri: TargetUri = { scheme: 'k8s', authority: 'prod', path: 'hello:50051' };
    assert.deepEqual(parseK8sTarget(uri, 'k8s://prod/hello:50051'), {
      original: 'k8s://prod/hello:50051',
      service: 'hello',
      namespace: 'prod',
      port: { kind: 'number', value: 50051 },
      authority: 'hello.prod:50051',
    });
    // A leading "/" left on the path is dropped.
    const slash: TargetUri = { scheme: 'k8s', authority: '', path: '/hello:grpc' };
    assert.equal(parseK8sTarget(slash, 'k8s:////hello:grpc').service, 'hello');
  });
});

describe("parseK8sTarget accepts every form kuberesolver's README documents", () => {
  const n = (value: number): K8sPortSelector => ({ kind: 'number', value });
  const name = (value: string): K8sPortSelector => ({ kind: 'name', value });
  const only: K8sPortSelector = { kind: 'only' };
  const table: [string, string, string | undefined, K8sPortSelector, string][] = [
    // target, service, namespace, port, default authority
    ['kubernetes:///service-name:8080', 'service-name', undefined, n(8080), 'service-name:8080'],
    [
      'kubernetes:///service-name:portname',
      'service-name',
      undefined,
      name('portname'),
      'service-name',
    ],
    [
      'kubernetes:///service-name.namespace:8080',
      'service-name',
      'namespace',
      n(8080),
      'service-name.namespace:8080',
    ],
    [
      'kubernetes:///service-name.namespace.svc.cluster_name',
      'service-name',
      'namespace',
      only,
      'service-name.namespace.svc.cluster_name',
    ],
    [
      'kubernetes:///service-name.namespace.svc.cluster_name:8080',
      'service-name',
      'namespace',
      n(8080),
      'service-name.namespace.svc.cluster_name:8080',
    ],
    [
      'kubernetes://namespace/service-name:8080',
      'service-name',
      'namespace',
      n(8080),
      'service-name.namespace:8080',
    ],
    ['kubernetes://service-name:8080/', 'service-name', undefined, n(8080), 'service-name:8080'],
    [
      'kubernetes://service-name.namespace:8080/',
      'service-name',
      'namespace',
      n(8080),
      'service-name.namespace:8080',
    ],
    [
      'kubernetes://service-name.namespace.svc.cluster_name',
      'service-name',
      'namespace',
      only,
      'service-name.namespace.svc.cluster_name',
    ],
    [
      'kubernetes://service-name.namespace.svc.cluster_name:8080',
      'service-name',
      'namespace',
      n(8080),
      'service-name.namespace.svc.cluster_name:8080',
    ],
    // kuberesolver's own parser tests.
    ['kubernetes://a:30', 'a', undefined, n(30), 'a:30'],
    ['kubernetes://a/', 'a', undefined, only, 'a'],
    ['kubernetes:///a', 'a', undefined, only, 'a'],
    ['kubernetes://a/b', 'b', 'a', only, 'b.a'],
    ['kubernetes://a.b/', 'a', 'b', only, 'a.b'],
    ['kubernetes:///a.b:80', 'a', 'b', n(80), 'a.b:80'],
    ['kubernetes:///a.b:port', 'a', 'b', name('port'), 'a.b'],
    ['kubernetes:///a:port', 'a', undefined, name('port'), 'a'],
    ['kubernetes://x/a:port', 'a', 'x', name('port'), 'a.x'],
    ['kubernetes://a.x:30/', 'a', 'x', n(30), 'a.x:30'],
    ['kubernetes://a.b.svc.cluster.local', 'a', 'b', only, 'a.b.svc.cluster.local'],
    ['kubernetes://a.b.svc.cluster.local:80', 'a', 'b', n(80), 'a.b.svc.cluster.local:80'],
    ['kubernetes:///a.b.svc.cluster.local', 'a', 'b', only, 'a.b.svc.cluster.local'],
    ['kubernetes:///a.b.svc.cluster.local:80', 'a', 'b', n(80), 'a.b.svc.cluster.local:80'],
    ['kubernetes:///a.b.svc.cluster.local:port', 'a', 'b', name('port'), 'a.b.svc.cluster.local'],
    ['kubernetes:a.b', 'a', 'b', only, 'a.b'],
  ];
  for (const [target, service, namespace, port, authority] of table) {
    test(target, () => {
      assert.deepEqual(parse(target), { original: target, service, namespace, port, authority });
    });
  }

  for (const [target, message] of [
    ['kubernetes:///', /expected k8s:\/\/\/<service>/],
    ['kubernetes://', /expected|scheme/],
    ['kubernetes://a.b:80/extra/', /expected k8s:\/\/\/<service>/],
    ['kubernetes://u:s3cr3t@a.b:80/', /credentials do not belong/],
    ['kubernetes://s3cr3t@a.b.svc.cluster.local', /credentials do not belong/],
  ] as const) {
    test(`rejects ${target.replace('s3cr3t', '…')}`, () => {
      assert.throws(
        () => parse(target),
        (error: unknown) =>
          error instanceof TargetError &&
          message.test(error.message) &&
          !error.message.includes('s3cr3t'),
      );
    });
  }
});

describe('parseK8sTarget rejects', () => {
  const errors: [string, RegExp][] = [
    ['k8s:///Hello:grpc', /"Hello" is not a Service name/],
    ['k8s:///1svc:grpc', /"1svc" is not a Service name .*starting with a letter/],
    ['k8s:///svc-:grpc', /"svc-" is not a Service name/],
    ['k8s:///my_svc:grpc', /"my_svc" is not a Service name/],
    [`k8s:///${'s'.repeat(64)}:grpc`, /"s{64}" is not a Service name .*at most 63/],
    ['k8s:///.ns:grpc', /"" is not a Service name/],
    ['k8s:///svc.Prod:grpc', /"Prod" is not a namespace name/],
    [`k8s:///svc.${'n'.repeat(64)}:grpc`, /"n{64}" is not a namespace name .*at most 63/],
    ['k8s://Prod/svc:grpc', /"Prod" is not a namespace name/],
    ['k8s://ns:443/svc:grpc', /"ns:443" is not a namespace name/],
    ['k8s:///svc:0', /port 0 is out of range 1–65535/],
    ['k8s:///svc:65536', /port 65536 is out of range 1–65535/],
    ['k8s:///svc:99999999999999999999', /port 99999999999999999999 is out of range/],
    // The parser's own 'the port after ":" is empty' check is never reached: the port is
    // parsed first (see the report); either message names the port.
    ['k8s:///svc:', /"" is neither a port number nor a port name|the port after ":" is empty/],
    ['k8s:///svc:GRPC', /"GRPC" is neither a port number nor a port name/],
    ['k8s:///svc:grpc-', /"grpc-" is neither a port number nor a port name/],
    ['k8s:///svc:my_port', /"my_port" is neither a port number nor a port name/],
    ['k8s:///svc:-1', /"-1" is neither a port number nor a port name/],
    [`k8s:///svc:${'p'.repeat(16)}`, /"p{16}" is neither a port number nor a port name/],
    ['k8s:///svc:grpc:50051', /"svc:grpc" is not a Service name/],
    ['k8s://a/svc.b:grpc', /two namespaces: "a" as the authority and "b" in the host/],
    ['k8s:///svc.ns.cluster:grpc', /"svc.ns.cluster" is not <service>.<namespace>/],
    ['k8s:///ns/svc:grpc', /expected k8s:\/\/\/<service>/],
    ['k8s://ns/svc/extra', /expected k8s:\/\/\/<service>/],
    [
      'k8s:///svc:grpc?watch=true',
      /unknown query parameter "watch" \(a Kubernetes target takes only source=auto\|endpointslices\|endpoints, config=<ConfigMap>\[\/<key>\], pod_labels=<key>\[,<key>…\] and istio=true\)/,
    ],
    ['k8s:///svc:grpc?source=slices', /source="slices" is not auto, endpointslices or endpoints/],
    ['k8s:///svc:grpc?source=endpoints&source=auto', /source is given twice/],
    ['k8s:///svc:grpc#frag', /takes no fragment/],
  ];
  for (const [target, message] of errors) {
    test(target.length > 60 ? `${target.slice(0, 60)}…` : target, () => {
      assert.throws(
        () => parse(target),
        (error: unknown) => {
          assert.ok(error instanceof TargetError, String(error));
          assert.match(error.message, message);
          assert.equal(error.target, target);
          return true;
        },
      );
    });
  }

  test('an empty path (built by hand: parseTargetUri refuses it)', () => {
    assert.throws(
      () => parseK8sTarget({ scheme: 'k8s', authority: '', path: '' }, 'k8s:///'),
      (error: unknown) => error instanceof TargetError && /expected k8s:\/\/\//.test(error.message),
    );
  });

  for (const target of [
    'k8s://alice:s3cr3t-token@prod/svc:grpc',
    'k8s://s3cr3t-token@/svc:grpc',
    'kubernetes://alice:s3cr3t-token@prod/svc',
  ]) {
    test(`credentials in ${target.replace('s3cr3t-token', '…')}, without repeating them`, () => {
      assert.throws(
        () => parse(target),
        (error: unknown) => {
          assert.ok(error instanceof TargetError, String(error));
          assert.match(error.message, /credentials do not belong in a target/);
          assert.ok(!error.message.includes('s3cr3t'), error.message);
          assert.ok(!error.message.includes('alice'), error.message);
          assert.ok(!error.target.includes('s3cr3t'), error.target);
          assert.match(error.target, /\/\/\*\*\*@/);
          return true;
        },
      );
    });
  }

  test('a token in the query is refused without repeating it', () => {
    assert.throws(
      () => parse('k8s:///svc:grpc?token=s3cr3t-token'),
      (error: unknown) => {
        assert.ok(error instanceof TargetError, String(error));
        assert.match(error.message, /unknown query parameter "token"/);
        assert.ok(!error.message.includes('s3cr3t'), error.message);
        return true;
      },
    );
  });
});

describe('parseK8sTarget: ?source=', () => {
  for (const [target, service, namespace, source] of [
    ['k8s:///hello.prod:grpc?source=endpoints', 'hello', 'prod', 'endpoints'],
    ['k8s://prod/hello:grpc?source=endpointslices', 'hello', 'prod', 'endpointslices'],
    ['kubernetes:///hello.prod?source=auto', 'hello', 'prod', 'auto'],
    ['kubernetes://hello.prod:8080/?source=endpoints', 'hello', 'prod', 'endpoints'],
    ['kubernetes://hello.prod/?source=endpoints', 'hello', 'prod', 'endpoints'],
  ] as const) {
    test(target, () => {
      const parsed = parse(target);
      assert.deepEqual(
        [parsed.service, parsed.namespace, parsed.source],
        [service, namespace, source],
      );
    });
  }

  test('without it the target has no source (the option decides)', () => {
    assert.equal('source' in parse('k8s:///hello.prod:grpc'), false);
  });
});

describe('parseK8sTarget: ?config=', () => {
  for (const [target, namespace, name, key, source] of [
    [
      'k8s:///hello.prod:grpc?config=hello-lb',
      'prod',
      'hello-lb',
      'service-config.json',
      undefined,
    ],
    [
      'k8s:///hello.prod:grpc?config=hello-lb/policy.json',
      'prod',
      'hello-lb',
      'policy.json',
      undefined,
    ],
    [
      'k8s:///hello.prod:grpc?config=hello-lb%2Fpolicy.json',
      'prod',
      'hello-lb',
      'policy.json',
      undefined,
    ],
    [
      'k8s://prod/hello:grpc?config=lb.v1&source=endpoints',
      'prod',
      'lb.v1',
      'service-config.json',
      'endpoints',
    ],
    ['k8s:///hello:grpc?source=auto&config=a/B_c-1.yaml', undefined, 'a', 'B_c-1.yaml', 'auto'],
    [
      'kubernetes:///hello.prod?config=hello-lb',
      'prod',
      'hello-lb',
      'service-config.json',
      undefined,
    ],
    [
      'kubernetes://hello.prod:8080/?config=hello-lb',
      'prod',
      'hello-lb',
      'service-config.json',
      undefined,
    ],
    ['kubernetes://hello.prod/?config=hello-lb/k', 'prod', 'hello-lb', 'k', undefined],
    [
      'k8s:///hello.prod.svc.cluster.local:grpc?config=hello-lb',
      'prod',
      'hello-lb',
      'service-config.json',
      undefined,
    ],
  ] as const) {
    test(target, () => {
      const parsed = parse(target);
      assert.equal(parsed.service, 'hello');
      assert.equal(parsed.namespace, namespace);
      assert.deepEqual(parsed.config, { name, key });
      assert.equal(parsed.source, source);
    });
  }

  test('without it the target has no config', () => {
    assert.equal('config' in parse('k8s:///hello.prod:grpc'), false);
  });

  const errors: [string, RegExp][] = [
    ['k8s:///hello.prod:grpc?config=', /config= is empty/],
    ['k8s:///hello.prod:grpc?config', /config= is empty/],
    [
      'k8s:///hello.prod:grpc?config=Hello-LB',
      /config: "Hello-LB" is not a ConfigMap name \(a DNS subdomain/,
    ],
    ['k8s:///hello.prod:grpc?config=-lb', /config: "-lb" is not a ConfigMap name/],
    ['k8s:///hello.prod:grpc?config=lb..x', /config: "lb..x" is not a ConfigMap name/],
    [`k8s:///hello.prod:grpc?config=${'a'.repeat(254)}`, /is not a ConfigMap name/],
    ['k8s:///hello.prod:grpc?config=/policy.json', /config: "" is not a ConfigMap name/],
    ['k8s:///hello.prod:grpc?config=lb/', /config: "" is not a ConfigMap data key/],
    ['k8s:///hello.prod:grpc?config=lb/a%20b', /config: "a b" is not a ConfigMap data key/],
    ['k8s:///hello.prod:grpc?config=lb/a/b', /config: "a\/b" is not a ConfigMap data key/],
    ['k8s:///hello.prod:grpc?config=lb/..json', /config: "..json" is not a ConfigMap data key/],
    ['k8s:///hello.prod:grpc?config=lb/.', /config: "." is not a ConfigMap data key/],
    ['k8s:///hello.prod:grpc?config=a&config=b', /config is given twice/],
  ];
  for (const [target, message] of errors) {
    test(`refused: ${target.length > 60 ? `${target.slice(0, 60)}…` : target}`, () => {
      assert.throws(
        () => parse(target),
        (error: unknown) => {
          assert.ok(error instanceof TargetError, String(error));
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }
});

describe('parseK8sTarget: ?pod_labels=', () => {
  for (const [target, namespace, keys] of [
    ['k8s:///hello.prod:grpc?pod_labels=version', 'prod', ['version']],
    [
      'k8s:///hello.prod:grpc?config=hello-lb&pod_labels=version,app.kubernetes.io/version',
      'prod',
      ['version', 'app.kubernetes.io/version'],
    ],
    ['k8s://prod/hello:grpc?pod_labels=track&source=endpoints', 'prod', ['track']],
    ['kubernetes:///hello.prod?pod_labels=example.com%2Fv_1.x-Y', 'prod', ['example.com/v_1.x-Y']],
    ['kubernetes://hello.prod:8080/?pod_labels=version', 'prod', ['version']],
    ['k8s:///hello.prod.svc.cluster.local:grpc?pod_labels=a,b', 'prod', ['a', 'b']],
    [`k8s:///hello:grpc?pod_labels=${'k'.repeat(63)}`, undefined, ['k'.repeat(63)]],
    [
      `k8s:///hello:grpc?pod_labels=${Array.from({ length: 16 }, (_, i) => `k${i}`).join(',')}`,
      undefined,
      Array.from({ length: 16 }, (_, i) => `k${i}`),
    ],
  ] as const) {
    test(target.length > 80 ? `${target.slice(0, 80)}…` : target, () => {
      const parsed = parse(target);
      assert.equal(parsed.service, 'hello');
      assert.equal(parsed.namespace, namespace);
      assert.deepEqual(parsed.podLabels, keys);
    });
  }

  test('without it the target has no podLabels', () => {
    assert.equal('podLabels' in parse('k8s:///hello.prod:grpc?config=hello-lb'), false);
  });

  const errors: [string, RegExp][] = [
    ['k8s:///hello.prod:grpc?pod_labels=', /pod_labels= is empty/],
    ['k8s:///hello.prod:grpc?pod_labels', /pod_labels= is empty/],
    ['k8s:///hello.prod:grpc?pod_labels=version,', /pod_labels: "" is not a label key/],
    ['k8s:///hello.prod:grpc?pod_labels=-version', /pod_labels: "-version" is not a label key/],
    ['k8s:///hello.prod:grpc?pod_labels=ver%20sion', /pod_labels: "ver sion" is not a label key/],
    [`k8s:///hello:grpc?pod_labels=${'k'.repeat(64)}`, /is not a label key \(\[<prefix>\/\]<name>/],
    [
      'k8s:///hello:grpc?pod_labels=Example.com/version',
      /pod_labels: "Example.com\/version" is not a label key: its prefix before "\/" must be a DNS subdomain/,
    ],
    [
      'k8s:///hello:grpc?pod_labels=/version',
      /pod_labels: "\/version" is not a label key: its prefix/,
    ],
    ['k8s:///hello:grpc?pod_labels=a/b/c', /pod_labels: "a\/b\/c" is not a label key: its prefix/],
    [
      'k8s:///hello:grpc?pod_labels=example.com/',
      /pod_labels: "example.com\/" is not a label key \(/,
    ],
    ['k8s:///hello:grpc?pod_labels=version,version', /pod_labels: "version" is given twice/],
    ['k8s:///hello:grpc?pod_labels=a&pod_labels=b', /pod_labels is given twice/],
    [
      `k8s:///hello:grpc?pod_labels=${Array.from({ length: 17 }, (_, i) => `k${i}`).join(',')}`,
      /pod_labels: 17 label keys, at most 16/,
    ],
  ];
  for (const [target, message] of errors) {
    test(`refused: ${target.length > 60 ? `${target.slice(0, 60)}…` : target}`, () => {
      assert.throws(
        () => parse(target),
        (error: unknown) => {
          assert.ok(error instanceof TargetError, String(error));
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }
});

describe('parseK8sTarget: ?istio=true', () => {
  for (const [target, namespace, podLabels] of [
    ['k8s:///hello2.prod:grpc?istio=true', 'prod', undefined],
    ['k8s://prod/hello2:grpc?istio=true&source=endpoints', 'prod', undefined],
    ['k8s:///hello2.prod:grpc?pod_labels=track&istio=true', 'prod', ['track']],
    ['kubernetes://hello2.prod:8080/?istio=true', 'prod', undefined],
  ] as const) {
    test(target, () => {
      const parsed = parse(target);
      assert.equal(parsed.service, 'hello2');
      assert.equal(parsed.namespace, namespace);
      assert.equal(parsed.istio, true);
      assert.deepEqual(parsed.podLabels, podLabels);
    });
  }

  test('without it the target has no istio', () => {
    assert.equal('istio' in parse('k8s:///hello2.prod:grpc?config=hello-lb'), false);
  });

  const errors: [string, RegExp][] = [
    ['k8s:///hello2.prod:grpc?istio', /istio="": the only value is true/],
    ['k8s:///hello2.prod:grpc?istio=false', /istio="false": the only value is true/],
    ['k8s:///hello2.prod:grpc?istio=1', /istio="1": the only value is true/],
    ['k8s:///hello2.prod:grpc?istio=true&istio=true', /istio is given twice/],
    [
      'k8s:///hello2.prod:grpc?istio=true&config=hello-lb',
      /config= and istio=true both give the service config: a target takes one source of service config/,
    ],
    [
      'k8s:///hello2.prod:grpc?config=hello-lb&istio=true',
      /config= and istio=true both give the service config/,
    ],
  ];
  for (const [target, message] of errors) {
    test(`refused: ${target}`, () => {
      assert.throws(
        () => parse(target),
        (error: unknown) => {
          assert.ok(error instanceof TargetError, String(error));
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }
});
