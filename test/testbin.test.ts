/**
 * The Go-built test servers as the shell and other tests use them (test/support/testbin-cli.ts,
 * `npm run testbin -- …`):
 * - `versions` ends with the one JSON line of pinned versions, as each binary reports it;
 * - `start` leaves a server running after the command exits and `stop` ends it by PID and
 *   removes its dirs (Consul; kube-apiserver with its etcd 3.6);
 * - a server that cannot start fails with its log's tail, and its dir and log are kept.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { startConsul } from './support/consul';
import { httpRequest, pidAlive, run, ServerStartError } from './support/server-process';
import { requireTestbin, TESTBIN } from './support/testbin';

const CLI = join(__dirname, 'support', 'testbin-cli.js');

async function cli(...args: string[]): Promise<string[]> {
  const output = await run(process.execPath, [CLI, ...args], { timeoutMs: 30 * 60_000 });
  return output.trim().split('\n');
}

describe('npm run testbin', () => {
  test('versions: the last line is the pinned versions, as the binaries report them', async (t) => {
    for (const module of ['consul', 'kube-apiserver', 'etcd', 'grpcurl', 'ghz'] as const) {
      if (!(await requireTestbin(t, module))) return;
    }
    const lines = await cli('versions');
    const last = JSON.parse(lines.at(-1)!) as Record<string, string>;
    assert.deepEqual(last, {
      consul: TESTBIN.consul.version,
      kubeApiserver: TESTBIN['kube-apiserver'].version,
      etcd: TESTBIN.etcd.version,
      grpcurl: TESTBIN.grpcurl.version,
      ghz: TESTBIN.ghz.version,
    });
    assert.deepEqual(Object.values(last), ['1.22.6', '1.36.3', '3.6.16', '1.9.4', '0.121.0']);
  });

  test('start consul outlives the command; stop ends it by PID and removes its dir', async (t) => {
    if (!(await requireTestbin(t, 'consul'))) return;
    const started = JSON.parse((await cli('start', 'consul')).at(-1)!) as {
      dir: string;
      pids: number[];
      url: string;
    };
    try {
      assert.equal(started.pids.length, 1);
      assert.ok(pidAlive(started.pids[0]!), 'consul runs after `start` exited');
      const leader = await httpRequest(`${started.url}/v1/status/leader`);
      assert.equal(leader.status, 200);
      assert.ok(existsSync(join(started.dir, 'consul.log')));
    } finally {
      const stopped = JSON.parse((await cli('stop', started.dir)).at(-1)!) as { pids: number[] };
      assert.deepEqual(stopped.pids, started.pids);
    }
    assert.equal(pidAlive(started.pids[0]!), false, 'consul is gone after `stop`');
    assert.equal(existsSync(started.dir), false, 'its dir is removed');
  });

  test('start kube-apiserver brings its etcd; stop ends both and removes both dirs', async (t) => {
    if (!(await requireTestbin(t, 'kube-apiserver')) || !(await requireTestbin(t, 'etcd'))) return;
    const started = JSON.parse((await cli('start', 'kube-apiserver')).at(-1)!) as {
      dir: string;
      dirs: string[];
      pids: number[];
      url: string;
      kubeconfig: string;
      caFile: string;
    };
    const kubeconfig = JSON.parse(readFileSync(started.kubeconfig, 'utf8')) as {
      users: { user: { 'client-certificate': string; 'client-key': string } }[];
    };
    const admin = kubeconfig.users[0]!.user;
    try {
      assert.equal(started.pids.length, 2, 'kube-apiserver and etcd');
      assert.ok(started.pids.every(pidAlive));
      const ready = await httpRequest(`${started.url}/readyz`, {
        ca: readFileSync(started.caFile),
        cert: readFileSync(admin['client-certificate']),
        key: readFileSync(admin['client-key']),
      });
      assert.equal(ready.status, 200);
      assert.equal(ready.body, 'ok');
    } finally {
      await cli('stop', started.dir);
    }
    for (const pid of started.pids) assert.equal(pidAlive(pid), false, `pid ${pid} is gone`);
    assert.equal(started.dirs.length, 2);
    for (const dir of started.dirs) assert.equal(existsSync(dir), false, `${dir} is removed`);
  });

  test('a server that cannot start fails with its log, and keeps its dir', async (t) => {
    if (!(await requireTestbin(t, 'consul'))) return;
    const error = await startConsul({ hcl: ['ports { http = "not a port" }'] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof ServerStartError, `a ServerStartError, not ${String(error)}`);
    try {
      assert.equal(error.server, 'consul');
      assert.match(error.message, /exited \(code 1/);
      assert.match(error.log, /'ports.http' expected type 'int'/);
      assert.ok(existsSync(error.logFile), 'the log is kept');
    } finally {
      rmSync(dirname(error.logFile), { recursive: true, force: true });
    }
  });
});
