/**
 * The metrics-cost group: what core's OpenTelemetry metrics cost per call. Two grpc-lb round
 * robin clients over the same backends, one registered with a real SDK MeterProvider (metrics ON)
 * and one without (OFF), each a fresh worker process, alternated in rounds (ON first in odd
 * rounds, OFF first in even ones). Pure: the per-round numbers come in, the report goes out.
 */
import { median } from './stats';

export const METRICS_COST = 'metrics-cost';
/** The goal: metrics cost under this share of throughput. */
export const METRICS_COST_GOAL_PERCENT = 2;

export function metricsCostWanted(scenarios: readonly string[] | null): boolean {
  return scenarios === null || scenarios.includes(METRICS_COST);
}

/** One client's run in one round. */
export interface MetricsCostRun {
  rps: number;
  /** Client CPU per call in the measured window, µs. */
  cpuUsPerCall: number;
  errors: number;
}

export interface MetricsCostRound {
  round: number;
  on: MetricsCostRun;
  off: MetricsCostRun;
}

/** Median of a set of per-round values and their spread (smallest, largest). */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface MetricsCostReport {
  rounds: MetricsCostRound[];
  onRps: number;
  offRps: number;
  /** Per-round throughput ratio ON / OFF: median (the headline) and spread. */
  rpsRatio: Spread | null;
  /** Per-round client CPU per call ratio ON / OFF. */
  cpuRatio: Spread | null;
  /** (1 − median throughput ratio) × 100: the throughput lost to metrics, %; negative = none seen. */
  costPercent: number | null;
  goalPercent: number;
  /** costPercent < goalPercent; null without a ratio. */
  met: boolean | null;
  /**
   * Whether the rounds agree closely enough to read `met`: at least `MIN_CONCLUSIVE_ROUNDS`
   * rounds, whose per-round throughput ratios span (max − min) no more than the goal. On a busy machine they span far more, and only the
   * direction over many rounds (or the client CPU per call) says anything.
   */
  conclusive: boolean;
  failedCalls: number;
}

/** Below this many rounds there is no spread to judge a verdict by (`--quick` runs one). */
export const MIN_CONCLUSIVE_ROUNDS = 3;

/** Median and spread of finite values; null when there is none. */
export function spreadOf(values: readonly number[]): Spread | null {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return null;
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite) };
}

/** Per-round ratios a / b (a round with b ≤ 0 gives none). */
export function pairedRatios(pairs: readonly (readonly [number, number])[]): number[] {
  return pairs.filter(([, b]) => b > 0).map(([a, b]) => a / b);
}

export function aggregateMetricsCost(rounds: readonly MetricsCostRound[]): MetricsCostReport {
  const rpsRatio = spreadOf(pairedRatios(rounds.map((r) => [r.on.rps, r.off.rps])));
  const cpuRatio = spreadOf(
    pairedRatios(rounds.map((r) => [r.on.cpuUsPerCall, r.off.cpuUsPerCall])),
  );
  const costPercent = rpsRatio === null ? null : (1 - rpsRatio.median) * 100;
  return {
    rounds: [...rounds],
    onRps: rounds.length > 0 ? median(rounds.map((r) => r.on.rps)) : NaN,
    offRps: rounds.length > 0 ? median(rounds.map((r) => r.off.rps)) : NaN,
    rpsRatio,
    cpuRatio,
    costPercent,
    goalPercent: METRICS_COST_GOAL_PERCENT,
    met: costPercent === null ? null : costPercent < METRICS_COST_GOAL_PERCENT,
    conclusive:
      rounds.length >= MIN_CONCLUSIVE_ROUNDS &&
      rpsRatio !== null &&
      (rpsRatio.max - rpsRatio.min) * 100 <= METRICS_COST_GOAL_PERCENT,
    failedCalls: rounds.reduce((sum, r) => sum + r.on.errors + r.off.errors, 0),
  };
}

function spreadText(s: Spread | null): string {
  return s === null ? 'n/a' : `${s.median.toFixed(3)}× (${s.min.toFixed(3)}–${s.max.toFixed(3)})`;
}

/** The group's lines for the report. */
export function formatMetricsCost(report: MetricsCostReport): string {
  const lines = [
    `metrics cost (grpc-lb round robin, metrics ON = SDK MeterProvider vs OFF), ` +
      `${report.rounds.length} round(s):`,
    ...report.rounds.map(
      (r) =>
        `  round ${r.round}: ON ${r.on.rps.toFixed(0)} rps ${r.on.cpuUsPerCall.toFixed(1)} µs/call, ` +
        `OFF ${r.off.rps.toFixed(0)} rps ${r.off.cpuUsPerCall.toFixed(1)} µs/call, ` +
        `ratio ${(r.off.rps > 0 ? r.on.rps / r.off.rps : NaN).toFixed(3)}`,
    ),
    `  throughput ON/OFF ${spreadText(report.rpsRatio)} (median, min–max over rounds); ` +
      `client CPU per call ON/OFF ${spreadText(report.cpuRatio)}`,
    `  cost ${report.costPercent === null ? 'n/a' : `${report.costPercent.toFixed(1)} %`} of ` +
      `throughput, goal < ${report.goalPercent} %: ` +
      `${report.met === null ? 'not measured' : report.met ? 'met' : 'missed'}` +
      (report.met !== null && !report.conclusive
        ? report.rounds.length < MIN_CONCLUSIVE_ROUNDS
          ? ` (inconclusive: fewer than ${MIN_CONCLUSIVE_ROUNDS} rounds)`
          : ' (inconclusive: the rounds spread wider than the goal)'
        : '') +
      (report.failedCalls > 0 ? `; ${report.failedCalls} failed calls` : ''),
  ];
  return lines.join('\n');
}
