/**
 * The one-line JSON a run ends with (the last stdout line, for CI), and the stored JSON file's
 * shape. Non-finite numbers become null, as JSON has no Infinity or NaN.
 */
import type { ChartInput, ChartRow } from './chart';
import type { BenchRun } from './run-bench';
import { type ScenarioReport, otherLoad, roundShares } from './results';

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

/** `{"bench":"quick","machine":…,"scenarios":[…],"ratios":{…},"pickNs":{…},"update10kMs":…}` */
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
    updateWeights10kMs: round(run.micro?.updateWeights10kMs, 3),
    bytesPerEndpoint: round(run.micro?.bytesPerEndpoint, 0),
    otherLoadCores: otherLoad([...run.closed, ...run.open, ...run.evenness]),
    targets: Object.fromEntries(run.targets.map((t) => [t.id, t.met])),
    skipped: run.skipped,
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
