/**
 * The ghz calibration group: ghz (github.com/bojand/ghz, the load tool of the articles the project
 * started from) and our own load generator, each in a closed loop with the same calls in flight on
 * one connection to the same single backend (the `direct` shape), run in interleaved rounds. If
 * both reach the same throughput and latency, our generator is not what limits the numbers, and it
 * measures what ghz measures.
 *
 * Pure: the ghz command line, reading ghz's JSON report, the per-round comparison and the ratios;
 * ghz-run.ts runs it.
 */
import type { RoundSummary } from './results';
import { median } from './stats';

export const GHZ_CALIBRATION = 'ghz-calibration';

/** The harness's Greeter, as ghz names it (`package.Service.Method`), and its proto file. */
export const GHZ_CALL = 'grpclb.test.Greeter.SayHello';
export const GHZ_PROTO = 'greeter.proto';

/** Whether `--scenarios` (null: all) selects the group. */
export function ghzWanted(scenarios: readonly string[] | null): boolean {
  return scenarios === null || scenarios.includes(GHZ_CALIBRATION);
}

export interface GhzArgsInput {
  protoDir: string;
  /** host:port of the backend. */
  address: string;
  concurrency: number;
  durationMs: number;
  /** Per-call deadline, ms (ghz `--timeout`). */
  deadlineMs: number;
}

/**
 * ghz's arguments for one closed-loop run: `concurrency` calls in flight on ONE connection for
 * `durationMs`. `--duration-stop wait`: at the end ghz stops sending and waits for the calls in
 * flight, as our generator does; ghz's default (`close`) cuts them off and counts them as
 * UNAVAILABLE errors.
 */
export function ghzArgs(input: GhzArgsInput): string[] {
  return [
    '--insecure',
    '--import-paths',
    input.protoDir,
    '--proto',
    GHZ_PROTO,
    '--call',
    GHZ_CALL,
    '-d',
    '{"name":"ghz"}',
    '--format',
    'json',
    '-c',
    String(input.concurrency),
    '--connections',
    '1',
    '-z',
    `${input.durationMs}ms`,
    '--duration-stop',
    'wait',
    '--timeout',
    `${input.deadlineMs}ms`,
    input.address,
  ];
}

/** One ghz run, from its JSON report (durations there are nanoseconds). */
export interface GhzResult {
  /** Every call ghz counted, failed ones included. */
  count: number;
  /** From the start of the first call to the end of the run, ms. */
  totalMs: number;
  /** count / total, as ghz computes it. */
  rps: number;
  /** Over every call (ghz averages failed calls too). */
  averageMs: number;
  /** Fastest, slowest and the percentiles are over the successful calls only (ghz's choice). */
  fastestMs: number;
  slowestMs: number;
  /** ghz's percentiles by name (`p10` … `p99`); NaN when ghz reported none. */
  percentiles: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  /** Calls per status name as ghz writes them (`OK`, `Unavailable`, …). */
  statusCounts: Record<string, number>;
  errors: number;
  /** The most frequent error messages, at most 5. */
  errorSamples: string[];
  endReason: string;
}

export class GhzReportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GhzReportError';
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const NS_PER_MS = 1e6;

