/**
 * The failover phase: 4 fresh backends (each answering in BASE_DELAY_MS), and for every round,
 * fault and policy one load-worker run (closed loop, the bench's concurrency, 1 s deadline) with
 * the fault injected into backend-2 at a fixed time into the measured window. The worker records
 * every call (completion time, status, backend); the fault time is taken on the same clock
 * (performance.timeOrigin + performance.now() in both processes). After each run the faulty
 * backend is healed (restarted if it was killed) for the next one.
 */
import { type Backend, type BackendSet, startBackends } from '@grpc-lb/test/harness';
import type { BenchOptions } from './args';
import {
  BASE_DELAY_MS,
  FAILOVER_BACKENDS,
  FAILOVER_DEADLINE_MS,
  FAULTS,
  FAULTY_INDEX,
  FAULT_TITLES,
  POLICIES,
  type FailoverPolicy,
  type FailoverTiming,
  type FaultKind,
  SLOW_DELAY_MS,
  failoverPolicies,
  failoverTiming,
  failoverWanted,
  faultScenarioName,
} from './failover';
import {
  type FailoverReport,
  type FailoverRound,
  aggregateFailover,
  retryLoad,
  summarizeFailoverRun,
  windowStats,
} from './failover-stats';
import type { Resources } from './resources';
import type { LoadSpec } from './worker-protocol';
import { runLoadInWorker } from './worker-process';

type Log = (line: string) => void;

const READY_TIMEOUT_MS = 10_000;

export interface FailoverContext {
  options: BenchOptions;
  log: Log;
  resources: Resources;
  profileDir: string;
}

interface Planned {
  fault: FaultKind;
  policy: FailoverPolicy;
}

function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

async function inject(fault: FaultKind, backend: Backend): Promise<void> {
  switch (fault) {
    case 'sigkill':
      await backend.kill();
      return;
    case 'hang':
      await backend.hang(true);
      return;
    case 'errors-50':
      await backend.setFailRate(0.5);
      return;
    case 'errors-100':
      await backend.setFailRate(1);
      return;
    case 'slow-10x':
      await backend.setDelay(SLOW_DELAY_MS);
      return;
  }
}

/** Back to a healthy backend with the base service time, whatever was done to it. */
async function heal(backend: Backend): Promise<void> {
  if (!backend.isRunning) await backend.restart();
  await backend.hang(false);
  await backend.setFailRate(0);
  await backend.setDelay(BASE_DELAY_MS);
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function ms(value: number | null): string {
  return value === null || !Number.isFinite(value) ? 'n/a' : `${value.toFixed(0)} ms`;
}

function statusText(byStatus: Readonly<Record<string, number>>): string {
  const entries = Object.entries(byStatus);
  return entries.length === 0 ? '' : ` (${entries.map(([s, n]) => `${s} ${n}`).join(', ')})`;
}

async function runOne(
  ctx: FailoverContext,
  set: BackendSet,
  planned: Planned,
  round: number,
  timing: FailoverTiming,
): Promise<FailoverRound> {
  const { options } = ctx;
  const { fault, policy } = planned;
  const bad = set.backends[FAULTY_INDEX]!;
  const countsAttempts = fault === 'errors-100';
  const spec: LoadSpec = {
    scenario: `${faultScenarioName(fault)}:${policy.name}`,
    target: policy.target,
    channelOptions: policy.channelOptions,
    channels: 1,
    mode: 'closed',
    concurrency: options.concurrency,
    rate: options.rate,
    count: null,
    durationMs: timing.durationMs,
    warmupMs: options.warmupMs,
    deadlineMs: FAILOVER_DEADLINE_MS,
    readyTimeoutMs: READY_TIMEOUT_MS,
    trace: true,
  };
  const profile = options.cpuProf
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${ctx.profileDir}`,
        `--cpu-prof-name=${spec.scenario.replace(/[^A-Za-z0-9_.+-]/g, '_')}-round${round}.cpuprofile`,
      ]
    : [];
  let timer: NodeJS.Timeout | undefined;
  let faultEpochMs: number | undefined;
  let faultApplyMs = NaN;
  /** Settles with the injection's error, or null; never rejects (it may settle before awaited). */
  let injected: Promise<unknown> | undefined;
  const result = await runLoadInWorker(spec, {
    execArgv: profile,
    timeoutMs:
      options.warmupMs + READY_TIMEOUT_MS + timing.durationMs + FAILOVER_DEADLINE_MS + 60_000,
    onWindow: (phase, atEpochMs) => {
      if (phase !== 'start' || injected !== undefined) return;
      // The worker's window started at atEpochMs; the fault is due faultAtMs after that.
      const elapsed = atEpochMs === undefined ? 0 : Math.max(0, epochNow() - atEpochMs);
      injected = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.max(0, timing.faultAtMs - elapsed));
      })
        .then(async () => {
          // Attempts are counted by the backends from here (the client sees calls, not retries).
          if (countsAttempts) await Promise.all(set.backends.map((b) => b.resetStats()));
          faultEpochMs = epochNow();
          await inject(fault, bad);
          faultApplyMs = epochNow() - faultEpochMs;
        })
        .then(
          () => null,
          (error: unknown) => error,
        );
    },
  }).finally(() => {
    // Normally long fired (the run outlasts faultAtMs); if not, the check below reports it.
    if (faultEpochMs === undefined) clearTimeout(timer);
  });
  if (faultEpochMs === undefined || injected === undefined) {
    throw new Error(`failover ${spec.scenario}: the fault was not injected during the run`);
  }
  const injectionError = await injected;
  if (injectionError !== null) {
    throw new Error(
      `failover ${spec.scenario}: injecting the fault failed: ${describeError(injectionError)}`,
    );
  }
  if (result.trace === undefined || result.windowStartEpochMs === undefined) {
    throw new Error(`failover ${spec.scenario}: the worker sent no call trace`);
  }
  const log = { latenciesMs: result.latenciesMs, trace: result.trace };
  const faultAtMs = faultEpochMs - result.windowStartEpochMs;
  const summary = summarizeFailoverRun(log, {
    round,
    faultAtMs,
    faultApplyMs,
    timing,
    badBackend: bad.address,
    backends: set.backends.length,
    totalMs: result.totalMs,
  });
  if (!countsAttempts) return summary;
  const attempts: Record<string, number> = {};
  for (const b of set.backends) attempts[b.address] = (await b.stats()).totalCalls;
  const after = windowStats(log, faultAtMs, Infinity, bad.address);
  return { ...summary, load: retryLoad(after.calls, after.failed, attempts, bad.address) };
}

function signed(share: number): string {
  return `${share >= 0 ? '+' : ''}${(share * 100).toFixed(1)} %`;
}

function runLine(planned: Planned, r: FailoverRound): string {
  const recovery =
    r.recovery.recoveryMs === null
      ? `not recovered (${r.recovery.stillFailing ? 'still failing' : 'still answering its share'})`
      : `recovered in ${ms(r.recovery.recoveryMs)}`;
  const share = r.window.badShare === null ? 'n/a' : `${(r.window.badShare * 100).toFixed(1)} %`;
  return (
    `${faultScenarioName(planned.fault)} × ${planned.policy.name}: ${r.whole.calls} calls, ` +
    `${r.rps.toFixed(0)} rps, failed ${r.whole.failed}${statusText(r.whole.failedByStatus)}; ` +
    `fault at ${r.faultAtMs.toFixed(0)} ms: window p99 ${ms(r.window.p99Ms)}, ` +
    `faulty backend's share ${share}, ${recovery}` +
    (r.load === undefined
      ? ''
      : `; after the fault ${r.load.calls} calls made ${r.load.attempts} attempts ` +
        `(${signed(r.load.extraShare)}), healthy backends ` +
        `${signed(r.load.healthyExtraShare)} over their share`)
  );
}

