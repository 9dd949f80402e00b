/**
 * Network namespaces for tests that need pod-like (non-loopback) addresses.
 *
 * The Kubernetes API refuses loopback addresses in EndpointSlices, so the Kubernetes tests, the
 * k8s-rolling-update example and the bench's Kubernetes convergence group run their backends on
 * 10.244.N.x. Those addresses never go on the machine's own interfaces: the whole process (with
 * the kube-apiserver, its etcd, the backends and the client it starts) runs inside a network
 * namespace made for that run, whose only interface is its own `lo`. Nothing the run sends can
 * leave the namespace, and nothing is added to the root namespace.
 *
 * A namespace is named `grpclb-<pid>-<n>-<random>` (unique per process, so test files running in
 * parallel never collide), has `lo` up, and is deleted when the run ends: by the process that made
 * it once its child exits, by an `exit` handler, and — for one left behind by a process that was
 * killed — by the next run's sweep (a `grpclb-<pid>-…` namespace whose pid is gone; what still runs
 * inside it is killed). The child is started with a parent-death signal (`setpriv --pdeathsig`), so it does
 * not outlive a parent that was killed.
 *
 * Entering: Node cannot move a running process into a namespace, so the process re-executes
 * itself under `ip netns exec` (same Node, same flags, same arguments, `GRPC_LB_NETNS=<name>` in
 * its environment) and passes its exit status on:
 *   - a `node:test` file imports './support/enter-netns' as its FIRST import (synchronous, before
 *     node:test loads, so the re-executed copy is the only one that reports);
 *   - a script calls `await reexecInTestNetns()` first thing in its main;
 *   - a worker is started with `spawnInTestNetns()`.
 * Creating namespaces needs root and iproute2's `ip`. Without them nothing is re-executed and
 * `testNetnsUnavailableReason()` says why; callers skip with that reason, or fail under CI=true.
 */
import { type ChildProcess, spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { findBinary } from './system-tools';

/** The environment variable that names the namespace a re-executed process runs in. */
export const NETNS_ENV = 'GRPC_LB_NETNS';
const PREFIX = 'grpclb-';
const NAME_PATTERN = /^grpclb-(\d+)-\d+-[0-9a-f]+$/;

export class NetnsUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetnsUnavailableError';
  }
}

export interface TestNetns {
  readonly name: string;
  /** Deletes the namespace (idempotent). Processes still inside keep it alive until they exit. */
  remove(): void;
}

let serial = 0;
const made = new Set<string>();
process.on('exit', () => {
  for (const name of made) deleteNetns(name);
});

function ipBinary(): string {
  const ip = findBinary('ip');
  if (!ip) throw new NetnsUnavailableError('`ip` (iproute2) is not installed');
  return ip;
}

function ipSync(args: readonly string[]): { ok: boolean; stdout: string; stderr: string } {
  const result = spawnSync(ipBinary(), args, { encoding: 'utf8' });
  return {
    ok: result.status === 0,
    stdout: result.stdout ?? '',
    stderr: (result.stderr ?? '').trim() || (result.error?.message ?? ''),
  };
}

function deleteNetns(name: string): void {
  made.delete(name);
  const ip = findBinary('ip');
  if (ip) spawnSync(ip, ['netns', 'delete', name], { stdio: 'ignore' });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Names of the namespaces in `ip netns list` (its lines look like `name (id: 3)` or `name`). */
export function listNetns(): string[] {
  const listed = ipSync(['netns', 'list']);
  if (!listed.ok) return [];
  return listed.stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name !== '');
}

/**
 * Deletes the test namespaces that a killed run left behind: named by a pid that no longer runs.
 * Whatever still runs inside one (a kube-apiserver, an etcd or a backend the killed run started:
 * the parent-death signal reaches only the run's direct child) is killed first: nothing but a
 * test run ever starts processes in a `grpclb-<pid>-…` namespace, and its run is gone. Returns
 * their names.
 */
export function sweepStaleNetns(): string[] {
  const swept: string[] = [];
  for (const name of listNetns()) {
    const match = NAME_PATTERN.exec(name);
    if (!match || made.has(name) || pidAlive(Number(match[1]))) continue;
    const pids = ipSync(['netns', 'pids', name]);
    if (!pids.ok) continue;
    for (const pid of pids.stdout.split(/\s+/).filter((p) => /^\d+$/.test(p))) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    deleteNetns(name);
    swept.push(name);
  }
  return swept;
}

/** A new namespace with its `lo` up. Throws `NetnsUnavailableError` when it cannot be made. */
export function createTestNetns(): TestNetns {
  ipBinary(); // throws when `ip` is missing
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new NetnsUnavailableError('creating a network namespace needs root');
  }
  sweepStaleNetns();
  const name = `${PREFIX}${process.pid}-${++serial}-${randomBytes(3).toString('hex')}`;
  const added = ipSync(['netns', 'add', name]);
  if (!added.ok) throw new NetnsUnavailableError(`ip netns add ${name} failed: ${added.stderr}`);
  made.add(name);
  const up = ipSync(['-n', name, 'link', 'set', 'lo', 'up']);
  if (!up.ok) {
    deleteNetns(name);
    throw new NetnsUnavailableError(`ip -n ${name} link set lo up failed: ${up.stderr}`);
  }
  return { name, remove: () => deleteNetns(name) };
}

