/**
 * The one-line JSON a run ends with (the last stdout line, for CI), and the stored JSON file's
 * shape. Non-finite numbers become null, as JSON has no Infinity or NaN.
 */
import type { ChartInput, ChartRow } from './chart';
import type { ConvergenceReport } from './convergence-stats';
import type { FailoverReport } from './failover-stats';
import type { CalibrationMedians, GhzCalibrationReport } from './ghz';
import type { BenchRun } from './bench-run';
import { type ScenarioReport, otherLoad, roundShares } from './results';
import { fleetSummary } from './fleet';
import type { MetricsCostReport, Spread } from './metrics-cost';
import type { StartupSkewReport } from './startup-skew';

function round(value: number | null | undefined, digits: number): number | null {
  if (value === null || value === undefined || !Number.isFinite(value)) return null;
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

export interface SummaryScenario {
  name: string;
  mode: 'closed' | 'open';
  rps: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  errors: number;
  perBackend: Record<string, number>;
  maxMinShare: number | null;
}

function scenarioSummary(report: ScenarioReport): SummaryScenario {
  return {
    name: report.name,
    mode: report.mode,
    rps: round(report.median.rps, 1),
    p50Ms: round(report.median.p50Ms, 3),
    p99Ms: round(report.median.p99Ms, 3),
    errors: report.errors,
    perBackend: report.perBackend,
    maxMinShare: round(roundShares(report).maxMinShare, 4),
  };
}

export interface SummaryFailover {
  fault: string;
  policy: string;
  rounds: number;
  /** Medians over rounds (whole run). */
  failedCalls: number | null;
  /** Failed calls per status, summed over rounds. */
  failedByStatus: Record<string, number>;
  p99Ms: number | null;
  p99BeforeMs: number | null;
  /** In the window after the fault. */
  windowFailedCalls: number | null;
  windowP50Ms: number | null;
  windowP99Ms: number | null;
  windowP999Ms: number | null;
  /** Share of the window's successful calls answered by the faulty backend. */
  faultyShare: number | null;
  /** null: not recovered by the end of the run (median round). */
  recoveryMs: number | null;
  recoveredRounds: number;
  /** Failed calls among those sent in the run's last 1.25 s (what "not recovered" rests on). */
  tailFailedCalls: number | null;
}

function failoverSummary(report: FailoverReport): SummaryFailover {
  const m = report.median;
  return {
    fault: report.fault,
    policy: report.policy,
    rounds: report.rounds.length,
    failedCalls: round(m.failed, 1),
    failedByStatus: report.failedByStatus,
    p99Ms: round(m.p99Ms, 3),
    p99BeforeMs: round(m.p99BeforeMs, 3),
    windowFailedCalls: round(m.windowFailed, 1),
    windowP50Ms: round(m.windowP50Ms, 3),
    windowP99Ms: round(m.windowP99Ms, 3),
    windowP999Ms: round(m.windowP999Ms, 3),
    faultyShare: round(m.windowBadShare, 4),
    recoveryMs: round(m.recoveryMs, 1),
    recoveredRounds: report.recoveredRounds,
    tailFailedCalls: round(m.tailFailures, 1),
  };
}

export interface SummaryConvergence {
  /** `convergence-dns`, `convergence-etcd`, `convergence-k8s`, `convergence-consul`. */
  name: string;
  resolver: string;
  /** `grpc-lb` (our resolver) or `grpc-js` (the built-in `dns:`, for comparison). */
  client: string;
  rounds: number;
  /** DNS (ours): the configured re-resolution interval. */
  intervalMs: number | null;
  /** Registry change → first call answered by the new endpoint, over rounds (null: not converged). */
  firstCallMsP50: number | null;
  firstCallMsP99: number | null;
  firstCallMsMax: number | null;
  firstCallConverged: number;
  /** Removal → last call answered by the removed endpoint (null when it never got a call). */
  lastCallMsP50: number | null;
  lastCallMsP99: number | null;
  lastCallMsMax: number | null;
  lastCallConverged: number;
  failedCalls: number;
  failedByStatus: Record<string, number>;
  calls: number;
  /** Whether the new endpoint got any call while registered (false: the built-in dns: never looks). */
  sawNewEndpoint: boolean;
  targetMs: number | null;
  met: boolean | null;
}

function convergenceSummary(report: ConvergenceReport): SummaryConvergence {
  // A backend that never got a call has no last call to measure.
  const last = (value: number) => (report.sawNewEndpoint ? round(value, 1) : null);
  return {
    name: report.name,
    resolver: report.resolver,
    client: report.client,
    rounds: report.rounds.length,
    intervalMs: report.intervalMs,
    firstCallMsP50: round(report.firstCall.p50Ms, 1),
    firstCallMsP99: round(report.firstCall.p99Ms, 1),
    firstCallMsMax: round(report.firstCall.maxMs, 1),
    firstCallConverged: report.firstCall.converged,
    lastCallMsP50: last(report.lastCall.p50Ms),
    lastCallMsP99: last(report.lastCall.p99Ms),
    lastCallMsMax: last(report.lastCall.maxMs),
    lastCallConverged: report.sawNewEndpoint ? report.lastCall.converged : 0,
    failedCalls: report.failedCalls,
    failedByStatus: report.failedByStatus,
    calls: report.calls,
    sawNewEndpoint: report.sawNewEndpoint,
    targetMs: report.goal?.thresholdMs ?? null,
    met: report.goal?.met ?? null,
  };
}

export interface SummaryGhzSide {
  rps: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  /** Summed over rounds. */
  errors: number;
  /** Load generator CPU per call, µs. */
  clientCpuUs: number | null;
}

export interface SummaryGhz {
  ghzVersion: string;
  rounds: number;
  concurrency: number;
  durationMs: number;
  /** Medians over rounds. */
  ghz: SummaryGhzSide;
  ours: SummaryGhzSide;
  /** Ours / ghz, the median of the per-round ratios: ≈ 1 when both measure the same thing. */
  ratios: { rps: number | null; p50: number | null; p99: number | null };
}

function ghzSummary(report: GhzCalibrationReport): SummaryGhz {
  const side = (m: CalibrationMedians, errors: number): SummaryGhzSide => ({
    rps: round(m.rps, 1),
    p50Ms: round(m.p50Ms, 3),
    p99Ms: round(m.p99Ms, 3),
    errors,
    clientCpuUs: round(m.clientCpuUs, 1),
  });
  return {
    ghzVersion: report.ghzVersion,
    rounds: report.rounds.length,
    concurrency: report.concurrency,
    durationMs: report.durationMs,
    ghz: side(report.median.ghz, report.errors.ghz),
    ours: side(report.median.ours, report.errors.ours),
    ratios: {
      rps: round(report.ratios.rps, 4),
      p50: round(report.ratios.p50, 4),
      p99: round(report.ratios.p99, 4),
    },
  };
}

export interface SummaryStartup {
  /** `grpc-lb-round_robin` or `grpc-js-round_robin`. */
  client: string;
  backends: number;
  /** 0: the connections completed together (loopback); else the i-th backend's i × this ms later. */
  staggerMs: number;
  rounds: number;
  /** Calls sent at once on each new channel. */
  calls: number;
  /** The largest share of the calls: mean and worst over rounds, and each round's. */
  largestShareMean: number | null;
  largestShareWorst: number | null;
  largestShares: (number | null)[];
  /** The largest share of the most even split. */
  evenShare: number | null;
  idleBackendsMean: number | null;
  idleBackendsWorst: number | null;
  failedCalls: number;
  /** From the first send to the last answer, ms: mean and worst over rounds. */
  elapsedMsMean: number | null;
  elapsedMsWorst: number | null;
}

function startupSummary(report: StartupSkewReport): SummaryStartup {
  return {
    client: report.client,
    backends: report.backends,
    staggerMs: report.staggerMs,
    rounds: report.rounds.length,
    calls: report.calls,
    largestShareMean: round(report.largestShare.mean, 4),
    largestShareWorst: round(report.largestShare.worst, 4),
    largestShares: report.rounds.map((r) => round(r.largestShare, 4)),
    evenShare: round(report.evenShare, 4),
    idleBackendsMean: round(report.idleBackends.mean, 2),
    idleBackendsWorst: report.idleBackends.worst,
    failedCalls: report.failedCalls,
    elapsedMsMean: round(report.elapsedMs?.mean ?? null, 1),
    elapsedMsWorst: round(report.elapsedMs?.worst ?? null, 1),
  };
}

function metricsCostSummary(report: MetricsCostReport): Record<string, unknown> {
  const spread = (s: Spread | null) =>
    s === null ? null : { median: round(s.median, 4), min: round(s.min, 4), max: round(s.max, 4) };
  return {
    rounds: report.rounds.length,
    onRps: round(report.onRps, 0),
    offRps: round(report.offRps, 0),
    rpsRatio: spread(report.rpsRatio),
    cpuRatio: spread(report.cpuRatio),
    costPercent: round(report.costPercent, 2),
    goalPercent: report.goalPercent,
    met: report.met,
    conclusive: report.conclusive,
    failedCalls: report.failedCalls,
  };
}

/** `{"bench":"quick","machine":…,"scenarios":[…],"ratios":{…},"pickNs":{…},"update10kMs":…,"failover":[…],"convergence":[…],"startup":[…],"ghz":{…}|null,"failed":[…]}` */
export function summaryLine(run: BenchRun): Record<string, unknown> {
  const ratios: Record<string, number | null> = {};
  for (const [key, value] of Object.entries(run.ratios)) {
    ratios[key] = typeof value === 'number' ? round(value, 4) : null;
  }
  const pickNs: Record<string, number | null> = {};
  for (const [key, value] of Object.entries(run.micro?.pickNs ?? {})) pickNs[key] = round(value, 1);
  return {
    bench: run.bench,
    date: run.date,
    durationS: run.durationS,
    machine: run.machine,
    scenarios: [...run.closed, ...run.evenness].map(scenarioSummary),
    openLoop: run.open.map(scenarioSummary),
    ratios,
    pickNs,
    update10kMs: round(run.micro?.update10kMs, 3),
    updateDiff10kMs: round(run.micro?.updateDiff10kMs, 3),
    applied10kMs: run.micro?.applied10kMs
      ? {
          first: round(run.micro.applied10kMs.first, 3),
          diff: round(run.micro.applied10kMs.diff, 3),
        }
      : null,
    updateWeights10kMs: round(run.micro?.updateWeights10kMs, 3),
    bytesPerEndpoint: round(run.micro?.bytesPerEndpoint, 0),
    metricsCallNs: run.micro?.metricsCallNs
      ? {
          on: round(run.micro.metricsCallNs.on, 1),
          off: round(run.micro.metricsCallNs.off, 1),
        }
      : null,
    otherLoadCores: otherLoad([...run.closed, ...run.open, ...run.evenness]),
    targets: Object.fromEntries(run.targets.map((t) => [t.id, t.met])),
    skipped: run.skipped,
    failover: run.failover.map(failoverSummary),
    convergence: (run.convergence ?? []).map(convergenceSummary),
    startup: (run.startup ?? []).map(startupSummary),
    metricsCost: run.metricsCost ? metricsCostSummary(run.metricsCost) : null,
    fleet: run.fleet ? fleetSummary(run.fleet) : null,
    ghz: run.ghz ? ghzSummary(run.ghz) : null,
    failed: run.failed ?? [],
  };
}

/** The stored JSON: everything but the raw latency samples (the merged summary keeps the shape). */
export function resultsJson(run: BenchRun): string {
  return `${JSON.stringify(run, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2)}\n`;
}

/** Throughput and p99 of the closed-loop scenarios, and the shares of the evenness cases. */
export function chartInput(run: BenchRun): ChartInput {
  const evennessCase = (r: ScenarioReport): boolean =>
    r.expectedShares === null && r.shares.backends > 1;
  const row = (r: ScenarioReport): ChartRow => {
    const shares = roundShares(r);
    return {
      name: r.name,
      rps: r.median.rps,
      p99Ms: r.median.p99Ms,
      ...(evennessCase(r)
        ? { maxMinShare: shares.maxMinShare, idleBackends: shares.idleBackends }
        : {}),
    };
  };
  const m = run.machine;
  return {
    title: `grpc-lb bench, ${run.date} (${run.bench})`,
    subtitle:
      `closed loop, ${run.settings.concurrency} calls in flight, median of ${run.closed[0]?.rounds.length ?? 0} ` +
      `interleaved rounds; ${m.cores} cores (${m.cpuModel}), node ${m.node}, grpc-js ${m.grpcJs}`,
    rows: [...run.closed.map(row), ...run.evenness.map(row)],
  };
}
