import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { checkServiceConfig } from '@grpc-lb/core';

import {
  HELLO2_DESTINATION_RULE,
  HELLO2_TRAFFIC_SPLIT,
  HELLO2_VIRTUAL_SERVICE,
} from '../testing/hello2';
import { assertOneErrorLine, grpcLb, warningLines } from '../testing/run-bin';

const dir = mkdtempSync(join(tmpdir(), 'grpc-lb-cli-istio-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const VS = file('hello2-vs.yaml', HELLO2_VIRTUAL_SERVICE);
const DR = file('hello2-dr.yaml', HELLO2_DESTINATION_RULE);
const HELLO2_CONFIG = { loadBalancingConfig: [{ 'grpc-lb.traffic_split': HELLO2_TRAFFIC_SPLIT }] };

describe('grpc-lb istio translate: the hello2 walk-through', () => {
  test('translates its VirtualService and DestinationRule to 30/60/10 on SayHello, as indented JSON', () => {
    const run = grpcLb(['istio', 'translate', '-f', VS, '-f', DR]);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(run.stdout.startsWith('{\n  "loadBalancingConfig": ['), run.stdout);
    const config = JSON.parse(run.stdout) as Record<string, unknown>;
    assert.deepEqual(config, HELLO2_CONFIG);
    assert.doesNotThrow(() => checkServiceConfig(config, 'grpc-lb istio translate output'));
  });

  test('prints each field not carried over as one warning line on stderr', () => {
    const run = grpcLb(['istio', 'translate', '-f', VS, '-f', DR]);
    const warnings = warningLines(run);
    assert.ok(
      warnings.some((w) =>
        /^DestinationRule grpc-reciprocal-hello\/hello2-dr: trafficPolicy\.connectionPool: .*maxConnections/.test(
          w,
        ),
      ),
      run.stderr,
    );
  });

  test('--json prints one line: host, service config, the same warnings, the resources used', () => {
    const run = grpcLb(['istio', 'translate', '-f', VS, '-f', DR, '--json']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.split('\n').length, 2, 'one line and its newline');
    const out = JSON.parse(run.stdout) as {
      host: string;
      serviceConfig: unknown;
      warnings: string[];
      used: string[];
    };
    assert.equal(out.host, 'hello2-svc');
    assert.deepEqual(out.serviceConfig, HELLO2_CONFIG);
    assert.deepEqual(out.warnings, warningLines(run));
    assert.ok(out.warnings.length > 0);
    assert.deepEqual(out.used, [
      'VirtualService grpc-reciprocal-hello/hello2-vs',
      'DestinationRule grpc-reciprocal-hello/hello2-dr',
    ]);
  });

  test('-f - reads both resources from stdin, as kubectl get -o yaml pipes them', () => {
    const stdin = `${HELLO2_VIRTUAL_SERVICE}---\n${HELLO2_DESTINATION_RULE}`;
    const run = grpcLb(['istio', 'translate', '-f', '-'], stdin);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), HELLO2_CONFIG);
  });

  test('stdin and a file together', () => {
    const run = grpcLb(['istio', 'translate', '-f', VS, '-f', '-'], HELLO2_DESTINATION_RULE);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), HELLO2_CONFIG);
  });

  test('--host in any of its forms gives the same translation', () => {
    for (const host of ['hello2-svc', 'hello2-svc.grpc-reciprocal-hello.svc.cluster.local']) {
      const run = grpcLb(['istio', 'translate', '-f', VS, '-f', DR, '--host', host]);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(JSON.parse(run.stdout), HELLO2_CONFIG);
    }
  });

  test('another kind of resource in the files is named in a warning', () => {
    const withConfigMap = file(
      'with-configmap.yaml',
      `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: hello2-lb, namespace: prod }\n---\n${HELLO2_VIRTUAL_SERVICE}`,
    );
    const run = grpcLb(['istio', 'translate', '-f', withConfigMap, '-f', DR]);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(
      warningLines(run).some(
        (w) =>
          w.startsWith('ignored ConfigMap prod/hello2-lb') && w.includes('with-configmap.yaml'),
      ),
      run.stderr,
    );
  });
});

describe('grpc-lb istio translate: input that cannot be used exits 1 with one line', () => {
  test('bad YAML names the file and the line', () => {
    const bad = file(
      'bad.yaml',
      `${HELLO2_VIRTUAL_SERVICE}---\nkind: DestinationRule\nspec:\n  host: [hello2\n`,
    );
    const run = grpcLb(['istio', 'translate', '-f', bad]);
    assert.equal(run.code, 1);
    assert.match(
      assertOneErrorLine(run),
      new RegExp(`^error: ${bad.replace(/[.]/g, '\\.')}: document 2, line \\d+: `),
    );
  });

  test('bad YAML on stdin is named <stdin>', () => {
    const run = grpcLb(['istio', 'translate', '-f', '-'], 'kind: VirtualService\n  bad: [\n');
    assert.equal(run.code, 1);
    assert.match(assertOneErrorLine(run), /^error: <stdin>: document 1, line \d+: /);
  });

  test('files with no VirtualService or DestinationRule', () => {
    const other = file(
      'configmap.yaml',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n',
    );
    const run = grpcLb(['istio', 'translate', '-f', other]);
    assert.equal(run.code, 1);
    assert.match(
      assertOneErrorLine(run),
      /no VirtualService or DestinationRule .* in .*configmap\.yaml$/,
    );
  });

  test('a VirtualService with no http route names the resource and the field', () => {
    const tcpOnly = file(
      'tcp-only.yaml',
      'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: hello2, namespace: prod }\nspec:\n  hosts: [hello2]\n  tcp: [{ route: [{ destination: { host: hello2 } }] }]\n',
    );
    const run = grpcLb(['istio', 'translate', '-f', tcpOnly]);
    assert.equal(run.code, 1);
    assert.match(assertOneErrorLine(run), /^error: VirtualService prod\/hello2: http: /);
  });
});

describe('grpc-lb istio translate: the host is a usage question (exit 2)', () => {
  const hello3 = file(
    'hello3-dr.yaml',
    'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: { name: hello3, namespace: grpc-reciprocal-hello }\nspec:\n  host: hello3-svc\n',
  );

  test('resources for several hosts need --host, and the error lists them', () => {
    const run = grpcLb(['istio', 'translate', '-f', VS, '-f', DR, '-f', hello3]);
    assert.equal(run.code, 2);
    assert.match(
      assertOneErrorLine(run),
      /several hosts \(hello2-svc, hello3-svc\): choose one with --host .*grpc-lb istio translate --help/,
    );
  });

  test('--host picks one of them', () => {
    const run = grpcLb([
      'istio',
      'translate',
      '-f',
      VS,
      '-f',
      DR,
      '-f',
      hello3,
      '--host',
      'hello2-svc',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), HELLO2_CONFIG);
  });

  test('a --host no resource is for, with the hosts they name', () => {
    const run = grpcLb(['istio', 'translate', '-f', VS, '-f', DR, '--host', 'hello9']);
    assert.equal(run.code, 2);
    assert.match(
      assertOneErrorLine(run),
      /^error: --host hello9: .*\(the resources name hello2-svc\)/,
    );
  });

  test('a --host that is not a host name', () => {
    const run = grpcLb(['istio', 'translate', '-f', VS, '--host', 'not a host']);
    assert.equal(run.code, 2);
    assert.match(
      assertOneErrorLine(run),
      /^error: --host not a host: "not a host" is not a host name/,
    );
  });
});
