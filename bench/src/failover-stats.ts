/**
 * What a failover run measured, from its per-call trace (load-generator.ts `CallTrace`): failed
 * calls and latency over the whole run, before the fault and in a window after it; the faulty
 * backend's share of the answers; a timeline in slices; and the time to recovery. Pure.
 *
 * Calls are placed in time by their COMPLETION: a call in flight on a backend when it is killed
 * fails after the fault, and so belongs to the fault window, although it was sent before.
 */
import type { FailoverTiming, FaultKind } from './failover';
import type { CallTrace } from './load-generator';
import { statusName } from './results';
import { median, percentile, sortedCopy } from './stats';

/** A run's calls: latencies and trace are in the same (completion) order. */
export interface CallLog {
  latenciesMs: ArrayLike<number>;
  trace: CallTrace;
}

export interface WindowStats {
  /** The window, ms into the measured window: calls completing in [fromMs, toMs). */
  fromMs: number;
  toMs: number;
  calls: number;
  failed: number;
  /** Failed calls per status name (DEADLINE_EXCEEDED, UNAVAILABLE, …). */
  failedByStatus: Record<string, number>;
  /** Latency of every call of the window, failed ones included (a hung call costs its deadline). */
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** Share of the successful calls the faulty backend answered; null when none succeeded. */
  badShare: number | null;
}

function badIndex(trace: CallTrace, badBackend: string | null): number {
  return badBackend === null ? -2 : trace.backends.indexOf(badBackend);
}

export function windowStats(
  log: CallLog,
  fromMs: number,
  toMs: number,
  badBackend: string | null,
): WindowStats {
  const { trace } = log;
  const bad = badIndex(trace, badBackend);
  const latencies: number[] = [];
  const failedByCode: Record<number, number> = {};
  let failed = 0;
  let ok = 0;
  let okBad = 0;
  for (let i = 0; i < trace.completedMs.length; i++) {
    const at = trace.completedMs[i]!;
    if (at < fromMs || at >= toMs) continue;
    latencies.push(log.latenciesMs[i]!);
    const code = trace.codes[i]!;
    if (code === 0) {
      ok++;
      if (bad >= 0 && trace.backendIndex[i] === bad) okBad++;
    } else {
      failed++;
      failedByCode[code] = (failedByCode[code] ?? 0) + 1;
    }
  }
  const sorted = sortedCopy(latencies);
  const failedByStatus: Record<string, number> = {};
  for (const [code, count] of Object.entries(failedByCode))
    failedByStatus[statusName(code)] = count;
  return {
    fromMs,
    toMs,
    calls: sorted.length,
    failed,
    failedByStatus,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    p999Ms: percentile(sorted, 0.999),
    maxMs: sorted.length > 0 ? sorted[sorted.length - 1]! : NaN,
    badShare: badBackend === null || ok === 0 ? null : okBad / ok,
  };
}

/** Calls per slice of `bucketMs`, by completion time; the fault falls on a slice boundary. */
export interface Timeline {
  /** Start of the first slice, ms into the measured window (0 ≤ startMs < bucketMs). */
  startMs: number;
  bucketMs: number;
  /** Index of the first slice after the fault. */
  faultBucket: number;
  failed: number[];
  ok: number[];
  /** Successful calls answered by the faulty backend. */
  bad: number[];
}

export function timeline(
  log: CallLog,
  faultAtMs: number,
  bucketMs: number,
  badBackend: string | null,
): Timeline {
  if (!(bucketMs > 0)) throw new RangeError(`bucketMs ${bucketMs} is not positive`);
  const { trace } = log;
  const bad = badIndex(trace, badBackend);
  const before = Math.max(0, Math.floor(faultAtMs / bucketMs));
  const startMs = faultAtMs - before * bucketMs;
  let last = -Infinity;
  for (const at of trace.completedMs) last = Math.max(last, at);
  const buckets = last >= startMs ? Math.floor((last - startMs) / bucketMs) + 1 : 0;
  const result: Timeline = {
    startMs,
    bucketMs,
    faultBucket: before,
    failed: new Array<number>(buckets).fill(0),
    ok: new Array<number>(buckets).fill(0),
    bad: new Array<number>(buckets).fill(0),
  };
  for (let i = 0; i < trace.completedMs.length; i++) {
    const at = trace.completedMs[i]!;
    if (at < startMs) continue;
    const b = Math.floor((at - startMs) / bucketMs);
    if (trace.codes[i] === 0) {
      result.ok[b]!++;
      if (bad >= 0 && trace.backendIndex[i] === bad) result.bad[b]!++;
    } else {
      result.failed[b]!++;
    }
  }
  return result;
}

