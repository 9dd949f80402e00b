import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseTargetUri, TargetError, validateTarget } from '@grpc-lb/core';
import { dnsLbResolverFactory, dnsResolverFactory } from './dns-resolver-factory';
import { parseDnsTarget, type DnsTarget } from './dns-target';

function parse(target: string): DnsTarget {
  return parseDnsTarget(parseTargetUri(target), target);
}

describe('parseDnsTarget: every documented target form', () => {
  const forms: [string, Partial<DnsTarget>][] = [
    [
      'dns+lb:///api.prod.svc.cluster.local:50051',
      {
        kind: 'address',
        name: 'api.prod.svc.cluster.local',
        port: 50051,
        absolute: false,
        server: undefined,
        authority: 'api.prod.svc.cluster.local:50051',
      },
    ],
    [
      'dns+lb:///api.prod:50051',
      { kind: 'address', name: 'api.prod', authority: 'api.prod:50051' },
    ],
    [
      'dns+lb:api.prod:50051',
      { kind: 'address', name: 'api.prod', port: 50051, server: undefined },
    ],
    ['dns+lb:///api.prod', { kind: 'address', port: 443, authority: 'api.prod' }],
    [
      'dns+lb:///api.prod.svc.cluster.local.:50051',
      {
        name: 'api.prod.svc.cluster.local',
        absolute: true,
        authority: 'api.prod.svc.cluster.local:50051',
      },
    ],
    [
      'dns+lb://10.96.0.10/api.prod.svc.cluster.local:50051',
      { server: { host: '10.96.0.10', port: 53 }, name: 'api.prod.svc.cluster.local' },
    ],
    [
      'dns+lb://127.0.0.1:5353/api.svc.test:50051',
      { server: { host: '127.0.0.1', port: 5353 }, port: 50051 },
    ],
    ['dns+lb://[::1]:5353/api.svc.test:1', { server: { host: '::1', port: 5353 } }],
    [
      'dns+lb:///_grpc._tcp.api.prod',
      { kind: 'srv', name: '_grpc._tcp.api.prod', port: undefined, authority: 'api.prod' },
    ],
    [
      'dns+lb:///api.prod?srv=grpc',
      { kind: 'srv', name: '_grpc._tcp.api.prod', port: undefined, authority: 'api.prod' },
    ],
    ['dns+lb:///_http._udp.x.y', { kind: 'srv', name: '_http._udp.x.y', authority: 'x.y' }],
    [
      'dns+lb:///10.0.0.1:50051',
      { kind: 'ip', name: '10.0.0.1', port: 50051, authority: '10.0.0.1:50051' },
    ],
    ['dns+lb:///10.0.0.1', { kind: 'ip', port: 443, authority: '10.0.0.1' }],
    ['dns+lb:///[::1]:50051', { kind: 'ip', name: '::1', port: 50051, authority: '[::1]:50051' }],
    ['dns+lb:///::1', { kind: 'ip', name: '::1', port: 443, authority: '[::1]' }],
    ['dns:///localhost:50051', { kind: 'address', name: 'localhost', port: 50051 }],
  ];
  for (const [target, expected] of forms) {
    test(target, () => {
      const parsed = parse(target);
      for (const [key, value] of Object.entries(expected)) {
        assert.deepEqual(parsed[key as keyof DnsTarget], value, `${target}: ${key}`);
      }
    });
  }

  test('query parameters become options', () => {
    assert.deepEqual(
      parse(
        'dns+lb:///a.b:1?interval=5s&min_interval=500ms&max_interval=2m&ttl=true&timeout=300ms&attempts=3&family=ipv4&max_stale=1h',
      ).options,
      {
        intervalMs: 5000,
        minIntervalMs: 500,
        maxIntervalMs: 120_000,
        useTtl: true,
        timeoutMs: 300,
        attempts: 3,
        family: 'ipv4',
        maxStaleMs: 3_600_000,
      },
    );
    assert.deepEqual(parse('dns+lb:///a.b:1?').options, {});
    assert.deepEqual(parse('dns+lb:///a.b:1?ttl=0').options, { useTtl: false });
  });

  test('the default authority drops the query and the SRV prefix', () => {
    assert.equal(
      validateTarget('dns+lb:///api.prod:50051?interval=5s', [dnsLbResolverFactory])
        .defaultAuthority,
      'api.prod:50051',
    );
    assert.equal(
      validateTarget('dns:///_grpc._tcp.api.prod', [dnsResolverFactory]).defaultAuthority,
      'api.prod',
    );
  });
});