/** Reads ghz's `--format json` output; throws GhzReportError when it is not one. */
export function parseGhzReport(text: string): GhzResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    const head = text.trim().slice(0, 200);
    throw new GhzReportError(
      `ghz printed no JSON report (${error instanceof Error ? error.message : String(error)}): ${JSON.stringify(head)}`,
    );
  }
  if (!isRecord(parsed)) throw new GhzReportError('ghz report is not a JSON object');
  const number = (key: string): number => {
    const value = parsed[key];
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new GhzReportError(`ghz report: "${key}" is ${JSON.stringify(value)}, not a number`);
    }
    return value;
  };
  const count = number('count');
  const totalNs = number('total');
  const rps = number('rps');
  const optionalMs = (key: string): number =>
    typeof parsed[key] === 'number' ? parsed[key] / NS_PER_MS : NaN;

  const statusCounts: Record<string, number> = {};
  const statuses = parsed['statusCodeDistribution'];
  if (statuses !== undefined && statuses !== null) {
    if (!isRecord(statuses)) throw new GhzReportError('ghz report: statusCodeDistribution');
    for (const [name, n] of Object.entries(statuses)) {
      if (typeof n !== 'number') throw new GhzReportError(`ghz report: status ${name} count`);
      statusCounts[name] = n;
    }
  }
  let errors = 0;
  for (const [name, n] of Object.entries(statusCounts)) if (name !== 'OK') errors += n;

  const errorDist = isRecord(parsed['errorDistribution']) ? parsed['errorDistribution'] : {};
  const errorSamples = Object.entries(errorDist)
    .filter((entry): entry is [string, number] => typeof entry[1] === 'number')
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([message, n]) => `${n}× ${message}`);

  // ghz leaves a percentile it could not compute as {percentage: 0, latency: 0}: skipped.
  const percentiles: Record<string, number> = {};
  const distribution = parsed['latencyDistribution'];
  if (Array.isArray(distribution)) {
    for (const entry of distribution) {
      if (!isRecord(entry)) continue;
      const { percentage, latency } = entry;
      if (typeof percentage === 'number' && percentage > 0 && typeof latency === 'number') {
        percentiles[`p${percentage}`] = latency / NS_PER_MS;
      }
    }
  }
  return {
    count,
    totalMs: totalNs / NS_PER_MS,
    rps,
    averageMs: optionalMs('average'),
    fastestMs: optionalMs('fastest'),
    slowestMs: optionalMs('slowest'),
    percentiles,
    p50Ms: percentiles['p50'] ?? NaN,
    p99Ms: percentiles['p99'] ?? NaN,
    statusCounts,
    errors,
    errorSamples,
    endReason: typeof parsed['endReason'] === 'string' ? parsed['endReason'] : 'unknown',
  };
}

/**
 * CPU that a shell's waited-for children used (cutime + cstime, fields 16 and 17 of proc(5)), in
 * clock ticks, from its /proc/<pid>/stat line: ghz is run by `sh -c` that prints this line after
 * ghz exits, which gives ghz's whole CPU time without racing its exit.
 */
export function waitedChildrenTicks(statLine: string): number {
  const close = statLine.lastIndexOf(')');
  if (close < 0) throw new Error('not a /proc/<pid>/stat line');
  // fields[0] is field 3 (state): field n is fields[n - 3].
  const fields = statLine
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  const cutime = Number(fields[13]);
  const cstime = Number(fields[14]);
  if (!Number.isFinite(cutime) || !Number.isFinite(cstime)) {
    throw new Error('/proc/<pid>/stat line too short');
  }
  return cutime + cstime;
}

/** One client's numbers in one round (ghz or ours). */
export interface CalibrationSide {
  count: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** CPU per call of the load generator and of the backend, µs; null when not measurable. */
  clientCpuUs: number | null;
  backendCpuUs: number | null;
  /** Cores' worth of CPU other processes used meanwhile; null when not measurable. */
  otherCores: number | null;
}

export interface CalibrationRound {
  round: number;
  /** Which client ran first in this round (they alternate). */
  first: 'ghz' | 'ours';
  ghz: CalibrationSide;
  ours: CalibrationSide;
}

/** CPU and window of a ghz run, measured by the runner. */
export interface GhzRunCpu {
  /** ghz's own CPU (user + system) over the whole process, ms; NaN when unknown. */
  ghzCpuMs: number;
  /** The backend's CPU from ghz's start to its exit, ms. */
  backendCpuMs: number;
  /** The whole machine's busy CPU over the same time, ms, and that time. */
  machineCpuMs: number;
  wallMs: number;
}