export interface RecoveryOptions {
  faultAtMs: number;
  /** When the load generator stopped sending, ms into the measured window. */
  issueEndMs: number;
  bucketMs: number;
  /** A failed call sent in the last `tailMs` before `issueEndMs` means "still failing". */
  tailMs: number;
  badBackend: string;
  /** A slice in which the faulty backend answered more than this share is "not yet drained". */
  shareThreshold: number;
  /** Slices with fewer successful calls say nothing about shares. */
  minCalls: number;
}

export interface Recovery {
  /** Fault → completion of the last failed call; null when no call failed after the fault. */
  lastFailureMs: number | null;
  /**
   * Fault → end of the last slice in which the faulty backend still answered more than
   * `shareThreshold` of the successful calls; null when no slice after the fault did.
   */
  shareSettledMs: number | null;
  /** Calls sent in the run's last `tailMs` still failed. */
  stillFailing: boolean;
  /** How many of the calls sent in the run's last `tailMs` failed. */
  tailFailures: number;
  /** The last full slice before the end still had the faulty backend over its threshold. */
  stillOverShare: boolean;
  /**
   * Time to recovery: the later of the two above; 0 when nothing failed after the fault and the
   * faulty backend was under its threshold in every slice (no impact seen, to one slice's
   * resolution); null when not recovered by the end of the run (still failing or over its share).
   */
  recoveryMs: number | null;
}

export function recovery(log: CallLog, options: RecoveryOptions): Recovery {
  const { trace } = log;
  const { faultAtMs, issueEndMs, bucketMs, tailMs } = options;
  let lastFailure = -Infinity;
  let tailFailures = 0;
  for (let i = 0; i < trace.completedMs.length; i++) {
    if (trace.codes[i] === 0) continue;
    const at = trace.completedMs[i]!;
    if (at >= faultAtMs) lastFailure = Math.max(lastFailure, at);
    const sentAt = at - log.latenciesMs[i]!;
    if (sentAt >= Math.max(faultAtMs, issueEndMs - tailMs)) tailFailures++;
  }
  // Full slices after the fault, up to the end of sending.
  const slices = Math.max(0, Math.floor((issueEndMs - faultAtMs) / bucketMs));
  const ok = new Array<number>(slices).fill(0);
  const bad = new Array<number>(slices).fill(0);
  const badAt = badIndex(trace, options.badBackend);
  for (let i = 0; i < trace.completedMs.length; i++) {
    if (trace.codes[i] !== 0) continue;
    const b = Math.floor((trace.completedMs[i]! - faultAtMs) / bucketMs);
    if (b < 0 || b >= slices) continue;
    ok[b]!++;
    if (badAt >= 0 && trace.backendIndex[i] === badAt) bad[b]!++;
  }
  let lastOver = -1;
  for (let b = 0; b < slices; b++) {
    if (ok[b]! >= options.minCalls && bad[b]! / ok[b]! > options.shareThreshold) lastOver = b;
  }
  const lastFailureMs = lastFailure === -Infinity ? null : lastFailure - faultAtMs;
  const shareSettledMs = lastOver < 0 ? null : (lastOver + 1) * bucketMs;
  const stillOverShare = lastOver >= 0 && lastOver === slices - 1;
  const stillFailing = tailFailures > 0;
  return {
    lastFailureMs,
    shareSettledMs,
    stillFailing,
    tailFailures,
    stillOverShare,
    recoveryMs:
      stillFailing || stillOverShare ? null : Math.max(lastFailureMs ?? 0, shareSettledMs ?? 0),
  };
}

