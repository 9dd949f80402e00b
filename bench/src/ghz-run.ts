/**
 * The ghz calibration phase: one fresh harness backend, the `direct` scenario (one channel,
 * pick_first), and for each round one ghz run and one run of our load worker against it, same
 * concurrency, same duration, one connection each; the order alternates between rounds. ghz is the
 * pinned build of test/testbin (`ensureTestbin('ghz')`): when it cannot be had the group is
 * skipped with the reason — or, with CI=true, failed.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { type BackendSet, protoDirectory, startBackends } from '@grpc-lb/test/harness';
import { type TestbinBuild, ensureTestbin } from '@grpc-lb/test/support/testbin';
import type { BenchOptions } from './args';
import {
  type CalibrationRound,
  type CalibrationSide,
  GHZ_CALIBRATION,
  type GhzCalibrationReport,
  type GhzResult,
  type GhzRunCpu,
  aggregateCalibration,
  ghzArgs,
  ghzSide,
  ghzWanted,
  oursSide,
  parseGhzReport,
  waitedChildrenTicks,
} from './ghz';
import { cpuMsOf, machineBusyMs, ticksPerSecond } from './proc-cpu';
import { type RunRecord, statusName, summarizeRound } from './results';
import type { Resources } from './resources';
import { NAMES, type ScenarioDef, mainScenarios } from './scenarios';
import { addCounts } from './stats';
import { type Outcome, recordUnavailable } from './unavailable';

type Log = (line: string) => void;

export interface GhzContext {
  options: BenchOptions;
  log: Log;
  resources: Resources;
}

/** Runs the `direct` scenario once through our load worker (run-bench.ts's runOnce). */
export type RunDirect = (
  def: ScenarioDef,
  backends: BackendSet,
  round: number,
) => Promise<RunRecord>;

/** The same per-call deadline as the other closed-loop scenarios. */
export const GHZ_DEADLINE_MS = 10_000;
/** Beyond its duration, ghz must be done within this (start, dial, the calls in flight). */
const GHZ_GRACE_MS = 30_000;
const STDERR_TAIL_CHARS = 8_000;
/** Printed by the shell after ghz exits, before its own /proc/<pid>/stat line (see runGhz). */
const CPU_MARK = '@@ghz-calibration-cpu ';
/**
 * Runs ghz ("$0" "$@"), then prints the shell's /proc stat line, whose cutime/cstime are then
 * exactly the CPU ghz used; exits with ghz's status.
 */
const SHELL_SCRIPT =
  `"$0" "$@"; status=$?; { echo; printf '%s' '${CPU_MARK}'; cat /proc/$$/stat; } >&2 2>/dev/null; ` +
  'exit $status';

/** Process groups of the ghz runs still going, killed if the bench exits first. */
const live = new Set<number>();
process.on('exit', () => {
  for (const pgid of live) killGroup(pgid);
});

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

interface GhzOutput {
  result: GhzResult;
  cpu: GhzRunCpu;
}

/**
 * One ghz run, in its own process group (so a timeout or Ctrl-C takes ghz down with its shell),
 * with the backend's and the machine's CPU read around it.
 */