function finiteOrNull(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

export function ghzSide(result: GhzResult, cpu: GhzRunCpu): CalibrationSide {
  const perCall = (ms: number) => (result.count > 0 ? (ms * 1000) / result.count : NaN);
  const other =
    (cpu.machineCpuMs - (Number.isFinite(cpu.ghzCpuMs) ? cpu.ghzCpuMs : 0) - cpu.backendCpuMs) /
    cpu.wallMs;
  return {
    count: result.count,
    rps: result.rps,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    errors: result.errors,
    clientCpuUs: finiteOrNull(perCall(cpu.ghzCpuMs)),
    backendCpuUs: finiteOrNull(perCall(cpu.backendCpuMs)),
    otherCores: Number.isFinite(other) ? Math.max(0, other) : null,
  };
}

export function oursSide(round: RoundSummary): CalibrationSide {
  return {
    count: round.count,
    rps: round.rps,
    p50Ms: round.p50Ms,
    p99Ms: round.p99Ms,
    errors: round.errors,
    clientCpuUs: finiteOrNull(round.clientCpuUs),
    backendCpuUs: finiteOrNull(round.backendCpuUs),
    otherCores: round.otherCores,
  };
}

export interface CalibrationMedians {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  clientCpuUs: number | null;
  backendCpuUs: number | null;
}

/** Ours / ghz: the median of the per-round ratios (rounds pair up, as in ratios.ts). */
export interface CalibrationRatios {
  rps: number | null;
  p50: number | null;
  p99: number | null;
  clientCpu: number | null;
}

type SideMetric = 'rps' | 'p50Ms' | 'p99Ms' | 'clientCpuUs';

/** Ours / ghz for each round where both are finite and ghz's is positive. */
export function perRoundRatios(rounds: readonly CalibrationRound[], metric: SideMetric): number[] {
  const ratios: number[] = [];
  for (const r of rounds) {
    const ours = r.ours[metric];
    const ghz = r.ghz[metric];
    if (ours === null || ghz === null || !Number.isFinite(ours) || !(ghz > 0)) continue;
    ratios.push(ours / ghz);
  }
  return ratios;
}

export function calibrationRatios(rounds: readonly CalibrationRound[]): CalibrationRatios {
  const ratio = (metric: SideMetric) => finiteOrNull(median(perRoundRatios(rounds, metric)));
  return {
    rps: ratio('rps'),
    p50: ratio('p50Ms'),
    p99: ratio('p99Ms'),
    clientCpu: ratio('clientCpuUs'),
  };
}

function sideMedians(sides: readonly CalibrationSide[]): CalibrationMedians {
  const of = (values: (number | null)[]) =>
    finiteOrNull(median(values.filter((v): v is number => v !== null)));
  return {
    rps: median(sides.map((s) => s.rps)),
    p50Ms: median(sides.map((s) => s.p50Ms)),
    p99Ms: median(sides.map((s) => s.p99Ms)),
    clientCpuUs: of(sides.map((s) => s.clientCpuUs)),
    backendCpuUs: of(sides.map((s) => s.backendCpuUs)),
  };
}

export interface GhzCalibrationReport {
  name: typeof GHZ_CALIBRATION;
  ghzVersion: string;
  /** ghz's command line (binary by name, arguments as run). */
  ghzCommand: string;
  /** Our client's target (the `direct` scenario's) and the backend ghz calls. */
  ourTarget: string;
  backend: string;
  concurrency: number;
  connections: 1;
  durationMs: number;
  /** Our worker's unrecorded warm-up per run; ghz had one unrecorded run of this length before round 1. */
  warmupMs: number;
  deadlineMs: number;
  rounds: CalibrationRound[];
  median: { ghz: CalibrationMedians; ours: CalibrationMedians };
  ratios: CalibrationRatios;
  /** Summed over rounds. */
  errors: { ghz: number; ours: number };
  statusCounts: { ghz: Record<string, number>; ours: Record<string, number> };
  errorSamples: { ghz: string[]; ours: string[] };
  /** Most other load any run saw, cores (null: not measurable). */
  maxOtherCores: number | null;
}

export interface CalibrationSettings {
  ghzVersion: string;
  ghzCommand: string;
  ourTarget: string;
  backend: string;
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  deadlineMs: number;
}

export function aggregateCalibration(
  settings: CalibrationSettings,
  rounds: readonly CalibrationRound[],
  statusCounts: { ghz: Record<string, number>; ours: Record<string, number> },
  errorSamples: { ghz: string[]; ours: string[] },
): GhzCalibrationReport {
  const others = rounds
    .flatMap((r) => [r.ghz.otherCores, r.ours.otherCores])
    .filter((v): v is number => v !== null);
  return {
    name: GHZ_CALIBRATION,
    ...settings,
    connections: 1,
    rounds: [...rounds],
    median: {
      ghz: sideMedians(rounds.map((r) => r.ghz)),
      ours: sideMedians(rounds.map((r) => r.ours)),
    },
    ratios: calibrationRatios(rounds),
    errors: {
      ghz: rounds.reduce((n, r) => n + r.ghz.errors, 0),
      ours: rounds.reduce((n, r) => n + r.ours.errors, 0),
    },
    statusCounts,
    errorSamples,
    maxOtherCores: others.length > 0 ? Math.max(...others) : null,
  };
}