/**
 * The load a run put on the backends after the fault, from the backends' own counts of the
 * attempts they received (retries included, which the client's trace does not show) against the
 * calls the client completed in the same time.
 */
export interface RetryLoad {
  /** Calls the client completed after the fault. */
  calls: number;
  failed: number;
  /** Attempts the backends received after the fault: first attempts and retries. */
  attempts: number;
  /** Of them, those the faulty backend received. */
  badAttempts: number;
  /** attempts / calls − 1: the share of extra load retries added (0: none). */
  extraShare: number;
  /**
   * Attempts on the healthy backends over their fair share of the calls (calls × healthy /
   * backends), minus 1: what the faulty backend's retries added to each healthy one.
   */
  healthyExtraShare: number;
}

/** `attempts`: per backend address, the attempts it received after the fault. */
export function retryLoad(
  calls: number,
  failed: number,
  attempts: Readonly<Record<string, number>>,
  badBackend: string,
): RetryLoad {
  const addresses = Object.keys(attempts);
  if (!addresses.includes(badBackend)) {
    throw new RangeError(`no attempt count for the faulty backend ${badBackend}`);
  }
  let total = 0;
  for (const address of addresses) total += attempts[address]!;
  const badAttempts = attempts[badBackend]!;
  const healthyFair = (calls * (addresses.length - 1)) / addresses.length;
  return {
    calls,
    failed,
    attempts: total,
    badAttempts,
    extraShare: calls > 0 ? total / calls - 1 : NaN,
    healthyExtraShare: healthyFair > 0 ? (total - badAttempts) / healthyFair - 1 : NaN,
  };
}

/** One run of one fault under one policy. */
export interface FailoverRound {
  round: number;
  /** When the fault was injected, ms into the measured window (as measured, not as planned). */
  faultAtMs: number;
  /** How long the fault command took to be acknowledged (kill: until the process was gone), ms. */
  faultApplyMs: number;
  /** Calls per second over the whole measured window. */
  rps: number;
  whole: WindowStats;
  before: WindowStats;
  /** Calls completing in [fault, fault + timing.windowMs). */
  window: WindowStats;
  recovery: Recovery;
  timeline: Timeline;
  /** The backends' attempts after the fault (`errors-100` runs only). */
  load?: RetryLoad;
}

export interface FailoverRunInput {
  round: number;
  faultAtMs: number;
  faultApplyMs: number;
  timing: FailoverTiming;
  badBackend: string;
  backends: number;
  /** Wall time from the start of the measured window to its last completion, ms. */
  totalMs: number;
}

/** Slices with fewer successful calls than this are left out of the share analysis. */
const MIN_CALLS_PER_SLICE = 20;

/**
 * The faulty backend counts as drained when it answers at most half its fair share (1/8 of the
 * calls with 4 backends): zero for an ejected or dead backend, small for one a latency-aware
 * policy avoids.
 */
export function shareThreshold(backends: number): number {
  return 0.5 / backends;
}

export function summarizeFailoverRun(log: CallLog, input: FailoverRunInput): FailoverRound {
  const { faultAtMs, timing, badBackend } = input;
  const count = log.trace.completedMs.length;
  return {
    round: input.round,
    faultAtMs,
    faultApplyMs: input.faultApplyMs,
    rps: input.totalMs > 0 ? (count * 1000) / input.totalMs : NaN,
    whole: windowStats(log, 0, Infinity, badBackend),
    before: windowStats(log, 0, faultAtMs, badBackend),
    window: windowStats(log, faultAtMs, faultAtMs + timing.windowMs, badBackend),
    recovery: recovery(log, {
      faultAtMs,
      issueEndMs: timing.durationMs,
      bucketMs: timing.bucketMs,
      tailMs: timing.tailMs,
      badBackend,
      shareThreshold: shareThreshold(input.backends),
      minCalls: MIN_CALLS_PER_SLICE,
    }),
    timeline: timeline(log, faultAtMs, timing.bucketMs, badBackend),
  };
}

