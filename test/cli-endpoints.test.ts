/**
 * `grpc-lb endpoints` run as an operator runs it (the built bin as a child process) against a real
 * etcd and a real Consul agent, and on `static:` and `composite:` targets: the table, the JSON,
 * the service config document named, a registry that cannot be reached, and `--watch` seeing an
 * endpoint come and go until SIGINT; and `grpc-lb explain` under a traffic split held in etcd.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { waitFor } from './harness';
import { requireConsul, startConsul, type Consul } from './support/consul';
import { requireEtcd, startEtcd, type Etcd } from './support/etcd';
import { freePort } from './support/server-process';
import { serverFixture } from './support/server-fixture';
import { runGrpcLb, startGrpcLb, type CliChild, type CliRun } from './support/grpc-lb-cli';

const start = (args: readonly string[], env: NodeJS.ProcessEnv = {}): CliChild =>
  startGrpcLb(args, { env });
const grpcLb = (args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> =>
  runGrpcLb(args, { env });

/** The table's rows (after the heading) as arrays of cells. */
function rows(stdout: string): string[][] {
  const lines = stdout.split('\n');
  assert.match(lines[0]!, /^ADDRESS\s+WEIGHT\s+ZONE\s+SOURCE\s+LABELS$/);
  const end = lines.findIndex((l, i) => i > 0 && (l === '' || /^(note|service config):/.test(l)));
  return lines.slice(1, end).map((l) => l.split(/\s{2,}/).map((c) => c.trim()));
}

const consul = serverFixture('consul', () => startConsul(), requireConsul);
const etcd = serverFixture<Etcd>(
  'etcd',
  () => startEtcd(),
  (t) => Promise.resolve(requireEtcd(t)),
);

