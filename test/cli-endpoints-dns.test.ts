/**
 * `grpc-lb endpoints` on `dns+lb:` targets (the built bin as a child process) against a real DNS
 * server (bind9, changed live with nsupdate) whose A records point at real grpc-js backends on
 * 127.0.0.x: the table, `--probe` through the name, `--watch` seeing a record added, a name that
 * does not exist, and a DNS server that does not answer.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startBackends, waitFor, type BackendSet } from './harness';
import { requireBind9, startBind9 } from './support/bind9';
import { freePort } from './support/server-process';
import { serverFixture } from './support/server-fixture';
import { runGrpcLb, startGrpcLb, type CliChild, type CliRun } from './support/grpc-lb-cli';

const start = (args: readonly string[]): CliChild => startGrpcLb(args);
const grpcLb = (args: readonly string[]): Promise<CliRun> => runGrpcLb(args);

/** The table's rows (after the heading) as arrays of cells. */
function rows(stdout: string): string[][] {
  const lines = stdout.split('\n');
  const end = lines.findIndex((l, i) => i > 0 && (l === '' || /^(note|service config):/.test(l)));
  return lines.slice(1, end).map((l) => l.split(/\s{2,}/).map((c) => c.trim()));
}

const dns = serverFixture(
  'bind9',
  () =>
    startBind9({
      records: ['api 1 IN A 127.0.0.81', 'api 1 IN A 127.0.0.82', 'watched 1 IN A 127.0.0.81'],
    }),
  (t) => Promise.resolve(requireBind9(t)),
);

describe('grpc-lb endpoints: dns+lb: targets against bind9', () => {
  let backends: BackendSet;
  before(async () => {
    backends = await startBackends({ count: 2, firstHost: 81 });
    await backends.backends[1]!.setHealth('NOT_SERVING');
  });
  after(async () => {
    await backends?.stopAll();
  });

  test('the A records as rows (port from the target), with the note; exit 0', async (t) => {
    const server = await dns.get(t);
    if (!server) return;
    await dns.logged(async () => {
      const port = backends.port;
      const run = await grpcLb(['endpoints', `dns+lb://${server.address}/api.svc.test:${port}`]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stderr, '');
      assert.deepEqual(rows(run.stdout), [
        [`127.0.0.81:${port}`, '1', '-', '-', '-'],
        [`127.0.0.82:${port}`, '1', '-', '-', '-'],
      ]);
      assert.match(run.stdout, /\nnote: .*api\.svc\.test/);
      assert.match(run.stdout, /\nservice config: none from the registry/);
    });
  });

  test('--probe through the name: one SERVING, one NOT_SERVING; exit 3', async (t) => {
    const server = await dns.get(t);
    if (!server) return;
    await dns.logged(async () => {
      const port = backends.port;
      const run = await grpcLb([
        'endpoints',
        `dns+lb://${server.address}/api.svc.test:${port}`,
        '--probe',
        '--json',
      ]);
      assert.equal(run.code, 3, run.stderr);
      const json = JSON.parse(run.stdout) as {
        endpoints: { address: string; probe: { state: string; health: string } }[];
      };
      assert.deepEqual(
        json.endpoints.map((e) => [e.address, e.probe.state, e.probe.health]),
        [
          [`127.0.0.81:${port}`, 'READY', 'SERVING'],
          [`127.0.0.82:${port}`, 'READY', 'NOT_SERVING'],
        ],
      );
    });
  });

  test('--watch sees a record added with nsupdate; SIGINT ends it with exit 0', async (t) => {
    const server = await dns.get(t);
    if (!server) return;
    await dns.logged(async () => {
      const child = start([
        'endpoints',
        `dns+lb://${server.address}/watched.svc.test:50051?interval=300ms&min_interval=100ms`,
        '--watch',
      ]);
      try {
        await waitFor(() => child.stdout().includes('127.0.0.81:50051'), {
          timeoutMs: 15_000,
          message: `the first table (stderr: ${child.stderr()})`,
        });
        await server.update('add watched.svc.test. 1 A 127.0.0.83');
        await waitFor(
          () => /\n\d\d:\d\d:\d\d\.\d{3} added 127\.0\.0\.83:50051 /.test(child.stdout()),
          { timeoutMs: 15_000, message: 'the addition' },
        );
      } finally {
        child.kill('SIGINT');
      }
      const run = await child.done;
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.signal, null);
    });
  });

  test('a name that does not exist: an honest empty set, the note says NXDOMAIN; exit 0', async (t) => {
    const server = await dns.get(t);
    if (!server) return;
    await dns.logged(async () => {
      const run = await grpcLb(['endpoints', `dns+lb://${server.address}/nope.svc.test:50051`]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stderr, '');
      assert.match(
        run.stdout,
        new RegExp(
          `^no endpoints\nnote: DNS A/AAAA nope\\.svc\\.test: NXDOMAIN via ${server.address}\n`,
        ),
      );
    });
  });

  test('a DNS server that does not answer: one error line after --timeout, exit 1', async () => {
    const port = await freePort();
    const target = `dns+lb://127.0.0.1:${port}/api.svc.test:50051`;
    const run = await grpcLb(['endpoints', target, '--timeout', '1.5']);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    const lines = run.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, run.stderr);
    assert.match(
      lines[0]!,
      /^error: cannot resolve dns\+lb:\/\/\S+ within 1\.5 s: .*api\.svc\.test/,
    );
  });
});