/** A fault × policy over every round: medians for the headline, each round kept. */
export interface FailoverReport {
  /** `failover-<fault>` */
  name: string;
  fault: FaultKind;
  faultTitle: string;
  policy: string;
  policyTitle: string;
  badBackend: string;
  backends: number;
  concurrency: number;
  deadlineMs: number;
  timing: FailoverTiming;
  rounds: FailoverRound[];
  median: {
    rps: number;
    failed: number;
    p99Ms: number;
    p99BeforeMs: number;
    windowFailed: number;
    windowP50Ms: number;
    windowP99Ms: number;
    windowP999Ms: number;
    /** null: no round saw a successful call in the window. */
    windowBadShare: number | null;
    /** null: not recovered in the median round (a round not recovered counts as infinitely late). */
    recoveryMs: number | null;
    /** Failed calls among those sent in the run's last `timing.tailMs`. */
    tailFailures: number;
  };
  recoveredRounds: number;
  /** Failed calls per status over every round. */
  failedByStatus: Record<string, number>;
  /** Medians over rounds of their `load`, when every round measured it. */
  load?: RetryLoad;
}

/**
 * Median of times to recovery where null means "never": the median of the values with null as
 * +∞ (for an even count, the mean of the middle two, so one "never" among them makes it null).
 */
export function medianRecovery(values: readonly (number | null)[]): number | null {
  if (values.length === 0) return null;
  const sorted = values.map((v) => v ?? Infinity).sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const value =
    sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return Number.isFinite(value) ? value : null;
}

export type FailoverMeta = Omit<
  FailoverReport,
  'rounds' | 'median' | 'recoveredRounds' | 'failedByStatus' | 'load'
>;

/** Each field of the rounds' loads, its median over the rounds. */
function medianLoad(loads: readonly RetryLoad[]): RetryLoad {
  const of = (field: keyof RetryLoad) => median(loads.map((l) => l[field]));
  return {
    calls: of('calls'),
    failed: of('failed'),
    attempts: of('attempts'),
    badAttempts: of('badAttempts'),
    extraShare: of('extraShare'),
    healthyExtraShare: of('healthyExtraShare'),
  };
}

export function aggregateFailover(
  meta: FailoverMeta,
  rounds: readonly FailoverRound[],
): FailoverReport {
  const failedByStatus: Record<string, number> = {};
  for (const r of rounds) {
    for (const [name, count] of Object.entries(r.whole.failedByStatus)) {
      failedByStatus[name] = (failedByStatus[name] ?? 0) + count;
    }
  }
  const shares = rounds.map((r) => r.window.badShare).filter((v): v is number => v !== null);
  const loads = rounds.map((r) => r.load).filter((l): l is RetryLoad => l !== undefined);
  return {
    ...meta,
    rounds: [...rounds],
    median: {
      rps: median(rounds.map((r) => r.rps)),
      failed: median(rounds.map((r) => r.whole.failed)),
      p99Ms: median(rounds.map((r) => r.whole.p99Ms)),
      p99BeforeMs: median(rounds.map((r) => r.before.p99Ms)),
      windowFailed: median(rounds.map((r) => r.window.failed)),
      windowP50Ms: median(rounds.map((r) => r.window.p50Ms)),
      windowP99Ms: median(rounds.map((r) => r.window.p99Ms)),
      windowP999Ms: median(rounds.map((r) => r.window.p999Ms)),
      windowBadShare: shares.length > 0 ? median(shares) : null,
      recoveryMs: medianRecovery(rounds.map((r) => r.recovery.recoveryMs)),
      tailFailures: median(rounds.map((r) => r.recovery.tailFailures)),
    },
    recoveredRounds: rounds.filter((r) => r.recovery.recoveryMs !== null).length,
    failedByStatus,
    ...(loads.length > 0 && loads.length === rounds.length ? { load: medianLoad(loads) } : {}),
  };
}
