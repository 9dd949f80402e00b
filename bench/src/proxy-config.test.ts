import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { HAPROXY_BIN, NGINX_BIN } from './proxies';
import { haproxyConfig, nginxConfig } from './proxy-config';

const upstreams = [
  { host: '127.0.0.2', port: 41000 },
  { host: '127.0.0.3', port: 41000 },
];

/**
 * Skip reason when `binary` is missing — but under CI=true nothing skips: the test runs and fails
 * (npm test provisions nginx and HAProxy, so a missing one is a real problem there).
 */
function missingOutsideCi(binary: string, name: string): string | false {
  if (existsSync(binary) || process.env['CI'] === 'true') return false;
  return `${name} not installed`;
}

describe('nginxConfig', () => {
  const text = nginxConfig({ dir: '/tmp/x', listenPort: 8443, upstreams, keepalive: 100 });

  test('listens with HTTP/2 on 127.0.0.1 only and grpc_passes to every backend', () => {
    assert.match(text, /listen 127\.0\.0\.1:8443 http2;/);
    assert.doesNotMatch(text, /listen (?!127\.0\.0\.1)/);
    assert.match(text, /server 127\.0\.0\.2:41000;/);
    assert.match(text, /server 127\.0\.0\.3:41000;/);
    assert.match(text, /grpc_pass grpc:\/\/grpc_backends;/);
  });

  test('keeps upstream connections and never GOAWAYs after 1000 calls', () => {
    assert.match(text, /keepalive 100;/);
    const requests = [...text.matchAll(/keepalive_requests (\d+);/g)].map((m) => Number(m[1]));
    assert.equal(requests.length, 2, 'upstream and client side');
    for (const value of requests) assert.ok(value >= 10_000_000);
  });

  test('keeps its pid and temp files in the given directory', () => {
    assert.match(text, /pid \/tmp\/x\/nginx\.pid;/);
    for (const key of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) {
      assert.match(text, new RegExp(`_temp_path /tmp/x/${key};`));
    }
  });

  test('refuses an empty upstream list', () => {
    assert.throws(
      () => nginxConfig({ dir: '/tmp/x', listenPort: 1, upstreams: [], keepalive: 1 }),
      /no upstream/,
    );
  });

  test('is accepted by nginx -t', { skip: missingOutsideCi(NGINX_BIN, 'nginx') }, () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-nginx-test-'));
    try {
      const conf = path.join(dir, 'nginx.conf');
      writeFileSync(conf, nginxConfig({ dir, listenPort: 1, upstreams, keepalive: 8 }));
      const result = spawnSync(NGINX_BIN, ['-t', '-q', '-p', dir, '-e', 'stderr', '-c', conf], {
        encoding: 'utf8',
      });
      assert.equal(result.status, 0, result.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('haproxyConfig', () => {
  const text = haproxyConfig([
    { name: 'h2', mode: 'h2', listenPort: 9001, upstreams },
    { name: 'tcp', mode: 'tcp', listenPort: 9002, upstreams },
  ]);

  test('speaks HTTP/2 on both sides of the h2 frontend', () => {
    assert.match(text, /frontend fe_h2\n {2}mode http\n {2}bind 127\.0\.0\.1:9001 proto h2/);
    assert.match(text, /server s1 127\.0\.0\.2:41000 proto h2/);
    assert.match(text, /server s2 127\.0\.0\.3:41000 proto h2/);
  });

  test('balances whole connections in the tcp frontend', () => {
    assert.match(text, /frontend fe_tcp\n {2}mode tcp\n {2}bind 127\.0\.0\.1:9002\n/);
    assert.match(
      text,
      /backend be_tcp\n {2}mode tcp\n {2}balance roundrobin\n {2}server s1 127\.0\.0\.2:41000\n/,
    );
  });

  test('sets the timeouts HAProxy warns about, and a maxconn within a 20000 fd limit', () => {
    for (const key of ['connect', 'client', 'server'])
      assert.match(text, new RegExp(`timeout ${key} `));
    const maxconn = Number(/maxconn (\d+)/.exec(text)?.[1]);
    assert.ok(maxconn * 2 + 100 < 20_000);
  });

  test('refuses no frontends, a frontend without upstreams, and a name HAProxy cannot take', () => {
    assert.throws(() => haproxyConfig([]), /no frontends/);
    assert.throws(
      () => haproxyConfig([{ name: 'x', mode: 'tcp', listenPort: 1, upstreams: [] }]),
      /no upstreams/,
    );
    assert.throws(
      () => haproxyConfig([{ name: 'a b', mode: 'tcp', listenPort: 1, upstreams }]),
      /bad name/,
    );
  });

  test('is accepted by haproxy -c', { skip: missingOutsideCi(HAPROXY_BIN, 'haproxy') }, () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-haproxy-test-'));
    try {
      const conf = path.join(dir, 'haproxy.cfg');
      writeFileSync(conf, text);
      const result = spawnSync(HAPROXY_BIN, ['-c', '-q', '-f', conf], { encoding: 'utf8' });
      assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