describe('parseDnsTarget: bad targets are TargetErrors naming the part', () => {
  const bad: [string, RegExp][] = [
    ['dns+lb:///', /needs a host name/],
    ['dns+lb://127.0.0.1/', /needs a host name/],
    ['dns+lb://api.prod:50051', /three slashes|path after the authority/],
    ['dns+lb:///api.prod:0', /invalid port "0"/],
    ['dns+lb:///api.prod:70000', /invalid port "70000"/],
    ['dns+lb:///api prod:1', /invalid host/],
    ['dns+lb:///api..prod:1', /invalid host/],
    ['dns+lb://ns.example/api.prod:1', /DNS server "ns.example" must be an IP address/],
    ['dns+lb://127.0.0.1:99999/api.prod:1', /DNS server .* invalid port/],
    ['dns+lb:///_grpc._tcp.api.prod:50051', /SRV target takes its ports from the SRV records/],
    ['dns+lb:///api.prod:50051?srv=grpc', /SRV target takes its ports/],
    ['dns+lb:///api.prod?srv=_grpc', /parameter srv "_grpc" is not a port name/],
    ['dns+lb:///_grpc._tcp.api.prod?srv=grpc', /already an SRV name/],
    ['dns+lb:///10.0.0.1?srv=grpc', /srv needs a host name/],
    ['dns+lb:///a.b:1?interval=5', /parameter interval: expected a duration/],
    ['dns+lb:///a.b:1?interval=10ms', /parameter interval: expected 100ms-24h?/],
    ['dns+lb:///a.b:1?min_interval=50ms', /parameter min_interval/],
    ['dns+lb:///a.b:1?timeout=2m', /parameter timeout: expected 10ms-1m/],
    ['dns+lb:///a.b:1?attempts=9', /parameter attempts: expected an integer 1-5/],
    ['dns+lb:///a.b:1?family=inet', /parameter family: expected any, ipv4 or ipv6/],
    ['dns+lb:///a.b:1?ttl=yes', /parameter ttl: expected true or false/],
    ['dns+lb:///a.b:1?interval=5s&interval=6s', /parameter interval is given twice/],
    ['dns+lb:///a.b:1?intervall=5s', /unknown parameter "intervall" \(known: srv, interval/],
    ['dns+lb:///a.b:1?interval', /"interval" is not name=value/],
    ['dns+lb:///a.b:1?interval=%zz', /malformed percent-escape/],
  ];
  for (const [target, message] of bad) {
    test(target, () => {
      assert.throws(
        () => parse(target),
        (error: unknown) => {
          assert.ok(error instanceof TargetError, `not a TargetError: ${String(error)}`);
          assert.equal(error.code, 'BAD_TARGET');
          assert.ok(error.message.includes(`"${target}"`), error.message);
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }
});

describe('parseDnsTarget: credentials are refused and never repeated', () => {
  const refused: [string, RegExp][] = [
    ['dns+lb://u:S3CRET@127.0.0.1/api.prod:1', /userinfo .* not allowed in a DNS target/],
    ['dns+lb://u:S3CRET@127.0.0.1:x/api.prod:1', /userinfo .* not allowed/],
    ['dns:///u:S3CRET@api.prod:1', /userinfo .* not allowed/],
    ['dns:u:S3CRET@api.prod:1', /userinfo .* not allowed/],
    ['dns+lb:///api.prod:1?token=S3CRET', /parameter "token": credentials do not belong/],
    ['dns+lb:///api.prod:1?interval=5s&password=S3CRET', /parameter "password"/],
    ['dns+lb:///api.prod:1?token=S3CRET%zz', /malformed percent-escape/],
  ];
  for (const [target, message] of refused) {
    test(target.replace(/S3CRET/g, '…'), () => {
      assert.throws(
        () => parse(target),
        (error: unknown) => {
          assert.ok(error instanceof TargetError);
          assert.match(error.message, message);
          assert.ok(!error.message.includes('S3CRET@'), error.message);
          assert.ok(!/token=S3CRET|password=S3CRET|u:S3CRET/.test(error.message), error.message);
          return true;
        },
      );
    });
  }
});
