/**
 * From raw runs to a scenario's report: one summary per round, medians across rounds (the headline
 * numbers), and every round's samples merged for the ghz-style histogram and percentiles.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { LoadMode } from './load-generator';
import type { ScenarioDef } from './scenarios';
import { type ShareAnalysis, analyzeShares, maxShareErrorPp } from './shares';
import { type LatencySummary, addCounts, median, summarize } from './stats';
import type { RunResult } from './worker-protocol';

/** One run of a scenario, with the CPU the other processes used during its measured window. */
export interface RunRecord {
  round: number;
  result: RunResult;
  /** CPU of the proxy (NaN when the scenario has none), ms. */
  proxyCpuMs: number;
  /** CPU of all backends, ms. */
  backendCpuMs: number;
  /** CPU the whole machine used (every process), ms, and the window's wall time, ms. */
  machineCpuMs: number;
  windowMs: number;
}

export interface RoundSummary {
  round: number;
  count: number;
  totalMs: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** CPU per call, µs: load generator (client), proxy, backends. */
  clientCpuUs: number;
  proxyCpuUs: number | null;
  backendCpuUs: number;
  maxSendLagMs: number;
  meanSendLagMs: number;
  /** How this round's calls spread over the scenario's backends. */
  shares: ShareAnalysis;
  /**
   * Cores' worth of CPU used by processes outside the run (other work on the machine) during
   * the window: a noise indicator. null when /proc is unreadable.
   */
  otherCores: number | null;
}

export interface ScenarioReport {
  name: string;
  title: string;
  mode: LoadMode;
  concurrency: number;
  /** Open loop only. */
  rate: number | null;
  channels: number;
  proxy: string | null;
  rounds: RoundSummary[];
  /** Rounds disturbed by other load on the machine, not used in medians and ratios. */
  discardedRounds: RoundSummary[];
  median: {
    rps: number;
    p50Ms: number;
    p99Ms: number;
    clientCpuUs: number;
    proxyCpuUs: number | null;
    backendCpuUs: number;
  };
  /** All rounds' samples together. */
  merged: LatencySummary;
  /** Responses per status name ("OK", "UNAVAILABLE", …). */
  statusCounts: Record<string, number>;
  perBackend: Record<string, number>;
  shares: ShareAnalysis;
  expectedShares: Record<string, number> | null;
  /** Weighted scenarios: the largest |actual − configured| share, percentage points. */
  shareErrorPp: number | null;
  errors: number;
  errorSamples: string[];
}

export function statusName(code: string | number): string {
  const name = (GrpcStatus as unknown as Record<number, string | undefined>)[Number(code)];
  return name ?? `code ${code}`;
}

function errorsOf(statusCounts: Readonly<Record<string, number>>): number {
  let errors = 0;
  for (const [code, count] of Object.entries(statusCounts)) if (code !== '0') errors += count;
  return errors;
}

function perCallUs(cpuMs: number, calls: number): number {
  return calls > 0 ? (cpuMs * 1000) / calls : NaN;
}

