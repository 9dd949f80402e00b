/**
 * Builders of synthetic runs for the unit tests: reports are made by the real aggregate() from
 * made-up raw results, so the tests exercise the same path as a bench run.
 */
import { FAULT_TITLES, type FaultKind, failoverTiming } from './failover';
import {
  type CallLog,
  type FailoverReport,
  aggregateFailover,
  summarizeFailoverRun,
} from './failover-stats';
import type { MachineInfo } from './machine';
import type { MicroResults } from './micro';
import { computeRatios } from './ratios';
import { type RunRecord, type ScenarioReport, aggregate } from './results';
import type { BenchRun } from './bench-run';
import type { ScenarioDef } from './scenarios';
import {
  STARTUP_CALLS,
  type StartupSkewReport,
  aggregateStartupSkew,
  summarizeStartupRound,
} from './startup-skew';
import { checkTargets } from './targets';

export const BACKENDS = ['127.0.0.2:5000', '127.0.0.3:5000', '127.0.0.4:5000'];

export interface FakeRound {
  /** Calls per second this round. */
  rps: number;
  /** Every call's latency, ms (all equal: p50 = p99 = this). */
  latencyMs: number;
  /** Calls per backend; default: spread evenly over BACKENDS. */
  perBackend?: Record<string, number>;
  errors?: number;
  clientCpuUs?: number;
  proxyCpuUs?: number;
  backendCpuUs?: number;
}

export function fakeDef(name: string, overrides: Partial<ScenarioDef> = {}): ScenarioDef {
  return {
    name,
    title: `${name} title`,
    target: 'ipv4:127.0.0.2:5000',
    channelOptions: {},
    channels: 1,
    proxy: null,
    backends: BACKENDS,
    ...overrides,
  };
}

export function fakeRecord(round: number, fake: FakeRound): RunRecord {
  const totalMs = 1000;
  const count = Math.round(fake.rps);
  const perBackend =
    fake.perBackend ??
    Object.fromEntries(
      BACKENDS.map((b, i) => [b, Math.floor(count / 3) + (i < count % 3 ? 1 : 0)]),
    );
  const errors = fake.errors ?? 0;
  const clientCpuMs = ((fake.clientCpuUs ?? 100) * count) / 1000;
  return {
    round,
    result: {
      scenario: 'fake',
      mode: 'closed',
      latenciesMs: new Float64Array(count).fill(fake.latencyMs),
      totalMs,
      statusCounts: errors > 0 ? { '0': count - errors, '14': errors } : { '0': count },
      perBackend,
      errorSamples: errors > 0 ? ['14 fake failure'] : [],
      maxSendLagMs: 0,
      meanSendLagMs: 0,
      clientCpuMs,
    },
    proxyCpuMs: fake.proxyCpuUs === undefined ? NaN : (fake.proxyCpuUs * count) / 1000,
    backendCpuMs: ((fake.backendCpuUs ?? 100) * count) / 1000,
    machineCpuMs: clientCpuMs + ((fake.backendCpuUs ?? 100) * count) / 1000,
    windowMs: totalMs,
  };
}

export function fakeReport(
  name: string,
  rounds: readonly FakeRound[],
  overrides: Partial<ScenarioDef> = {},
): ScenarioReport {
  return aggregate(
    fakeDef(name, overrides),
    { mode: 'closed', concurrency: 50, rate: null },
    rounds.map((r, i) => fakeRecord(i + 1, r)),
  );
}

export const MACHINE: MachineInfo = {
  cpuModel: 'Test CPU',
  cores: 2,
  memoryGiB: 8,
  node: 'v20.0.0',
  grpcJs: '1.14.7',
  os: 'Test OS',
  kernel: 'Linux test',
  loadAverage: 0.5,
  nginx: 'nginx/1.22.1',
  haproxy: 'HAProxy version 2.6.12',
};

export const MICRO: MicroResults = {
  pickNs: {
    'grpc-lb.round_robin@10': 30,
    'grpc-lb.round_robin@10000': 80,
    'grpc-lb.weighted_round_robin@10000': 400,
    'round_robin@10000': 15,
  },
  update10kMs: 12,
  updateDiff10kMs: 3,
  applied10kMs: { first: 9, diff: 2.5 },
  updateWeights10kMs: 4,
  bytesPerEndpoint: 2000,
  notes: ['a note'],
};