/**
 * For a test that will start something which makes its own namespace (an example, a bench
 * group): true when a namespace can be made here; otherwise `t.skip()` with the reason and false —
 * except with CI=true, where it throws.
 */
export function requireTestNetns(t: { skip(message?: string): void }): boolean {
  try {
    createTestNetns().remove();
    return true;
  } catch (error) {
    if (process.env['CI'] === 'true') throw error;
    t.skip(error instanceof Error ? error.message : String(error));
    return false;
  }
}

/** Same inode and device: `a` and `b` name the same namespace. */
function sameNamespace(a: string, b: string): boolean {
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.ino === y.ino && x.dev === y.dev;
  } catch {
    return false;
  }
}

/** Decided once, when this module loads (the namespace's file is deleted when the run ends). */
const inside: string | undefined = (() => {
  const name = process.env[NETNS_ENV];
  if (!name || !NAME_PATTERN.test(name)) return undefined;
  return sameNamespace('/proc/self/ns/net', `/run/netns/${name}`) ? name : undefined;
})();

/** The test namespace this process runs in (verified, not only read from the environment). */
export function currentTestNetns(): string | undefined {
  return inside;
}

let unavailableReason: string | undefined;

/** Why this process is not in a test namespace (set when entering one failed), else undefined. */
export function testNetnsUnavailableReason(): string | undefined {
  if (inside) return undefined;
  if (unavailableReason) return unavailableReason;
  const claimed = process.env[NETNS_ENV];
  return claimed
    ? `${NETNS_ENV}=${claimed} is set but this process is not in that namespace`
    : 'this process was not started in a test network namespace';
}

/**
 * `command args` as run inside namespace `name`: through `ip netns exec`, with a parent-death
 * signal when `setpriv` is there (a child whose parent was killed is terminated, not orphaned).
 */
function netnsCommand(name: string, command: string, args: readonly string[]): [string, string[]] {
  const setpriv = findBinary('setpriv');
  const inner = setpriv ? [setpriv, '--pdeathsig', 'TERM', command, ...args] : [command, ...args];
  return [ipBinary(), ['netns', 'exec', name, ...inner]];
}

function envFor(name: string, env: NodeJS.ProcessEnv | undefined): NodeJS.ProcessEnv {
  return { ...(env ?? process.env), [NETNS_ENV]: name };
}

/** This process's command line: the same Node with the same flags and arguments. */
function selfCommand(): [string, string[]] {
  return [process.execPath, [...process.execArgv, ...process.argv.slice(1)]];
}

function exitCode(status: number | null, signal: NodeJS.Signals | null): number {
  if (status !== null) return status;
  const numbers: Record<string, number> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return 128 + (signal ? (numbers[signal] ?? 1) : 1);
}

/**
 * For `node:test` files (through enter-netns.ts): unless already inside a test namespace, makes
 * one, runs this same process again inside it (blocking), deletes it and exits with the copy's
 * status. Returns — without re-executing — when already inside, or when no namespace can be made
 * (the reason is kept for `testNetnsUnavailableReason()`).
 */
export function reexecInTestNetnsSync(): void {
  if (inside) return;
  let netns: TestNetns;
  try {
    netns = createTestNetns();
  } catch (error) {
    unavailableReason = error instanceof Error ? error.message : String(error);
    return;
  }
  const [command, args] = netnsCommand(netns.name, ...selfCommand());
  const result = spawnSync(command, args, { stdio: 'inherit', env: envFor(netns.name, undefined) });
  netns.remove();
  if (result.error) {
    process.stderr.write(`could not run in ${netns.name}: ${result.error.message}\n`);
    process.exit(1);
  }
  process.exit(exitCode(result.status, result.signal));
}

/**
 * Starts `command args` inside a new namespace, deleted when the child exits. Throws
 * `NetnsUnavailableError` when no namespace can be made.
 */
export function spawnInTestNetns(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): { child: ChildProcess; netns: TestNetns } {
  const netns = createTestNetns();
  const [ip, ipArgs] = netnsCommand(netns.name, command, args);
  let child: ChildProcess;
  try {
    child = spawn(ip, ipArgs, { ...options, env: envFor(netns.name, options.env) });
  } catch (error) {
    netns.remove();
    throw error;
  }
  child.once('exit', () => netns.remove());
  child.once('error', () => netns.remove());
  return { child, netns };
}

/**
 * For scripts: unless already inside a test namespace, runs this same process again inside a new
 * one (stdio shared; SIGINT and SIGTERM passed on), then exits with its status — it never returns
 * then. Returns the namespace's name when this process is the copy inside. Throws
 * `NetnsUnavailableError` when no namespace can be made.
 */
export async function reexecInTestNetns(): Promise<string> {
  if (inside) return inside;
  const { child } = spawnInTestNetns(...selfCommand(), { stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const code = await new Promise<number>((resolve) => {
    child.once('error', (error) => {
      process.stderr.write(`could not run in a test network namespace: ${error.message}\n`);
      resolve(1);
    });
    child.once('exit', (status, signal) => resolve(exitCode(status, signal)));
  });
  process.exit(code);
}