function nullIfNaN(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

export function summarizeRound(
  record: RunRecord,
  expectedBackends: readonly string[],
): RoundSummary {
  const { result } = record;
  const summary = summarize(result.latenciesMs, result.totalMs);
  return {
    round: record.round,
    count: summary.count,
    totalMs: result.totalMs,
    rps: summary.rps,
    p50Ms: summary.percentiles.p50,
    p99Ms: summary.percentiles.p99,
    errors: errorsOf(result.statusCounts),
    clientCpuUs: perCallUs(result.clientCpuMs, summary.count),
    proxyCpuUs: nullIfNaN(perCallUs(record.proxyCpuMs, summary.count)),
    backendCpuUs: perCallUs(record.backendCpuMs, summary.count),
    maxSendLagMs: result.maxSendLagMs,
    meanSendLagMs: result.meanSendLagMs,
    shares: analyzeShares(result.perBackend, expectedBackends),
    otherCores: nullIfNaN(
      Math.max(
        0,
        (record.machineCpuMs -
          result.clientCpuMs -
          (Number.isFinite(record.proxyCpuMs) ? record.proxyCpuMs : 0) -
          record.backendCpuMs) /
          record.windowMs,
      ),
    ),
  };
}

export interface ScenarioSettings {
  mode: LoadMode;
  concurrency: number;
  rate: number | null;
}

/**
 * `records` are the rounds the medians and merged samples use; `discarded` are rounds left out
 * because other processes disturbed them (kept in the report, flagged).
 */
export function aggregate(
  def: ScenarioDef,
  settings: ScenarioSettings,
  records: readonly RunRecord[],
  discarded: readonly RunRecord[] = [],
): ScenarioReport {
  const rounds = records.map((record) => summarizeRound(record, def.backends));
  const samples = records.reduce((n, r) => n + r.result.latenciesMs.length, 0);
  const all = new Float64Array(samples);
  let offset = 0;
  let totalMs = 0;
  const codes: Record<string, number> = {};
  const perBackend: Record<string, number> = {};
  const errorSamples: string[] = [];
  for (const { result } of records) {
    all.set(result.latenciesMs, offset);
    offset += result.latenciesMs.length;
    totalMs += result.totalMs;
    addCounts(codes, result.statusCounts);
    addCounts(perBackend, result.perBackend);
    for (const sample of result.errorSamples) {
      if (errorSamples.length < 5) errorSamples.push(sample);
    }
  }
  const statusCounts: Record<string, number> = {};
  for (const [code, count] of Object.entries(codes)) statusCounts[statusName(code)] = count;
  const proxyCpu = rounds.map((r) => r.proxyCpuUs).filter((v): v is number => v !== null);
  return {
    name: def.name,
    title: def.title,
    mode: settings.mode,
    concurrency: settings.concurrency,
    rate: settings.rate,
    channels: def.channels,
    proxy: def.proxy,
    rounds,
    discardedRounds: discarded.map((record) => summarizeRound(record, def.backends)),
    median: {
      rps: median(rounds.map((r) => r.rps)),
      p50Ms: median(rounds.map((r) => r.p50Ms)),
      p99Ms: median(rounds.map((r) => r.p99Ms)),
      clientCpuUs: median(rounds.map((r) => r.clientCpuUs)),
      proxyCpuUs: proxyCpu.length > 0 ? median(proxyCpu) : null,
      backendCpuUs: median(rounds.map((r) => r.backendCpuUs)),
    },
    merged: summarize(all, totalMs),
    statusCounts,
    perBackend,
    shares: analyzeShares(perBackend, def.backends),
    expectedShares: def.expectedShares ?? null,
    shareErrorPp: def.expectedShares ? maxShareErrorPp(perBackend, def.expectedShares) : null,
    errors: errorsOf(codes),
    errorSamples,
  };
}

/** Cores' worth of CPU other processes used during the measured windows: median and max. */
export function otherLoad(
  reports: readonly ScenarioReport[],
): { median: number; max: number } | null {
  const values = reports
    .flatMap((r) => r.rounds.map((round) => round.otherCores))
    .filter((v): v is number => v !== null);
  if (values.length === 0) return null;
  return { median: median(values), max: Math.max(...values) };
}

/**
 * Evenness as one client saw it: each round is a fresh client process, so the per-round shares
 * are what a client gets (an L4 proxy may pin each round's connection to a different backend,
 * and merged rounds would hide that). Medians over rounds; max/min is null (infinite) if any
 * round left a backend idle.
 */
export function roundShares(report: ScenarioReport): ShareAnalysis {
  if (report.rounds.length === 0) return report.shares;
  const rounds = report.rounds.map((r) => r.shares);
  const maxMin = rounds.map((r) => r.maxMinShare);
  return {
    backends: report.shares.backends,
    calls: report.shares.calls,
    maxMinShare: maxMin.some((v) => v === null) ? null : median(maxMin as number[]),
    busiestShare: median(rounds.map((r) => r.busiestShare)),
    idleBackends: median(rounds.map((r) => r.idleBackends)),
  };
}

/** The most other load any run of the round saw, in cores (0 when not measurable). */
export function roundOtherLoad(records: readonly RunRecord[]): number {
  let worst = 0;
  for (const record of records) {
    const other = summarizeRound(record, []).otherCores;
    if (other !== null) worst = Math.max(worst, other);
  }
  return worst;
}