/** A run with every scenario: ours at 3000 rps, grpc-js 3000, proxies 2000, L4 pinned. */
export function fakeBenchRun(overrides: Partial<BenchRun> = {}): BenchRun {
  const even = (rps: number, latencyMs: number, extra: Partial<FakeRound> = {}) =>
    [1, 2, 3].map(() => ({ rps, latencyMs, ...extra }));
  const closed = [
    fakeReport('direct', even(3100, 15), { backends: [BACKENDS[0]!] }),
    fakeReport('grpc-js-round_robin', even(3000, 16)),
    fakeReport('grpc-lb-round_robin', even(3000, 16)),
    fakeReport('nginx-grpc', even(2000, 25, { proxyCpuUs: 60 }), { proxy: 'nginx' }),
    fakeReport('haproxy-h2', even(1500, 33, { proxyCpuUs: 90 }), { proxy: 'haproxy' }),
    fakeReport(
      'haproxy-tcp',
      even(3000, 16, { perBackend: { [BACKENDS[1]!]: 3000 }, proxyCpuUs: 10 }),
      { proxy: 'haproxy' },
    ),
  ];
  const evenness = [fakeReport('evenness', [{ rps: 3000, latencyMs: 16 }])];
  const run: BenchRun = {
    bench: 'full',
    date: '2030-01-02',
    command: 'npm run bench',
    startedAt: '2030-01-02T03:04:05.000Z',
    durationS: 100,
    machine: MACHINE,
    settings: {
      rounds: 3,
      openRounds: 0,
      quietThreshold: 0.25,
      extraRounds: 3,
      durationMs: 1000,
      warmupMs: 0,
      concurrency: 50,
      rate: 1000,
      backends: 3,
      evennessBackends: 3,
      evennessCalls: 3000,
      l4Channels: 4,
      failoverRounds: 1,
      convergenceRounds: 1,
      ghzRounds: 0,
    },
    closed,
    open: [],
    evenness,
    failover: [],
    convergence: [],
    startup: [
      fakeStartupReport('grpc-lb-round_robin', 10, [1, 0.9, 1]),
      fakeStartupReport('grpc-lb-round_robin+grace', 10, [0.1, 0.11, 0.1], 0, 230),
      fakeStartupReport('grpc-js-round_robin', 10, [1, 1, 1]),
    ],
    ghz: null,
    skipped: [],
    failed: [],
    ratios: computeRatios([], [], []),
    micro: MICRO,
    microError: null,
    targets: [],
    ...overrides,
  };
  if (!overrides.ratios) run.ratios = computeRatios(run.closed, run.open, run.evenness);
  run.targets = checkTargets(run);
  return run;
}

/** One made-up call: completion time, latency, status code, answering backend (failed: none). */
export interface FakeCall {
  at: number;
  latencyMs: number;
  code?: number;
  backend?: string;
}

export function fakeCallLog(calls: readonly FakeCall[], windowStartedAt = 0): CallLog {
  const backends: string[] = [];
  const index = (address: string | undefined): number => {
    if (address === undefined) return -1;
    if (!backends.includes(address)) backends.push(address);
    return backends.indexOf(address);
  };
  return {
    latenciesMs: Float64Array.from(calls.map((c) => c.latencyMs)),
    trace: {
      windowStartedAt,
      completedMs: Float64Array.from(calls.map((c) => c.at)),
      codes: Uint8Array.from(calls.map((c) => c.code ?? 0)),
      backendIndex: Int16Array.from(
        calls.map((c) => ((c.code ?? 0) === 0 ? index(c.backend) : -1)),
      ),
      backends,
    },
  };
}

export const FAULTY = BACKENDS[1]!;

/**
 * A quick-timed failover run (3 s, fault at 1 s): 100 calls per 100 ms spread over BACKENDS and a
 * fourth one; from the fault, calls to the faulty backend fail (code 14) for `failingMs`, then it
 * gets nothing.
 */
export function fakeFailoverReport(
  fault: FaultKind,
  policy: string,
  failingMs: number | null,
): FailoverReport {
  const timing = failoverTiming(true);
  const all = [...BACKENDS, '127.0.0.5:5000'];
  const calls: FakeCall[] = [];
  for (let at = 1; at < timing.durationMs; at += 1) {
    const backend = all[at % all.length]!;
    const afterFault = at >= timing.faultAtMs;
    const failing = failingMs === null || at < timing.faultAtMs + failingMs;
    if (backend === FAULTY && afterFault) {
      if (failing) calls.push({ at, latencyMs: 5, code: 14 });
      continue;
    }
    calls.push({ at, latencyMs: afterFault ? 3 : 2, backend });
  }
  const round = summarizeFailoverRun(fakeCallLog(calls), {
    round: 1,
    faultAtMs: timing.faultAtMs,
    faultApplyMs: 1,
    timing,
    badBackend: FAULTY,
    backends: all.length,
    totalMs: timing.durationMs,
  });
  return aggregateFailover(
    {
      name: `failover-${fault}`,
      fault,
      faultTitle: FAULT_TITLES[fault],
      policy,
      policyTitle: `${policy} title`,
      badBackend: FAULTY,
      backends: all.length,
      concurrency: 50,
      deadlineMs: 1000,
      timing,
    },
    [round],
  );
}

/**
 * A startup-skew report over `backends` backends (127.0.0.2…): in each round the first backend
 * answers the given share of the 100 calls and the rest are spread evenly over the others; each
 * round takes `elapsedMs` from the first send to the last answer.
 */
export function fakeStartupReport(
  client: string,
  backends: number,
  largestShares: readonly number[],
  staggerMs = 0,
  elapsedMs = 20,
): StartupSkewReport {
  const addresses = Array.from({ length: backends }, (_, i) => `127.0.0.${i + 2}:5000`);
  const rounds = largestShares.map((share, i) => {
    const first = Math.round(share * STARTUP_CALLS);
    const perBackend: Record<string, number> = { [addresses[0]!]: first };
    for (let call = 0; call < STARTUP_CALLS - first; call++) {
      const address = addresses[1 + (call % (backends - 1))]!;
      perBackend[address] = (perBackend[address] ?? 0) + 1;
    }
    return summarizeStartupRound({
      round: i + 1,
      calls: STARTUP_CALLS,
      backends: addresses,
      perBackend,
      statusCounts: { '0': STARTUP_CALLS },
      totalMs: elapsedMs,
    });
  });
  return aggregateStartupSkew(
    { client, title: `${client} title`, backends, staggerMs, calls: STARTUP_CALLS },
    rounds,
  );
}
