/**
 * The operators' tools the seeds use, built from Go modules (test/testbin/ghz, test/testbin/grpcurl),
 * against real harness backends — so a number or a reply from them can be compared with ours:
 * - ghz drives a fixed number of calls and reports them (count, status codes); the backend's own
 *   counters agree, and a backend failing half its calls shows up as exactly that many UNAVAILABLE;
 * - grpcurl calls SayHello and the health service from the .proto files, and sees a health change.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { protoDirectory, startBackends, type BackendSet } from './harness';
import { run } from './support/server-process';
import { requireTestbin, type TestbinBuild } from './support/testbin';

interface GhzReport {
  count: number;
  rps: number;
  average: number;
  statusCodeDistribution: Record<string, number>;
  errorDistribution?: Record<string, number> | null;
}

let backends: BackendSet | undefined;
before(async () => {
  backends = await startBackends({ count: 2 });
});
after(async () => {
  await backends?.stopAll();
});

async function ghz(build: TestbinBuild, address: string, ...args: string[]): Promise<GhzReport> {
  const output = await run(
    build.binaries['ghz']!,
    [
      '--insecure',
      '--import-paths',
      protoDirectory(),
      '--proto',
      'greeter.proto',
      '--call',
      'grpclb.test.Greeter.SayHello',
      '-d',
      '{"name":"ghz"}',
      '--format',
      'json',
      ...args,
      address,
    ],
    { timeoutMs: 60_000 },
  );
  return JSON.parse(output) as GhzReport;
}

async function grpcurl(
  build: TestbinBuild,
  address: string,
  proto: string,
  method: string,
  data: unknown,
): Promise<unknown> {
  const output = await run(build.binaries['grpcurl']!, [
    '-plaintext',
    '-import-path',
    protoDirectory(),
    '-proto',
    proto,
    '-d',
    JSON.stringify(data),
    address,
    method,
  ]);
  return JSON.parse(output);
}

describe('ghz built from Go modules', () => {
  test('drives a fixed number of calls; the backend counts the same', async (t) => {
    const build = await requireTestbin(t, 'ghz');
    if (!build) return;
    const [first, second] = backends!.backends as [
      BackendSet['backends'][number],
      BackendSet['backends'][number],
    ];
    await first.resetStats();
    await second.resetStats();
    const report = await ghz(build, first.address, '-n', '400', '-c', '8');
    assert.equal(report.count, 400);
    assert.deepEqual(report.statusCodeDistribution, { OK: 400 });
    assert.ok(report.rps > 0 && report.average > 0, `rps ${report.rps}, average ${report.average}`);
    assert.equal((await first.stats()).calls.SayHello, 400);
    assert.equal((await second.stats()).totalCalls, 0, 'one address: nothing reaches the other');
  });

  test('counts failed calls by status code (unlike h2load)', async (t) => {
    const build = await requireTestbin(t, 'ghz');
    if (!build) return;
    const backend = backends!.backends[1]!;
    await backend.setFailRate(0.5);
    try {
      const report = await ghz(build, backend.address, '-n', '200', '-c', '4');
      assert.equal(report.count, 200);
      // The harness fails exactly every second call.
      assert.deepEqual(report.statusCodeDistribution, { OK: 100, Unavailable: 100 });
    } finally {
      await backend.setFailRate(0);
    }
  });
});

describe('grpcurl built from Go modules', () => {
  test('calls SayHello from the .proto and reads the reply as JSON', async (t) => {
    const build = await requireTestbin(t, 'grpcurl');
    if (!build) return;
    const backend = backends!.backends[0]!;
    const reply = await grpcurl(
      build,
      backend.address,
      'greeter.proto',
      'grpclb.test.Greeter/SayHello',
      {
        name: 'eric',
      },
    );
    assert.deepEqual(reply, {
      message: 'Hello eric',
      backend: 'backend-1',
      address: backend.address,
    });
  });

  test('sees a health change through grpc.health.v1.Health/Check', async (t) => {
    const build = await requireTestbin(t, 'grpcurl');
    if (!build) return;
    const backend = backends!.backends[1]!;
    const check = (): Promise<unknown> =>
      grpcurl(build, backend.address, 'health.proto', 'grpc.health.v1.Health/Check', {
        service: 'grpclb.test.Greeter',
      });
    assert.deepEqual(await check(), { status: 'SERVING' });
    await backend.setHealth('NOT_SERVING', 'grpclb.test.Greeter');
    try {
      assert.deepEqual(await check(), { status: 'NOT_SERVING' });
    } finally {
      await backend.setHealth('SERVING', 'grpclb.test.Greeter');
    }
  });
});
