/**
 * test/support/netns.ts: pod-like addresses live only in a network namespace made for the run,
 * which is gone afterwards; the machine's own interfaces never get one.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { waitFor } from './harness';
import { currentTestNetns, listNetns, requireTestNetns, sweepStaleNetns } from './support/netns';
import { createPodAddresses, PodAddressesUnavailableError } from './support/pod-addresses';

const run = promisify(execFile);
const PROBE = path.join(__dirname, 'support', 'netns-probe.js');

function rootAddresses(): string {
  return spawnSync('ip', ['-o', 'addr'], { encoding: 'utf8' }).stdout;
}

test('pod addresses are refused in the root namespace', async () => {
  assert.equal(currentTestNetns(), undefined);
  await assert.rejects(createPodAddresses(1), (error: unknown) => {
    assert.ok(error instanceof PodAddressesUnavailableError);
    assert.match(error.message, /only added inside a test network namespace/);
    return true;
  });
  assert.doesNotMatch(rootAddresses(), /10\.244\./);
});

test('a script re-run in a namespace calls a backend on 10.244.N.x; afterwards nothing is left', async (t) => {
  if (!requireTestNetns(t)) return;
  const { stdout } = await run(process.execPath, [PROBE], { timeout: 60_000 });
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
    netns: string;
    host: string;
    reply: { message: string };
    addr: string;
  };
  assert.match(result.netns, /^grpclb-\d+-\d+-[0-9a-f]+$/);
  assert.match(result.host, /^10\.244\.\d+\.2$/);
  assert.ok(result.reply.message.length > 0);
  // Inside: lo only, with the pod addresses on it.
  assert.match(result.addr, new RegExp(`lo\\s+inet ${result.host.replace(/\./g, '\\.')}/32`));
  assert.doesNotMatch(result.addr, /^\d+: (?!lo)/m);
  // Outside: no 10.244.x on any interface, and the namespace is gone.
  assert.doesNotMatch(rootAddresses(), /10\.244\./);
  assert.ok(!listNetns().includes(result.netns), listNetns().join(', '));
});

test('a run whose parent is killed leaves no process; its namespace is swept by the next run', async (t) => {
  if (!requireTestNetns(t)) return;
  const outer = spawn(process.execPath, [PROBE, '--hang'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: outer.stdout });
  const first = await new Promise<string>((resolve) => lines.once('line', resolve));
  const { netns, pid } = JSON.parse(first) as { netns: string; pid: number };
  assert.ok(listNetns().includes(netns));
  outer.kill('SIGKILL');
  // The copy inside gets its parent-death signal and ends.
  await waitFor(
    () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    },
    { timeoutMs: 10_000, message: `the process inside ${netns} to end` },
  );
  await waitFor(() => sweepStaleNetns().includes(netns) || !listNetns().includes(netns), {
    timeoutMs: 10_000,
    message: `${netns} to be swept`,
  });
  assert.ok(!listNetns().includes(netns));
  assert.doesNotMatch(rootAddresses(), /10\.244\./);
});

test('a server a killed run left running inside its namespace is killed by the next sweep', async (t) => {
  if (!requireTestNetns(t)) return;
  // A run that is gone: its pid names the namespace, and a grandchild (as a kube-apiserver or an
  // etcd started by a test would be) still runs inside, detached from anyone who could stop it.
  const finished = spawnSync(process.execPath, ['-e', '']);
  const deadPid = finished.pid;
  const netns = `grpclb-${deadPid}-1-${Math.floor(Math.random() * 0xffffff)
    .toString(16)
    .padStart(6, '0')}`;
  assert.equal(spawnSync('ip', ['netns', 'add', netns]).status, 0);
  const leftover = spawn('ip', ['netns', 'exec', netns, 'sleep', '600'], {
    detached: true,
    stdio: 'ignore',
  });
  t.after(() => {
    try {
      process.kill(leftover.pid!, 'SIGKILL');
    } catch {
      // Killed by the sweep, as it should be.
    }
    spawnSync('ip', ['netns', 'delete', netns]);
  });
  await waitFor(
    () => spawnSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' }).stdout.trim() !== '',
    { timeoutMs: 10_000, message: `the leftover process to run inside ${netns}` },
  );
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    leftover.once('exit', (_code, signal) => resolve(signal)),
  );
  assert.ok(sweepStaleNetns().includes(netns), `${netns} was not swept`);
  assert.equal(await exited, 'SIGKILL');
  assert.ok(!listNetns().includes(netns));
});
