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
    ['k8s:///svc:grpc?watch=true', /takes no query or fragment/],
    ['k8s:///svc:grpc#frag', /takes no query or fragment/],
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
});