async function runGhz(
  ctx: GhzContext,
  binary: string,
  args: readonly string[],
  backendPids: () => number[],
  timeoutMs: number,
): Promise<GhzOutput> {
  const backendStart = cpuMsOf(backendPids());
  const machineStart = machineBusyMs();
  const started = performance.now();
  const child = spawn('/bin/sh', ['-c', SHELL_SCRIPT, binary, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const pgid = child.pid;
  if (pgid !== undefined) live.add(pgid);
  let exited = false;
  const kill = async (): Promise<void> => {
    if (!exited && pgid !== undefined) killGroup(pgid);
    await Promise.resolve();
  };
  const stopOnExit = ctx.resources.add('ghz', kill);
  const stdout: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_TAIL_CHARS);
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void kill();
  }, timeoutMs);
  const status = await new Promise<{ code: number | null; signal: string | null }>(
    (resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => resolve({ code, signal }));
    },
  ).finally(() => {
    exited = true;
    clearTimeout(timer);
    if (pgid !== undefined) live.delete(pgid);
  });
  await stopOnExit();
  const wallMs = performance.now() - started;
  const backendCpuMs = cpuMsOf(backendPids()) - backendStart;
  const machineCpuMs = machineBusyMs() - machineStart;

  const mark = stderr.lastIndexOf(CPU_MARK);
  const statLine = mark < 0 ? '' : (stderr.slice(mark + CPU_MARK.length).split('\n')[0] ?? '');
  const ghzStderr = (mark < 0 ? stderr : stderr.slice(0, mark)).trim();
  let ghzCpuMs = NaN;
  try {
    ghzCpuMs = (waitedChildrenTicks(statLine) * 1000) / ticksPerSecond();
  } catch {
    // No /proc: CPU per call is reported as n/a.
  }
  const how = timedOut
    ? `killed after ${timeoutMs} ms`
    : `exit ${status.code ?? status.signal ?? '?'}`;
  let result: GhzResult;
  try {
    result = parseGhzReport(Buffer.concat(stdout).toString('utf8'));
  } catch (error) {
    throw new Error(
      `ghz failed (${how}): ${describeError(error)}${ghzStderr ? `\n${ghzStderr}` : ''}`,
    );
  }
  if (timedOut || status.code !== 0) {
    throw new Error(`ghz failed (${how})${ghzStderr ? `: ${ghzStderr}` : ''}`);
  }
  return { result, cpu: { ghzCpuMs, backendCpuMs, machineCpuMs, wallMs } };
}

const f = (value: number | null, digits: number): string =>
  value === null || !Number.isFinite(value) ? 'n/a' : value.toFixed(digits);

function sideLine(who: string, s: CalibrationSide): string {
  return (
    `${who}: ${s.count} calls, ${f(s.rps, 0)} rps, p50 ${f(s.p50Ms, 3)} ms, p99 ${f(s.p99Ms, 3)} ms, ` +
    `errors ${s.errors}, client ${f(s.clientCpuUs, 0)} µs/call, backend ${f(s.backendCpuUs, 0)} ` +
    `µs/call, other load ${f(s.otherCores, 2)} cores`
  );
}

/**
 * ghz from the testbin cache (built with Go when missing). Without it: skipped, or under CI=true
 * failed; either way with the reason.
 */
async function findGhz(
  ctx: GhzContext,
  skipped: Outcome[],
  failed: Outcome[],
): Promise<TestbinBuild | undefined> {
  try {
    return await ensureTestbin('ghz');
  } catch (error) {
    const reason = `ghz unavailable: ${describeError(error).slice(0, 2000)}`;
    recordUnavailable(ctx.log, GHZ_CALIBRATION, reason, skipped, failed);
    return undefined;
  }
}