export async function failoverPhase(ctx: FailoverContext): Promise<FailoverReport[]> {
  const { options, log, resources } = ctx;
  if (options.failoverRounds === 0) return [];
  const policyNames = Object.values(POLICIES);
  if (!FAULTS.some((f) => policyNames.some((p) => failoverWanted(options.scenarios, f, p)))) {
    return [];
  }
  const timing = failoverTiming(options.quick);
  log(`starting ${FAILOVER_BACKENDS} backends for the failover scenarios`);
  const set = await startBackends({ count: FAILOVER_BACKENDS });
  const stop = resources.add('failover backends', () => set.stopAll());
  try {
    const policies = failoverPolicies(
      set.backends.map((b) => ({ address: b.address, host: b.host, port: b.port, labels: {} })),
    );
    const plan: Planned[] = [];
    for (const fault of FAULTS) {
      for (const policy of policies) {
        if (
          policy.faults.includes(fault) &&
          failoverWanted(options.scenarios, fault, policy.name)
        ) {
          plan.push({ fault, policy });
        }
      }
    }
    if (plan.length === 0) return [];
    const bad = set.backends[FAULTY_INDEX]!;
    log(
      `failover: ${plan.length} fault × policy runs × ${options.failoverRounds} round(s); ` +
        `${timing.durationMs / 1000} s each, fault at ${timing.faultAtMs / 1000} s into backend ` +
        `${bad.name} (${bad.address})`,
    );
    for (const backend of set.backends) await backend.setDelay(BASE_DELAY_MS);
    const rounds: FailoverRound[][] = plan.map(() => []);
    for (let round = 1; round <= options.failoverRounds; round++) {
      for (const [i, planned] of plan.entries()) {
        try {
          const summary = await runOne(ctx, set, planned, round, timing);
          rounds[i]!.push(summary);
          log(`[failover ${round}] ${runLine(planned, summary)}`);
        } finally {
          await heal(bad);
        }
      }
    }
    return plan.map((planned, i) =>
      aggregateFailover(
        {
          name: faultScenarioName(planned.fault),
          fault: planned.fault,
          faultTitle: FAULT_TITLES[planned.fault],
          policy: planned.policy.name,
          policyTitle: planned.policy.title,
          badBackend: bad.address,
          backends: set.backends.length,
          concurrency: options.concurrency,
          deadlineMs: FAILOVER_DEADLINE_MS,
          timing,
        },
        rounds[i]!,
      ),
    );
  } finally {
    await stop();
  }
}
