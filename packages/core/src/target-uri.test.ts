import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TargetError } from './errors';
import { parseHostPort, parseTargetUri, targetUriToString } from './target-uri';

describe('parseTargetUri', () => {
  const cases: [string, { scheme: string; authority: string | undefined; path: string }][] = [
    ['static:///127.0.0.1:50051', { scheme: 'static', authority: '', path: '127.0.0.1:50051' }],
    [
      'static://hello.prod/10.0.0.1:1',
      { scheme: 'static', authority: 'hello.prod', path: '10.0.0.1:1' },
    ],
    ['dns:hello:50051', { scheme: 'dns', authority: undefined, path: 'hello:50051' }],
    ['k8s:///hello.prod:grpc', { scheme: 'k8s', authority: '', path: 'hello.prod:grpc' }],
    ['etcd:///foo/bar/svc', { scheme: 'etcd', authority: '', path: 'foo/bar/svc' }],
  ];
  for (const [input, expected] of cases) {
    test(`splits ${input}`, () => {
      const uri = parseTargetUri(input);
      assert.deepEqual({ ...uri }, expected);
      assert.equal(targetUriToString(uri), input);
    });
  }

  for (const bad of ['', 'no-scheme-here', '://x', '1abc:///x']) {
    test(`rejects ${JSON.stringify(bad)} with a TargetError`, () => {
      assert.throws(
        () => parseTargetUri(bad),
        (e: unknown) => e instanceof TargetError && e.code === 'BAD_TARGET',
      );
    });
  }
});

describe('parseHostPort', () => {
  const ok: [string, string, number | undefined][] = [
    ['127.0.0.1:80', '127.0.0.1', 80],
    ['hello.ns.svc.cluster.local:50051', 'hello.ns.svc.cluster.local', 50051],
    ['[::1]:443', '::1', 443],
    ['[fe80::1]', 'fe80::1', undefined],
    ['::1', '::1', undefined],
    ['example.com', 'example.com', undefined],
  ];
  for (const [input, host, port] of ok) {
    test(`parses ${input}`, () => {
      assert.deepEqual({ ...parseHostPort(input, 't', 'address') }, { host, port });
    });
  }
  const bad: [string, RegExp][] = [
    ['127.0.0.1:0', /invalid port "0"/],
    ['127.0.0.1:65536', /invalid port "65536"/],
    ['127.0.0.1:http', /invalid port "http"/],
    ['[::1', /unclosed/],
    ['[::1]x', /expected ":port"/],
    ['bad host:1', /invalid host "bad host"/],
    [':80', /invalid host ""/],
  ];
  for (const [input, message] of bad) {
    test(`rejects ${input} naming the problem`, () => {
      assert.throws(
        () => parseHostPort(input, 'static:///x', 'endpoint 1'),
        (e: unknown) => {
          assert.ok(e instanceof TargetError);
          assert.match(e.message, message);
          assert.match(e.message, /static:\/\/\/x/);
          return true;
        },
      );
    });
  }
});