async function calibrate(
  ctx: GhzContext,
  ghz: TestbinBuild,
  runDirect: RunDirect,
): Promise<GhzCalibrationReport> {
  const { options, log, resources } = ctx;
  const binary = ghz.binaries['ghz'];
  if (!binary) throw new Error('the ghz testbin build has no ghz binary');
  log(`starting 1 backend for ${GHZ_CALIBRATION}`);
  const backends = await startBackends({ count: 1 });
  const stop = resources.add(`${GHZ_CALIBRATION} backend`, () => backends.stopAll());
  try {
    const backend = backends.backends[0]!;
    const def = mainScenarios({
      backends: [{ address: backend.address, host: backend.host, port: backend.port, labels: {} }],
      nginxPort: null,
      haproxyH2Port: null,
      haproxyTcpPort: null,
    }).find((s) => s.name === NAMES.direct);
    if (!def) throw new Error('no direct scenario');
    const args = (durationMs: number) =>
      ghzArgs({
        protoDir: protoDirectory(),
        address: backend.address,
        concurrency: options.concurrency,
        durationMs,
        deadlineMs: GHZ_DEADLINE_MS,
      });
    const backendPids = () => backends.backends.map((b) => b.pid);
    const timeout = (durationMs: number) => durationMs + GHZ_DEADLINE_MS + GHZ_GRACE_MS;
    log(
      `${GHZ_CALIBRATION}: ghz ${ghz.version} vs our load worker on ${backend.address}, ` +
        `${options.concurrency} calls in flight on one connection each, ` +
        `${options.ghzRounds} round(s) of ${options.durationMs / 1000} s`,
    );
    if (options.warmupMs > 0) {
      // Our worker warms up in every run; ghz's runs have none, so the backend gets one here.
      await runGhz(ctx, binary, args(options.warmupMs), backendPids, timeout(options.warmupMs));
    }
    const rounds: CalibrationRound[] = [];
    const statusCounts = { ghz: {} as Record<string, number>, ours: {} as Record<string, number> };
    const errorSamples = { ghz: [] as string[], ours: [] as string[] };
    for (let round = 1; round <= options.ghzRounds; round++) {
      const first = round % 2 === 1 ? 'ghz' : 'ours';
      let ghzResult: CalibrationSide | undefined;
      let oursResult: CalibrationSide | undefined;
      const runGhzSide = async () => {
        const out = await runGhz(
          ctx,
          binary,
          args(options.durationMs),
          backendPids,
          timeout(options.durationMs),
        );
        ghzResult = ghzSide(out.result, out.cpu);
        addCounts(statusCounts.ghz, out.result.statusCounts);
        for (const s of out.result.errorSamples) {
          if (errorSamples.ghz.length < 5) errorSamples.ghz.push(s);
        }
        log(`[${GHZ_CALIBRATION} ${round}] ${sideLine('ghz', ghzResult)}`);
      };
      const runOurs = async () => {
        const record = await runDirect(def, backends, round);
        oursResult = oursSide(summarizeRound(record, def.backends));
        for (const [code, n] of Object.entries(record.result.statusCounts)) {
          addCounts(statusCounts.ours, { [statusName(code)]: n });
        }
        for (const s of record.result.errorSamples) {
          if (errorSamples.ours.length < 5) errorSamples.ours.push(s);
        }
        log(`[${GHZ_CALIBRATION} ${round}] ${sideLine('ours', oursResult)}`);
      };
      if (first === 'ghz') {
        await runGhzSide();
        await runOurs();
      } else {
        await runOurs();
        await runGhzSide();
      }
      rounds.push({ round, first, ghz: ghzResult!, ours: oursResult! });
    }
    return aggregateCalibration(
      {
        ghzVersion: ghz.version,
        // The proto dir relative to where the bench runs (the repository root, for npm run bench).
        ghzCommand: ['ghz', ...args(options.durationMs)]
          .map((a) => (a === protoDirectory() ? path.relative(process.cwd(), a) || '.' : a))
          .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a}'`))
          .join(' '),
        ourTarget: def.target,
        backend: backend.address,
        concurrency: options.concurrency,
        durationMs: options.durationMs,
        warmupMs: options.warmupMs,
        deadlineMs: GHZ_DEADLINE_MS,
      },
      rounds,
      statusCounts,
      errorSamples,
    );
  } finally {
    await stop();
  }
}

/**
 * The group, or null when it did not run (not selected, `--no-ghz`, skipped or failed: the reason
 * is in `skipped` or `failed`). A failure of the group does not stop the bench; the CLI exits
 * non-zero at the end.
 */
export async function ghzPhase(
  ctx: GhzContext,
  runDirect: RunDirect,
  skipped: Outcome[],
  failed: Outcome[],
): Promise<GhzCalibrationReport | null> {
  const { options, log } = ctx;
  if (options.ghzRounds === 0 || !ghzWanted(options.scenarios)) return null;
  const ghz = await findGhz(ctx, skipped, failed);
  if (!ghz) return null;
  log(
    `ghz ${ghz.version}: ${ghz.binaries['ghz']} (${ghz.cached ? 'cached' : `built in ${ghz.buildMs} ms`})`,
  );
  try {
    const report = await calibrate(ctx, ghz, runDirect);
    const r = report.ratios;
    log(
      `[${GHZ_CALIBRATION}] ours / ghz (median of per-round ratios): rps ${f(r.rps, 3)}, ` +
        `p50 ${f(r.p50, 3)}, p99 ${f(r.p99, 3)}`,
    );
    return report;
  } catch (error) {
    const reason = describeError(error);
    failed.push({ name: GHZ_CALIBRATION, reason });
    log(`FAILED ${GHZ_CALIBRATION}: ${reason}`);
    return null;
  }
}