const MANAGEMENT = randomUUID();
const aclConsul = serverFixture(
  'consul (ACLs on)',
  () => startConsul({ aclManagementToken: MANAGEMENT }),
  requireConsul,
);
const dir = mkdtempSync(join(tmpdir(), 'grpc-lb-cli-endpoints-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const naming = (addr: string, metadata: unknown = null): string =>
  JSON.stringify({ Op: 0, Addr: addr, Metadata: metadata });

let serial = 0;
const unique = (name: string) => `${name}-${process.pid}-${++serial}`;

describe('grpc-lb endpoints: static and composite targets', () => {
  test('a static target: one row per endpoint with weight, zone and labels, the note, exit 0', async () => {
    const run = await grpcLb([
      'endpoints',
      'static:///127.0.0.3:50051;version=v2;zone=b,127.0.0.2:50051;version=v1;weight=3',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(rows(run.stdout), [
      ['127.0.0.2:50051', '3', '-', '-', 'version=v1'],
      ['127.0.0.3:50051', '1', 'b', '-', 'version=v2'],
    ]);
    assert.match(run.stdout, /\nnote: 2 static endpoints\n/);
    assert.match(run.stdout, /\nservice config: none from the registry/);
    assert.equal(run.stderr, '');
  });

  test('a composite target in JSON: each endpoint names its source, source weights applied', async () => {
    const run = await grpcLb([
      'endpoints',
      '--json',
      'composite:///hello?vms=static:///127.0.0.2:5000&pods=static:///127.0.0.3:5000;version=v2&weight.vms=2',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as { endpoints: unknown[]; note: string };
    assert.deepEqual(out.endpoints, [
      { address: '127.0.0.2:5000', weight: 2, zone: null, source: 'vms', labels: {} },
      {
        address: '127.0.0.3:5000',
        weight: 1,
        zone: null,
        source: 'pods',
        labels: { version: 'v2' },
      },
    ]);
    assert.match(out.note, /vms/);
  });

  test('a malformed target is a usage error naming the problem, exit 2, one line', async () => {
    const run = await grpcLb(['endpoints', 'static:///nope']);
    assert.equal(run.code, 2);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^error: invalid target "static:\/\/\/nope": .*no port.*\n$/);
  });

  test('--help names every option, exit 0', async () => {
    const run = await grpcLb(['endpoints', '--help']);
    assert.equal(run.code, 0);
    for (const option of [
      '--json',
      '--watch',
      '--timeout <seconds>',
      '--kubeconfig <file>',
      '--consul-addr <address>',
      '--consul-token-file <file>',
      '--consul-cacert <file>',
      '--consul-client-cert <file>',
      '--consul-client-key <file>',
      '--consul-tls-server-name <name>',
      '--etcd-endpoints <list>',
      '--etcd-cacert <file>',
      '--etcd-cert <file>',
      '--etcd-key <file>',
      '--etcd-user <name>',
      '--etcd-password-file <file>',
      '--probe',
      '--health-service <name>',
      '--probe-timeout <seconds>',
      '--probe-concurrency <n>',
    ]) {
      assert.ok(run.stdout.includes(option), `help names ${option}`);
    }
  });
});

describe('grpc-lb endpoints: unreachable registries', () => {
  for (const [name, target, flags] of [
    ['Consul', 'consul:///hello', (port: number) => ['--consul-addr', `127.0.0.1:${port}`]],
    ['etcd', 'etcd:///services/hello', (port: number) => ['--etcd-endpoints', `127.0.0.1:${port}`]],
  ] as const) {
    test(`${name} not listening: one error line naming it after --timeout, exit 1`, async () => {
      const port = await freePort();
      const run = await grpcLb(['endpoints', target, '--timeout', '1', ...flags(port)]);
      assert.equal(run.code, 1, run.stderr);
      assert.equal(run.stdout, '');
      const lines = run.stderr.split('\n').filter((l) => l !== '');
      assert.equal(lines.length, 1, run.stderr);
      assert.match(lines[0]!, new RegExp(`^error: cannot resolve ${target} within 1 s: `));
      assert.ok(lines[0]!.includes(`127.0.0.1:${port}`), lines[0]);
      assert.ok(lines[0]!.toLowerCase().includes(name.toLowerCase()), lines[0]);
    });
  }
});

describe('grpc-lb endpoints: etcd', () => {
  test('endpoints with metadata and the service config key, from ETCD_ENDPOINTS', async (t) => {
    const e = await etcd.get(t);
    if (!e) return;
    await etcd.logged(async () => {
      const svc = `services/${unique('hello')}`;
      await e.etcdctl('put', `${svc}/a`, naming('127.0.0.2:5000', { version: 'v1', weight: 3 }));
      await e.etcdctl('put', `${svc}/b`, '127.0.0.3:5000');
      await e.etcdctl('put', `${svc}.config`, '{"loadBalancingConfig":[{"round_robin":{}}]}');
      const run = await grpcLb(['endpoints', `etcd:///${svc}?config=${svc}.config`], {
        ETCD_ENDPOINTS: e.endpoint,
      });
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(rows(run.stdout), [
        ['127.0.0.2:5000', '3', '-', '-', 'version=v1'],
        ['127.0.0.3:5000', '1', '-', '-', '-'],
      ]);
      assert.match(
        run.stdout,
        new RegExp(`\\nservice config: etcd key ${svc}\\.config \\(revision \\d+\\)\\n`),
      );
    });
  });

  test('--watch prints an addition, a change and a removal with times; SIGINT ends it with exit 0', async (t) => {
    const e = await etcd.get(t);
    if (!e) return;
    await etcd.logged(async () => {
      const svc = `services/${unique('watched')}`;
      await e.etcdctl('put', `${svc}/a`, naming('127.0.0.2:5000'));
      const child = start(['endpoints', `etcd:///${svc}`, '--watch', '--etcd-endpoints', e.url]);
      try {
        await waitFor(() => child.stdout().includes('127.0.0.2:5000'), {
          timeoutMs: 15_000,
          message: `the first table (stderr: ${child.stderr()})`,
        });
        await e.etcdctl('put', `${svc}/b`, naming('127.0.0.3:5000'));
        await waitFor(
          () => /\n\d\d:\d\d:\d\d\.\d{3} added 127\.0\.0\.3:5000 /.test(child.stdout()),
          {
            timeoutMs: 10_000,
            message: 'the addition',
          },
        );
        await e.etcdctl('put', `${svc}/b`, naming('127.0.0.3:5000', { weight: 5, zone: 'b' }));
        await waitFor(
          () =>
            /\n\d\d:\d\d:\d\d\.\d{3} changed 127\.0\.0\.3:5000 weight=5 zone=b\n/.test(
              child.stdout(),
            ),
          { timeoutMs: 10_000, message: `the change (stdout: ${child.stdout()})` },
        );
        await e.etcdctl('del', `${svc}/a`);
        await waitFor(
          () => /\n\d\d:\d\d:\d\d\.\d{3} removed 127\.0\.0\.2:5000\n/.test(child.stdout()),
          { timeoutMs: 10_000, message: 'the removal' },
        );
      } finally {
        child.kill('SIGINT');
      }
      const run = await child.done;
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stderr, '');
    });
  });
  test('--watch through an outage: one warning, the endpoints kept, then the changes after it', async (t) => {
    const e = await etcd.get(t);
    if (!e) return;
    await etcd.logged(async () => {
      const svc = `services/${unique('outage')}`;
      await e.etcdctl('put', `${svc}/a`, naming('127.0.0.2:5000'));
      const child = start(['endpoints', `etcd:///${svc}`, '--watch', '--etcd-endpoints', e.url]);
      try {
        await waitFor(() => child.stdout().includes('127.0.0.2:5000'), {
          timeoutMs: 15_000,
          message: `the first table (stderr: ${child.stderr()})`,
        });
        await e.kill();
        await waitFor(
          () => /warning: .*keeping the last endpoints; retrying/.test(child.stderr()),
          {
            timeoutMs: 30_000,
            message: 'the outage warning',
          },
        );
        await e.start();
        await e.etcdctl('put', `${svc}/b`, naming('127.0.0.3:5000'));
        await waitFor(() => / added 127\.0\.0\.3:5000 /.test(child.stdout()), {
          timeoutMs: 30_000,
          message: `the addition after the outage (stderr: ${child.stderr()})`,
        });
        assert.match(child.stderr(), /warning: .*the registry answers again/);
        assert.doesNotMatch(child.stdout(), /removed/);
        const warnings = child
          .stderr()
          .split('\n')
          .filter((l) => l.includes('retrying'));
        assert.equal(warnings.length, 1, child.stderr());
      } finally {
        child.kill('SIGINT');
      }
      assert.equal((await child.done).code, 0);
    });
  });
});

describe('grpc-lb explain: a traffic split held in etcd', () => {
  test('the route, shares and subset endpoints under the document the target names; --config overrides it with a warning', async (t) => {
    const e = await etcd.get(t);
    if (!e) return;
    await etcd.logged(async () => {
      const svc = `services/${unique('split')}`;
      await e.etcdctl('put', `${svc}/a`, naming('127.0.0.2:5000', { version: 'v1' }));
      await e.etcdctl('put', `${svc}/b`, naming('127.0.0.3:5000', { version: 'v2' }));
      const split = {
        loadBalancingConfig: [
          {
            'grpc-lb.traffic_split': {
              subsets: [
                { name: 'stable', labels: { version: 'v1' } },
                { name: 'canary', labels: { version: 'v2' } },
                { name: 'next', labels: { version: 'v3' } },
              ],
              routes: [
                {
                  name: 'greet',
                  match: { prefix: '/helloworld.Greeter/' },
                  split: [
                    { subset: 'stable', weight: 80 },
                    { subset: 'canary', weight: 20 },
                  ],
                },
                {
                  name: 'beta',
                  match: { headers: [{ name: 'x-user', exact: 'beta' }] },
                  split: [{ subset: 'next', weight: 1 }],
                },
              ],
            },
          },
        ],
      };
      await e.etcdctl('put', `${svc}.config`, JSON.stringify(split));
      const target = `etcd:///${svc}?config=${svc}.config`;
      const env = { ETCD_ENDPOINTS: e.endpoint };

      const run = await grpcLb(
        ['explain', target, '--method', '/helloworld.Greeter/SayHello', '--json'],
        env,
      );
      assert.equal(run.code, 0, run.stderr);
      const out = JSON.parse(run.stdout) as {
        serviceConfigSource: string;
        route: { name: string };
        split: { subset: string; share: number; endpoints: string[]; empty: boolean }[];
      };
      assert.match(
        out.serviceConfigSource,
        new RegExp(`^etcd key ${svc}\\.config \\(revision \\d+\\)$`),
      );
      assert.equal(out.route.name, 'greet');
      assert.deepEqual(
        out.split.map((s) => [s.subset, s.share, s.endpoints, s.empty]),
        [
          ['stable', 80, ['127.0.0.2:5000'], false],
          ['canary', 20, ['127.0.0.3:5000'], false],
        ],
      );

      const beta = await grpcLb(
        ['explain', target, '--method', '/other.Svc/Call', '--header', 'x-user=beta'],
        env,
      );
      assert.equal(beta.code, 0, beta.stderr);
      assert.match(beta.stdout, /^route: +"beta" \(route 2 of 2/m);
      assert.match(
        beta.stdout,
        /^subset "next" is empty|^every subset of the route is empty \("next"\)/m,
      );

      const file = join(dir, 'round-robin.json');
      writeFileSync(file, '{"loadBalancingConfig":[{"round_robin":{}}]}');
      const own = await grpcLb(['explain', target, '--method', '/a.B/C', '--config', file], env);
      assert.equal(own.code, 0, own.stderr);
      assert.match(own.stdout, /^policy: +round_robin$/m);
      assert.match(own.stderr, /^warning: the target carries a service config \(etcd key /m);
    });
  });
});

describe('grpc-lb endpoints: Consul', () => {
  async function register(c: Consul, body: Record<string, unknown>): Promise<void> {
    const result = await c.api('PUT', '/v1/agent/service/register', body);
    assert.equal(result.status, 200, result.body);
  }

  test('passing instances with weight, zone and meta; the KV service config named', async (t) => {
    const c = await consul.get(t);
    if (!c) return;
    await consul.logged(async () => {
      const service = unique('hello');
      await register(c, {
        ID: `${service}-1`,
        Name: service,
        Address: '127.0.0.2',
        Port: 5000,
        Meta: { zone: 'eu-1', version: 'v1' },
        Weights: { Passing: 5, Warning: 1 },
      });
      const kv = await c.api('PUT', `/v1/kv/grpc-lb/${service}`, { loadBalancingConfig: [] });
      assert.equal(kv.status, 200, kv.body);
      const run = await grpcLb(
        ['endpoints', '--json', `consul:///${service}?config=grpc-lb/${service}`],
        { CONSUL_HTTP_ADDR: c.address },
      );
      assert.equal(run.code, 0, run.stderr);
      const out = JSON.parse(run.stdout) as {
        endpoints: { address: string; weight: number; zone: string; labels: object }[];
        serviceConfigSource: string;
      };
      assert.equal(out.endpoints.length, 1);
      assert.equal(out.endpoints[0]!.address, '127.0.0.2:5000');
      assert.equal(out.endpoints[0]!.weight, 5);
      assert.equal(out.endpoints[0]!.zone, 'eu-1');
      assert.equal((out.endpoints[0]!.labels as Record<string, string>)['version'], 'v1');
      assert.match(
        out.serviceConfigSource,
        new RegExp(`^Consul KV grpc-lb/${service} \\(index \\d+\\)$`),
      );
    });
  });

  test('--watch --json: an addition, a removal and the service config document written, as JSON lines; SIGINT exits 0', async (t) => {
    const c = await consul.get(t);
    if (!c) return;
    await consul.logged(async () => {
      const service = unique('watched');
      await register(c, { ID: `${service}-1`, Name: service, Address: '127.0.0.2', Port: 5000 });
      const child = start([
        'endpoints',
        `consul:///${service}?config=grpc-lb/${service}`,
        '--watch',
        '--json',
        '--consul-addr',
        c.url,
      ]);
      const events = () =>
        child
          .stdout()
          .split('\n')
          .filter((l) => l !== '')
          .map(
            (l) =>
              JSON.parse(l) as {
                event: string;
                time: string;
                endpoint?: { address: string };
                serviceConfigSource?: string | null;
              },
          );
      try {
        await waitFor(() => events().some((e) => e.event === 'resolved'), {
          timeoutMs: 15_000,
          message: `the first resolution (stderr: ${child.stderr()})`,
        });
        await register(c, { ID: `${service}-2`, Name: service, Address: '127.0.0.3', Port: 5000 });
        await waitFor(
          () =>
            events().some((e) => e.event === 'added' && e.endpoint?.address === '127.0.0.3:5000'),
          { timeoutMs: 10_000, message: 'the addition' },
        );
        const gone = await c.api('PUT', `/v1/agent/service/deregister/${service}-1`);
        assert.equal(gone.status, 200, gone.body);
        await waitFor(
          () =>
            events().some((e) => e.event === 'removed' && e.endpoint?.address === '127.0.0.2:5000'),
          { timeoutMs: 10_000, message: 'the removal' },
        );
        const kv = await c.api('PUT', `/v1/kv/grpc-lb/${service}`, { loadBalancingConfig: [] });
        assert.equal(kv.status, 200, kv.body);
        await waitFor(
          () =>
            events().some(
              (e) =>
                e.event === 'service-config' &&
                new RegExp(`^Consul KV grpc-lb/${service} \\(index \\d+\\)$`).test(
                  String(e.serviceConfigSource),
                ),
            ),
          { timeoutMs: 10_000, message: 'the service config document written' },
        );
        for (const e of events()) assert.ok(!Number.isNaN(Date.parse(e.time)), e.time);
      } finally {
        child.kill('SIGINT');
      }
      const run = await child.done;
      assert.equal(run.code, 0, run.stderr);
    });
  });
});

describe('grpc-lb endpoints: Consul with ACLs', () => {
  test('a token from --consul-token-file reads the service; a token refused by CONSUL_HTTP_TOKEN is one error line without it, exit 1', async (t) => {
    const c = await aclConsul.get(t);
    if (!c) return;
    await aclConsul.logged(async () => {
      const service = unique('guarded');
      const registered = await c.api('PUT', '/v1/agent/service/register', {
        ID: `${service}-1`,
        Name: service,
        Address: '127.0.0.2',
        Port: 5000,
      });
      assert.equal(registered.status, 200, registered.body);
      const policy = await c.api('PUT', '/v1/acl/policy', {
        Name: service,
        Rules: `service "${service}" { policy = "read" }\nnode_prefix "" { policy = "read" }`,
      });
      assert.equal(policy.status, 200, policy.body);
      const issued = await c.api('PUT', '/v1/acl/token', { Policies: [{ Name: service }] });
      assert.equal(issued.status, 200, issued.body);
      const token = (issued.json as { SecretID: string }).SecretID;
      const tokenFile = join(dir, 'consul-token');
      writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });

      const run = await grpcLb([
        'endpoints',
        `consul:///${service}`,
        '--consul-addr',
        c.address,
        '--consul-token-file',
        tokenFile,
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(
        rows(run.stdout).map((r) => r[0]),
        ['127.0.0.2:5000'],
      );
      assert.ok(!run.stdout.includes(token) && !run.stderr.includes(token));

      const wrong = randomUUID();
      const denied = await grpcLb(
        ['endpoints', `consul:///${service}`, '--consul-addr', c.address, '--timeout', '1'],
        { CONSUL_HTTP_TOKEN: wrong },
      );
      assert.equal(denied.code, 1, denied.stderr);
      assert.equal(denied.stdout, '');
      const lines = denied.stderr.split('\n').filter((l) => l !== '');
      assert.equal(lines.length, 1, denied.stderr);
      assert.match(lines[0]!, /^error: cannot resolve consul:\/\/\/\S+ within 1 s: .*(?:403|ACL)/);
      assert.ok(!denied.stderr.includes(wrong), 'the token is not printed');
      assert.ok(!denied.stderr.includes(MANAGEMENT));
    });
  });
});
